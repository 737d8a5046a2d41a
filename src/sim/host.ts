/**
 * A simulated process hosting one replica: the production partition driver (src/partition/driver.ts)
 * over a memory disk, with the registry as this process has applied it. The disk survives crashes
 * (what was synced, and perhaps some of what was not); the driver, like a process, does not.
 */
import type { PbftReplica } from '../consensus/pbft/replica.js';
import type { PbftConfig } from '../consensus/pbft/types.js';
import type { Block } from '../ledger/block.js';
import { PartitionDriver } from '../partition/driver.js';
import type { PartitionRegistry } from '../partition/driver.js';
import { MemoryPartitionStorage } from '../partition/storage.js';
import { simStateMachine } from './app.js';
import type { SimRegistry } from './app.js';
import type { SimSigner } from './sim-crypto.js';

export type ByzantineBehaviour =
  'equivocate' | 'conflicting-votes' | 'forge' | 'replay' | 'wrong-digest' | 'silent-primary';

/** What a simulated process needs of its world to build its driver. */
export interface HostWorld {
  now(host: Host): number;
  send(from: Host, to: number, bytes: Uint8Array): void;
  onBlock(host: Host, block: Block): void;
  onRetransmitted(host: Host, request: Uint8Array, height: number): void;
  /** True when primaries name registry indexes in proposals (the driver faults are on). */
  namesRegistry(): boolean;
  /** The partition's epoch at a topic index (see PartitionRegistry.epochAt). */
  epochAt(topicIndex: number): number | undefined;
}

export class Host {
  driver: PartitionDriver<SimRegistry, never>;
  crashed = false;
  /** Left the replica set at an epoch change: no longer driven or checked. */
  retired = false;
  /**
   * Its epoch closed and it is taking over the next one (copying blocks it lacks): the old driver
   * stays closed, across restarts too, as a node drops the old replica before it prepares the new.
   */
  handingOver = false;
  readonly storage: MemoryPartitionStorage;
  readonly received: Uint8Array[] = [];
  /** The registry indexes this process has applied (its `__system` and topic Raft logs). */
  applied: SimRegistry;

  constructor(
    readonly index: number,
    readonly label: string,
    readonly signer: SimSigner,
    public config: PbftConfig,
    readonly byzantine: readonly ByzantineBehaviour[],
    private readonly world: HostWorld,
    /** A disk the process starts on (a joining replica's, already holding the partition). */
    disk: { readonly storage?: MemoryPartitionStorage; readonly applied?: SimRegistry } = {},
  ) {
    this.storage = disk.storage ?? new MemoryPartitionStorage();
    this.applied = disk.applied ?? { system: 0, topic: 0 };
    this.driver = this.start();
  }

  get correct(): boolean {
    return this.byzantine.length === 0;
  }

  /** The core, for observers. */
  get core(): PbftReplica {
    return this.driver.replica;
  }

  /** Height of the last stored block. */
  get height(): number {
    return this.driver.height;
  }

  get epoch(): number {
    return this.config.configEpoch;
  }

  block(height: number): Block | undefined {
    return this.storage.blocks.get(height);
  }

  /** Rebuilds the driver from what the disk kept, as a restarted process would. */
  restart(): void {
    this.crashed = false;
    this.storage.crash();
    this.driver = this.start();
    if (this.handingOver) this.driver.close();
  }

  /** Starts a new epoch of the group on this disk (the old driver is done). */
  startEpoch(config: PbftConfig): void {
    this.driver.close();
    this.config = config;
    this.handingOver = false;
    this.driver = this.start();
  }

  /** The registry as this process sees it: a batch naming indexes beyond `applied` is held. */
  readonly registry: PartitionRegistry<SimRegistry> = {
    at: (system, topic) =>
      system <= this.applied.system && topic <= this.applied.topic ? { system, topic } : undefined,
    epochAt: (topicIndex) => this.world.epochAt(topicIndex),
  };

  private start(): PartitionDriver<SimRegistry, never> {
    const driver = new PartitionDriver<SimRegistry, never>({
      config: this.config,
      crypto: this.signer.crypto,
      storage: this.storage,
      clock: { now: () => this.world.now(this), setTimeout: () => () => {} },
      transport: { send: (to, bytes) => this.world.send(this, to, bytes) },
      stateMachine: simStateMachine,
      registry: this.world.namesRegistry()
        ? { ...this.registry, indexes: () => this.applied }
        : this.registry,
    });
    driver.onBlock((block) => this.world.onBlock(this, block));
    driver.onRetransmitted((request, height) => this.world.onRetransmitted(this, request, height));
    return driver;
  }
}
