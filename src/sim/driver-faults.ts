/**
 * Faults of what the partition driver exposes, beyond the network and the replicas' behaviour:
 *
 * - registry lag: a replica stops applying `__system` for a while, so its driver holds committed
 *   batches that name registry indexes it lacks, and runs them when it catches up (`resume`);
 * - epoch change: during traffic the partition moves to a new replica set (one replica replaced by
 *   a new one); the old epoch closes with its closing block and every replica of the new set starts
 *   the new epoch from it, copying what it lacks from the global ledger as a node does;
 * - lost and torn writes: a replica crashes in the middle of a write, and of its unsynced
 *   transactions none (lost) or only the first few (torn) survive.
 *
 * All of it is drawn from a generator of its own, derived from the seed, so the classic faults of
 * a seed (network, crashes, Byzantine replicas) are the same with these on or off.
 */
import { encodeClientRequest } from '../consensus/pbft/messages.js';
import type { PbftConfig, ReplicaInfo } from '../consensus/pbft/types.js';
import { merkleRoot } from '../crypto/index.js';
import type { Block } from '../ledger/block.js';
import { certifiedHeaderOf, closes } from '../partition/driver.js';
import { prepareEpochStorage } from '../partition/handover.js';
import type { HandoverSources } from '../partition/handover.js';
import { MemoryPartitionStorage, SimulatedCrash } from '../partition/storage.js';
import { simStateMachine } from './app.js';
import type { SimRegistry } from './app.js';
import { Host } from './host.js';
import type { HostWorld } from './host.js';
import { Prng } from './prng.js';
import type { SimSigner } from './sim-crypto.js';

export const driverFaultKinds = ['registry-lag', 'epoch-change', 'lost-write', 'torn-write'] as const;
export type DriverFaultKind = (typeof driverFaultKinds)[number];

/** What the fault schedule needs of the world. */
export interface DriverFaultWorld {
  readonly seed: number;
  readonly hosts: Host[];
  readonly hostWorld: HostWorld;
  identity(name: string): SimSigner;
  /** Makes a new replica's key known to the invariant checks. */
  registerReplica(id: string, publicKey: Uint8Array): void;
  /** The process died (its disk already rolled back): restart it after a while. */
  crashed(host: Host, restartTick: number): void;
  /** Hands a request to a replica, outside the faulty network. */
  deliverRequest(host: Host, bytes: Uint8Array): void;
  count(kind: DriverFaultKind): void;
}

interface EpochChange {
  /** The topic index from which the partition is in epoch 2. */
  readonly topicIndex: number;
  /** The replica position that changes hands. */
  readonly position: number;
  readonly replicas: readonly ReplicaInfo[];
  /** The new replica's process, until it has taken over the partition: its disk starts empty. */
  joining:
    | {
        readonly id: string;
        readonly signer: SimSigner;
        readonly config: PbftConfig;
        readonly storage: MemoryPartitionStorage;
      }
    | undefined;
}

export class DriverFaults {
  private readonly rng: Prng;
  /** The registry every process converges to: `__system` and the topic group's heads. */
  private head: SimRegistry = { system: 0, topic: 0 };
  private readonly lagUntil = new Map<Host, number>();
  private readonly armed = new Set<Host>();
  private readonly changeTick: number | undefined;
  private change: EpochChange | undefined;
  /** The topic's global ledger: the first block a correct replica stored at each height. */
  private readonly globalLedger = new Map<number, Block>();
  private readonly operator: SimSigner;

  constructor(private readonly world: DriverFaultWorld) {
    // A fixed odd multiplier spreads neighbouring seeds apart; the classic faults keep `seed` itself.
    this.rng = new Prng((Math.imul(world.seed, 0x9e3779b1) ^ 0x5eed5eed) >>> 0);
    this.changeTick = this.rng.chance(0.5) ? this.rng.int(30, 300) : undefined;
    this.operator = world.identity(`${world.seed}/operator`);
  }

  /** The partition's epoch at a topic index: 1, or 2 from the epoch change on. */
  epochAt(topicIndex: number): number | undefined {
    return this.change !== undefined && topicIndex >= this.change.topicIndex ? 2 : 1;
  }

  /** A block a correct replica stored, for the global ledger. */
  onCorrectBlock(block: Block): void {
    if (!this.globalLedger.has(block.header.height)) this.globalLedger.set(block.header.height, block);
  }

  /** Runs a call into a host's driver; a simulated crash inside it crashes the host there. */
  guard<T>(host: Host, tick: number, action: () => T): T | undefined {
    try {
      return action();
    } catch (error) {
      if (!(error instanceof SimulatedCrash)) throw error;
      this.armed.delete(host);
      const unsynced = host.storage.unsyncedCount;
      const keep = unsynced >= 2 ? this.rng.int(0, unsynced - 1) : 0;
      host.storage.crash(keep);
      this.world.count(keep > 0 ? 'torn-write' : 'lost-write');
      host.crashed = true;
      this.world.crashed(host, tick + this.rng.int(10, 100));
      return undefined;
    }
  }

  /** Called at the start of every tick, before the replicas tick. */
  beforeTick(tick: number, safety: boolean): void {
    const rng = this.rng;
    if (safety) {
      if (rng.chance(0.05)) this.head = { ...this.head, system: this.head.system + 1 };
      if (rng.chance(0.01)) {
        const host = rng.pick(this.world.hosts);
        this.lagUntil.set(host, tick + rng.int(10, 80));
        this.world.count('registry-lag');
      }
      if (rng.chance(0.004)) {
        const host = rng.pick(this.world.hosts);
        if (!host.crashed && !host.retired && !this.armed.has(host)) {
          // Half of them wait for a write with another unsynced one before it, so there is a
          // transaction to tear off.
          host.storage.crashAtWrite(rng.int(1, 4), rng.chance(0.5) ? 2 : 1);
          this.armed.add(host);
        }
      }
      if (tick === this.changeTick) this.scheduleEpochChange();
    }
    for (const host of this.world.hosts) {
      if ((this.lagUntil.get(host) ?? 0) > tick) continue;
      this.lagUntil.delete(host);
      if (host.applied.system === this.head.system && host.applied.topic === this.head.topic) continue;
      host.applied = this.head;
      if (!host.crashed && !host.retired) this.guard(host, tick, () => host.driver.resume());
    }
    if (this.change !== undefined) this.handOver(tick);
  }

  /** The network heals: registries catch up, and no crash is left armed. */
  heal(): void {
    this.lagUntil.clear();
    for (const host of this.armed) host.storage.disarm();
    this.armed.clear();
  }

  /** True once a scheduled epoch change is complete: every correct replica of the new set runs it. */
  get settled(): boolean {
    if (this.change === undefined) return true;
    if (this.change.joining !== undefined) return false;
    return this.world.hosts.every((host) => !host.correct || host.retired || host.epoch === 2);
  }

  /** Moves one correct replica's position to a new replica, from the next topic index on. */
  private scheduleEpochChange(): void {
    const hosts = this.world.hosts;
    const positions = [...new Set(hosts.map((host) => host.index))].filter((index) =>
      hosts.filter((host) => host.index === index).every((host) => host.correct),
    );
    if (positions.length === 0) return;
    const position = this.rng.pick(positions);
    const template = hosts.find((host) => host.index === position)!;
    const id = `r${template.config.replicas.length}`;
    const signer = this.world.identity(`${this.world.seed}/replica-${template.config.replicas.length}`);
    this.world.registerReplica(id, signer.publicKey);
    const replicas = template.config.replicas.map((replica, index) =>
      index === position ? { id, publicKey: signer.publicKey } : replica,
    );
    this.head = { ...this.head, topic: this.head.topic + 1 };
    this.change = {
      topicIndex: this.head.topic,
      position,
      replicas,
      // It takes the tuning of the replica it replaces; it serves nothing until it has taken over.
      joining: { id, signer, config: template.config, storage: new MemoryPartitionStorage() },
    };
    this.world.count('epoch-change');
  }

  /**
   * One round of what a node's `openPartitions` does at an epoch change: a replica of the new set
   * whose old epoch has closed (or whose global ledger shows it closed) starts the new epoch from
   * the closing block; the replaced one retires; the joining one copies the partition first.
   */
  private handOver(tick: number): void {
    const change = this.change!;
    for (const host of [...this.world.hosts]) {
      if (host.epoch !== 1 || host.retired || host.crashed) continue;
      if (!host.handingOver && host.driver.closedAt === undefined && !this.closedInGlobalLedger(host)) {
        if (tick % 20 === 0) this.nudge(host, tick);
        continue;
      }
      // The old epoch's driver is done, whether it stored the closing block or not.
      host.driver.close();
      if (host.index === change.position) {
        host.retired = true;
        continue;
      }
      host.handingOver = true;
      const base = this.guard(host, tick, () => this.prepare(host.storage, host.applied));
      if (base === undefined) continue;
      this.guard(host, tick, () => host.startEpoch(this.epochConfig(host.config, host.index, base)));
    }
    const joining = change.joining;
    if (joining !== undefined) {
      // Its disk starts empty: it copies the partition from the global ledger, then starts.
      const base = this.prepare(joining.storage, this.head);
      if (base === undefined) return;
      const config = this.epochConfig(joining.config, change.position, base);
      const host = new Host(change.position, joining.id, joining.signer, config, [], this.world.hostWorld, {
        storage: joining.storage,
        applied: this.head,
      });
      this.world.hosts.push(host);
      change.joining = undefined;
    }
  }

  private prepare(storage: MemoryPartitionStorage, applied: SimRegistry): Block | undefined {
    const sources: HandoverSources<SimRegistry> = {
      registryAt: (system, topic) =>
        system <= applied.system && topic <= applied.topic ? { system, topic } : undefined,
      epochAt: (topicIndex) => this.epochAt(topicIndex),
      globalBlock: (height) => this.globalLedger.get(height),
    };
    return prepareEpochStorage(storage, 'sim/0', 2, sources, simStateMachine, merkleRoot);
  }

  private epochConfig(config: PbftConfig, self: number, base: Block | undefined): PbftConfig {
    const { base: _old, ...rest } = config;
    return {
      ...rest,
      configEpoch: 2,
      replicas: this.change!.replicas,
      self,
      ...(base === undefined ? {} : { base: certifiedHeaderOf(base) }),
    };
  }

  /** True if the global ledger holds the block closing epoch 1 beyond what `host` stored. */
  private closedInGlobalLedger(host: Host): boolean {
    for (let height = host.height + 1; ; height++) {
      const block = this.globalLedger.get(height);
      if (block === undefined || block.header.configEpoch !== 1) return false;
      if (closes((index) => this.epochAt(index), block.header.topicIndex ?? 0, 1)) return true;
    }
  }

  /** As the node does for an idle old epoch: a no-op request, so some batch names the new index. */
  private nudge(host: Host, tick: number): void {
    const request = encodeClientRequest(
      {
        group: host.config.groupId,
        client: this.operator.publicKey,
        seq: tick,
        operation: new Uint8Array(0),
      },
      this.operator.sign,
    );
    this.world.deliverRequest(host, request);
  }
}
