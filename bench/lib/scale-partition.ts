/**
 * One partition of `npm run bench:scale`: a PBFT group of `PbftReplica` cores, each on its own
 * simulated machine (see scale-sim.ts), driven by the shared `applyReady` contract, with its own
 * closed-loop clients and real Ed25519. It also serves the global ledger's fetches of certified
 * blocks, from one of its replicas.
 *
 * Memory stays flat however many partitions run in this one process: a replica's in-memory block
 * store keeps only the blocks the global ledger does not hold yet plus a state-transfer tail (a real
 * replica's store is on disk, and a heap that grows with the partition count makes garbage collection
 * cost more per request); agreement is checked as the blocks come, against one 32-byte hash per height.
 */
import { createHash } from 'node:crypto';
import { bytesEqual, encodeWith, t } from '../../src/codec/index.js';
import { encodeClientRequest } from '../../src/consensus/pbft/messages.js';
import { PbftReplica, defaultPbftTuning } from '../../src/consensus/pbft/replica.js';
import { applyPersistOp, applyReady, toTransferred } from '../../src/consensus/pbft/driver.js';
import type { ReplicaHost } from '../../src/consensus/pbft/driver.js';
import type {
  CertifiedBlock,
  PbftConfig,
  PbftCrypto,
  PbftInput,
  PersistRecord,
} from '../../src/consensus/pbft/types.js';
import { headerSchema } from '../../src/ledger/header.js';
import { blockHash } from '../../src/ledger/block.js';
import type { GroupMembership } from '../../src/ledger/block.js';
import { SimApplication } from '../../src/sim/app.js';
import type { SimKeyring, SimSigner } from '../../src/sim/sim-crypto.js';
import type { Machine, World } from './scale-sim.js';

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

export function encodeLedgerBlock(block: CertifiedBlock): Uint8Array {
  return encodeWith(ledgerBlockSchema, {
    header: block.header,
    signatures: block.signatures,
    requests: block.proposal.requests,
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

interface Replica {
  readonly index: number;
  readonly machine: Machine;
  readonly core: PbftReplica;
  readonly app: SimApplication;
  readonly plainCrypto: PbftCrypto;
  readonly persisted: Map<string, PersistRecord>;
  /** Certified blocks of heights storedFrom.. (the store's tail; see stateTransferBlocks). */
  readonly blocks: CertifiedBlock[];
  storedFrom: number;
  /** Height of the last certified block. */
  height: number;
  readonly executedResults: Map<number, Uint8Array[]>;
  certifiedRequests: number;
  host?: ReplicaHost;
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
      const config: PbftConfig = {
        ...defaultPbftTuning,
        groupId: this.groupId,
        configEpoch: 1,
        replicas: infos,
        self: i,
        batchRequestsMax: options.batchRequestsMax,
        pendingRequestsMax: Math.max(defaultPbftTuning.pendingRequestsMax, 2 * options.clients),
      };
      this.replicas.push({
        index: i,
        machine: world.machine(`p${options.index}/r${i}`),
        core: new PbftReplica(config, signer.crypto),
        app: new SimApplication(),
        plainCrypto: signer.crypto,
        persisted: new Map(),
        blocks: [],
        storedFrom: 1,
        height: 0,
        executedResults: new Map(),
        certifiedRequests: 0,
      });
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
    return this.replicas.reduce((sum, replica) => sum + replica.blocks.length, 0);
  }

  get machines(): readonly Machine[] {
    return this.replicas.map((replica) => replica.machine);
  }

  /** Starts the replicas' ticks now and the clients at `clientsAt`. */
  start(clientsAt: number): void {
    for (const replica of this.replicas) {
      this.world.every(replica.machine, this.options.tickMs, this.world.events.now, (now) =>
        this.step(replica, { kind: 'tick', now: epochBaseMs + Math.floor(now) }),
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
        const blocks = this.readStored(replica, fromHeight, maxBlocks).map(encodeLedgerBlock);
        const size = blocks.reduce((sum, bytes) => sum + bytes.length, fetchOverheadBytes);
        replica.machine.sendTo(requester, size, (now) => onBlocks(blocks, now));
      },
      true,
    );
  }

  /**
   * Every replica holds the whole chain (storeCertified checked each block's hash against the
   * partition's as it came) and executed every request exactly once.
   */
  checkAgreement(): void {
    for (const replica of this.replicas) {
      if (replica.height !== this.height) {
        throw new Error(
          `${this.groupId}: r${replica.index} has ${replica.height} blocks, not ${this.height}`,
        );
      }
      if (replica.app.offsets !== this.requests.length) {
        throw new Error(
          `${this.groupId}: r${replica.index} executed ${replica.app.offsets} requests, not ${this.requests.length}`,
        );
      }
    }
  }

  describe(): string {
    return this.replicas
      .map(
        (r) =>
          `r${r.index}:v${r.core.view}/e${r.core.lastExecuted}/c${r.core.lastCertified}/p${r.core.pendingRequests}/q${r.machine.backlog}`,
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
          replica.machine.deliver(() => this.step(replica, { kind: 'request', bytes })),
        );
      }
    }
  }

  private step(replica: Replica, input: PbftInput): void {
    const host = this.hostOf(replica);
    applyReady(host, host.step(input));
  }

  private hostOf(replica: Replica): ReplicaHost {
    if (replica.host !== undefined) return replica.host;
    const send = (to: number, bytes: Uint8Array): void => {
      const peer = this.replicas[to]!;
      this.messages += 1;
      this.messageBytes += bytes.length;
      replica.machine.sendTo(peer.machine, bytes.length, () => this.step(peer, { kind: 'message', bytes }));
    };
    replica.host = {
      step: (input) => replica.core.step(input),
      persist: (op) => applyPersistOp(replica.persisted, op),
      storeCertified: (block) => this.storeCertified(replica, block),
      send: (to, bytes) => {
        if (to !== 'all') return send(to, bytes);
        for (let peer = 0; peer < this.replicas.length; peer++) if (peer !== replica.index) send(peer, bytes);
      },
      readBlocks: (fromSeq, count) => this.readStored(replica, fromSeq, count).map(toTransferred),
      encodeBlocks: (blocks) => replica.core.encodeBlocks(blocks),
      alreadyCommitted: () => undefined,
      rejected: (code) => this.rejected.set(code, (this.rejected.get(code) ?? 0) + 1),
      execute: (batch) => {
        const results = replica.app.execute(batch.proposal);
        replica.executedResults.set(batch.seq, results);
        return replica.plainCrypto.merkleRoot(results);
      },
    };
    return replica.host;
  }

  /** Stored blocks from `fromHeight` (at most `count`); throws if some were dropped already. */
  private readStored(replica: Replica, fromHeight: number, count: number): CertifiedBlock[] {
    if (fromHeight < replica.storedFrom) {
      throw new Error(
        `${this.groupId}/r${replica.index}: asked for blocks from ${fromHeight}, holds them from ${replica.storedFrom}`,
      );
    }
    const start = fromHeight - replica.storedFrom;
    return replica.blocks.slice(start, start + count);
  }

  /** Drops the stored blocks the ledger holds, except the state-transfer tail below the head. */
  private dropBlocks(replica: Replica, ledgerHolds: number): void {
    const keepFrom = Math.min(ledgerHolds, replica.height - stateTransferBlocks) + 1;
    if (keepFrom <= replica.storedFrom) return;
    replica.blocks.splice(0, keepFrom - replica.storedFrom);
    replica.storedFrom = keepFrom;
  }

  private storeCertified(replica: Replica, block: CertifiedBlock): void {
    const height = block.header.height;
    if (height !== replica.height + 1) {
      throw new Error(`${this.groupId}/r${replica.index}: block ${height} does not follow ${replica.height}`);
    }
    if (!replica.executedResults.delete(height)) {
      throw new Error(`${this.groupId}/r${replica.index}: certified block ${height} it did not execute`);
    }
    replica.blocks.push(block);
    replica.height = height;
    replica.certifiedRequests += block.proposal.requests.length;
    // The benchmark's agreement check, not the replica's work: done after the work is timed.
    replica.machine.afterWork(() => {
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
    const count = block.proposal.requests.length;
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
