/**
 * One partition of `npm run bench:scale`: a PBFT group whose replicas are each the production
 * partition driver (src/partition/driver.ts: the `PbftReplica` core, its Ready carried out in the
 * contract's order, execution through the simulator's state machine) on its own simulated machine
 * (see scale-sim.ts), with its own closed-loop clients and real Ed25519. It also serves the global
 * ledger's fetches of certified blocks, from one of its replicas.
 *
 * Memory stays flat however many partitions run in this one process: a replica's storage
 * (tail-storage.ts) keeps only the blocks the global ledger does not hold yet plus a state-transfer
 * tail (a real replica's store is on disk, and a heap that grows with the partition count makes
 * garbage collection cost more per request); agreement is checked as the blocks come, against one
 * 32-byte hash per height.
 */
import { createHash } from 'node:crypto';
import { bytesEqual, decodeValidated, encodeWith, t } from '../../src/codec/index.js';
import { defaultPbftTuning } from '../../src/consensus/pbft/config.js';
import { encodeClientRequest } from '../../src/consensus/pbft/messages.js';
import type { PbftConfig } from '../../src/consensus/pbft/types.js';
import { headerSchema } from '../../src/ledger/header.js';
import { blockHash } from '../../src/ledger/block.js';
import type { Block, GroupMembership } from '../../src/ledger/block.js';
import { PartitionDriver } from '../../src/partition/driver.js';
import { simStateMachine } from '../../src/sim/app.js';
import type { SimRegistry } from '../../src/sim/app.js';
import type { SimKeyring, SimSigner } from '../../src/sim/sim-crypto.js';
import type { Machine, World } from './scale-sim.js';
import { TailPartitionStorage } from './tail-storage.js';

/** The proposal timestamps are real-looking epoch milliseconds: virtual time 0 is this instant. */
const epochBaseMs = 1_700_000_000_000;
/** Bytes of one reply to a client (status, offset, replica signature). */
const replyBytesPerRequest = 128;
/** Framing of a fetch request or reply. */
const fetchOverheadBytes = 64;
/**
 * Blocks a replica keeps below its head whatever the ledger holds: what a peer's state transfer asks
 * for (from its last certified height + 1; peers of this honest, connected group lag by a few blocks).
 * A request below what is kept throws rather than going unanswered, so the limit cannot hide anything.
 */
const stateTransferBlocks = defaultPbftTuning.checkpointInterval;

/** The running digest of a chain of block hashes: sha256(previous digest ‖ block hash), from zeros. */
export function chainDigest(previous: Uint8Array, hash: Uint8Array): Uint8Array {
  return createHash('sha256').update(previous).update(hash).digest();
}

export const emptyDigest = new Uint8Array(32);

/** A certified block as the global ledger carries it: header, 2f+1 signatures, the requests. */
export const ledgerBlockSchema = t.record({
  header: headerSchema,
  signatures: t.array(
    t.record({ signer: t.string({ minLength: 1, maxLength: 256 }), signature: t.bytes({ length: 64 }) }),
    { maxItems: 64 },
  ),
  requests: t.array(t.bytes({ maxLength: 1024 * 1024 }), { maxItems: 100_000 }),
});

export function encodeLedgerBlock(block: Block): Uint8Array {
  return encodeWith(ledgerBlockSchema, {
    header: block.header,
    signatures: block.certificate.signatures,
    requests: block.transactions,
  });
}

export interface PartitionOptions {
  readonly index: number;
  readonly replicas: number;
  readonly batchRequestsMax: number;
  readonly clients: number;
  readonly tickMs: number;
  /** Replica the global ledger fetches blocks from. */
  readonly fetchReplica: number;
}

export function groupIdOf(index: number): string {
  return `scale/${index}`;
}

/**
 * Pre-signs `count` requests for partition `index` (before anything is timed): request j is client
 * (j mod clients)'s next one, so each client has one outstanding.
 */
export function presignRequests(
  keyring: SimKeyring,
  index: number,
  count: number,
  clients: number,
  payloadBytes: number,
): Uint8Array[] {
  const group = groupIdOf(index);
  const signers = Array.from({ length: clients }, (_, c) => keyring.identity(`scale/p${index}/client-${c}`));
  const requests: Uint8Array[] = [];
  for (let j = 0; j < count; j++) {
    const client = signers[j % clients]!;
    const operation = new Uint8Array(payloadBytes).fill(j & 0xff);
    requests.push(
      encodeClientRequest(
        { group, client: client.publicKey, seq: Math.floor(j / clients) + 1, operation },
        client.sign,
      ),
    );
  }
  return requests;
}

/** Every batch names the same registry indexes (0, 0): the partition needs nothing from it. */
const anyRegistry: SimRegistry = { system: 0, topic: 0 };

interface Replica {
  readonly index: number;
  readonly machine: Machine;
  readonly storage: TailPartitionStorage;
  readonly driver: PartitionDriver<SimRegistry, never>;
  /** Requests in the blocks this replica stored. */
  certifiedRequests: number;
  /** Requests its application accepted (gave an offset), counted from the stored blocks' results. */
  accepted: number;
}

export class Partition {
  readonly groupId: string;
  readonly membership: GroupMembership;
  /** Virtual time at which each height (index height - 1) was first certified at some replica. */
  readonly certifiedAt: number[] = [];
  /** The same, at the replica the global ledger fetches from. */
  readonly certifiedAtFetchReplica: number[] = [];
  /** The partition's chain: the hash of each height (index height - 1), as first certified. */
  readonly hashes: Uint8Array[] = [];
  private readonly replicas: Replica[] = [];
  private readonly clientEndpoint: string;
  private nextRequest = 0;
  private ackedHeight = 0;
  acknowledged = 0;
  startedAt = 0;
  lastAckAt = 0;
  messages = 0;
  messageBytes = 0;
  readonly rejected = new Map<string, number>();

  constructor(
    private readonly world: World,
    keyring: SimKeyring,
    private readonly options: PartitionOptions,
    private readonly requests: readonly Uint8Array[],
  ) {
    this.groupId = groupIdOf(options.index);
    this.clientEndpoint = `p${options.index}/clients`;
    const signers: SimSigner[] = Array.from({ length: options.replicas }, (_, i) =>
      keyring.identity(`scale/p${options.index}/replica-${i}`),
    );
    const infos = signers.map((signer, i) => ({ id: `r${i}`, publicKey: signer.publicKey }));
    this.membership = {
      signing: keyring.signing,
      partitionId: this.groupId,
      configEpoch: 1,
      members: new Map(infos.map((info) => [info.id, info.publicKey])),
    };
    signers.forEach((signer, i) => {
      const label = `${this.groupId}/r${i}`;
      const config: PbftConfig = {
        ...defaultPbftTuning,
        groupId: this.groupId,
        configEpoch: 1,
        replicas: infos,
        self: i,
        batchRequestsMax: options.batchRequestsMax,
        pendingRequestsMax: Math.max(defaultPbftTuning.pendingRequestsMax, 2 * options.clients),
      };
      const machine = world.machine(`p${options.index}/r${i}`);
      const storage = new TailPartitionStorage(label);
      const driver = new PartitionDriver<SimRegistry, never>({
        config,
        crypto: signer.crypto,
        storage,
        clock: {
          now: () => epochBaseMs + Math.floor(world.events.now),
          // Only a client waiting in `submit` sets a timer; these clients send with `receiveForwarded`.
          setTimeout: () => () => {},
        },
        transport: { send: (to, bytes) => this.send(machine, to, bytes) },
        stateMachine: simStateMachine,
        registry: { at: () => anyRegistry },
        log: (_level, message, fields) => {
          if (message !== 'pbft input rejected') return;
          const code = String(fields?.['code']);
          this.rejected.set(code, (this.rejected.get(code) ?? 0) + 1);
        },
      });
      const replica: Replica = { index: i, machine, storage, driver, certifiedRequests: 0, accepted: 0 };
      driver.onBlock((block) => this.stored(replica, block));
      this.replicas.push(replica);
    });
  }

  get totalRequests(): number {
    return this.requests.length;
  }

  /** Every replica has certified every request. */
  get done(): boolean {
    return this.replicas.every((replica) => replica.certifiedRequests === this.requests.length);
  }

  /** Blocks certified (every replica certifies the same chain: see storeCertified). */
  get height(): number {
    return this.hashes.length;
  }

  /** The running digest (chainDigest) of the partition's hashes, for the global ledger's check. */
  digest(): Uint8Array {
    return this.hashes.reduce(chainDigest, emptyDigest);
  }

  /** Blocks held in memory, over the replicas. */
  get storedBlocks(): number {
    return this.replicas.reduce((sum, replica) => sum + replica.storage.storedBlocks, 0);
  }

  get machines(): readonly Machine[] {
    return this.replicas.map((replica) => replica.machine);
  }

  /** Starts the replicas' ticks now and the clients at `clientsAt`. */
  start(clientsAt: number): void {
    for (const replica of this.replicas) {
      this.world.every(replica.machine, this.options.tickMs, this.world.events.now, (now) =>
        replica.driver.tick(epochBaseMs + Math.floor(now)),
      );
    }
    this.world.events.schedule(clientsAt, () => {
      this.startedAt = this.world.events.now;
      this.submit(Math.min(this.options.clients, this.requests.length));
    });
  }

  /**
   * A fetch of certified blocks from `fromHeight` (at most `maxBlocks`), sent by `requester` during its
   * work; the replica answers with the encoded blocks, which `onBlocks` handles on the requester. The
   * request also says that every ledger member holds the blocks up to `ledgerHolds`, which the
   * replicas may then drop.
   */
  fetch(
    requester: Machine,
    fromHeight: number,
    maxBlocks: number,
    ledgerHolds: number,
    onBlocks: (blocks: readonly Uint8Array[], now: number) => void,
  ): void {
    const replica = this.replicas[this.options.fetchReplica]!;
    // Served from the block store ahead of queued consensus input (its CPU cost is still charged).
    requester.sendTo(
      replica.machine,
      fetchOverheadBytes,
      () => {
        // Every replica learns it (as they would from the ledger's announcements): free, not timed.
        replica.machine.afterWork(() => {
          for (const each of this.replicas) this.dropBlocks(each, ledgerHolds);
        });
        const blocks = replica.storage.blocks
          .range(fromHeight, fromHeight + maxBlocks - 1, maxBlocks)
          .map(encodeLedgerBlock);
        const size = blocks.reduce((sum, bytes) => sum + bytes.length, fetchOverheadBytes);
        replica.machine.sendTo(requester, size, (now) => onBlocks(blocks, now));
      },
      true,
    );
  }

  /**
   * Every replica holds the whole chain (`stored` checked each block's hash against the
   * partition's as it came) and accepted every request exactly once.
   */
  checkAgreement(): void {
    for (const replica of this.replicas) {
      if (replica.driver.height !== this.height) {
        throw new Error(
          `${this.groupId}: r${replica.index} has ${replica.driver.height} blocks, not ${this.height}`,
        );
      }
      if (replica.accepted !== this.requests.length) {
        throw new Error(
          `${this.groupId}: r${replica.index} accepted ${replica.accepted} requests, not ${this.requests.length}`,
        );
      }
    }
  }

  describe(): string {
    return this.replicas
      .map(
        ({ index, driver: { replica: core }, machine }) =>
          `r${index}:v${core.view}/e${core.lastExecuted}/c${core.lastCertified}/p${core.pendingRequests}/q${machine.backlog}`,
      )
      .join(' ');
  }

  /** Closed loop: the clients send the next `count` pre-signed requests, each to every replica. */
  private submit(count: number): void {
    const at = this.world.events.now;
    for (let i = 0; i < count && this.nextRequest < this.requests.length; i++) {
      const bytes = this.requests[this.nextRequest++]!;
      for (const replica of this.replicas) {
        this.world.network.transmit(this.clientEndpoint, replica.machine.id, bytes.length, at, () =>
          replica.machine.deliver(() => replica.driver.receiveForwarded(bytes)),
        );
      }
    }
  }

  /** During `from`'s work: consensus bytes to the replica at `to`, handled by its driver on arrival. */
  private send(from: Machine, to: number, bytes: Uint8Array): void {
    const peer = this.replicas[to]!;
    this.messages += 1;
    this.messageBytes += bytes.length;
    from.sendTo(peer.machine, bytes.length, () => peer.driver.receive(bytes));
  }

  /** Drops the stored blocks the ledger holds, except the state-transfer tail below the head. */
  private dropBlocks(replica: Replica, ledgerHolds: number): void {
    replica.storage.dropBelow(Math.min(ledgerHolds, replica.driver.height - stateTransferBlocks) + 1);
  }

  /** The driver stored (durably) a certified block: check it, and answer the clients if first. */
  private stored(replica: Replica, block: Block): void {
    const height = block.header.height;
    replica.certifiedRequests += block.transactions.length;
    // The benchmark's agreement checks, not the replica's work: done after the work is timed.
    replica.machine.afterWork(() => {
      for (const result of block.results)
        if ((decodeValidated(result) as { status?: unknown }).status === 'accepted') replica.accepted += 1;
      const hash = blockHash(block.header);
      const expected = this.hashes[height - 1];
      if (expected === undefined) this.hashes.push(hash);
      else if (!bytesEqual(expected, hash)) {
        throw new Error(
          `${this.groupId}: r${replica.index} disagrees with the first certified at height ${height}`,
        );
      }
    });
    if (replica.index === this.options.fetchReplica) {
      replica.machine.afterWork((finish) => (this.certifiedAtFetchReplica[height - 1] = finish));
    }
    if (height <= this.ackedHeight) return;
    // The first replica to certify a block answers its clients, who each send their next request.
    this.ackedHeight = height;
    const count = block.transactions.length;
    replica.machine.afterWork((finish) => {
      this.certifiedAt[height - 1] = finish;
      this.acknowledged += count;
      this.lastAckAt = finish;
    });
    replica.machine.sendToEndpoint(this.clientEndpoint, replyBytesPerRequest * count, () =>
      this.submit(count),
    );
  }
}
