/**
 * The global ledger of `npm run bench:scale`: a Raft group whose members are the production Raft
 * group driver (src/raft-group/driver.ts) over a `MemoryRaftStorage`, each on its own simulated
 * machine (see scale-sim.ts), whose links are its transport.
 *
 * Every `fetchIntervalMs` the leader asks one replica of each partition for the blocks it certified
 * since the last fetch (a request and a reply over the simulated links, the reply as large as the
 * encoded blocks) and proposes each block as one entry. Every member, when it applies an entry,
 * decodes the block and checks it before appending it to its copy of the global ledger: it must
 * follow the partition's previous block (height and previous hash), its transactions root must match
 * its requests, and its certificate must verify (verifyHeaderCertificate: 2f+1 real Ed25519
 * signatures). Replication lag is the leader's apply time minus the block's first certification.
 *
 * Memory stays flat however many partitions run in this one process (a heap that grows with the
 * partition count makes garbage collection cost more per request): a member keeps, per partition, the
 * block count, the head hash and a running digest of the block hashes, not the blocks; and every
 * `snapshotEntries` applied entries it snapshots that state and the Raft core compacts its log.
 */
import { bytesEqual, decodeWith, encodeWith, t } from '../../src/codec/index.js';
import { hexKey } from '../../src/consensus/pbft/quorum.js';
import { encodeRaftMessage } from '../../src/consensus/raft/index.js';
import type { RaftEntry, RaftInput, RaftMessage, RaftReady } from '../../src/consensus/raft/index.js';
import { merkleRoot } from '../../src/crypto/index.js';
import { blockHash, verifyHeaderCertificate } from '../../src/ledger/block.js';
import { RaftGroupDriver } from '../../src/raft-group/driver.js';
import type { RaftClock } from '../../src/raft-group/driver.js';
import { MemoryRaftStorage } from '../../src/raft-group/storage.js';
import { chainDigest, emptyDigest, ledgerBlockSchema } from './scale-partition.js';
import type { Partition } from './scale-partition.js';
import type { Machine, World } from './scale-sim.js';

export interface LedgerOptions {
  readonly members: number;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly fetchIntervalMs: number;
  /** Blocks one fetch reply carries at most. */
  readonly fetchBlocksMax: number;
  /** A member snapshots its state every this many applied entries (the log keeps one interval more). */
  readonly snapshotEntries: number;
}

const digestSchema = t.bytes({ length: 32 });

/** A member's state machine, which is also its snapshot: per partition, where its chain stands. */
const ledgerStateSchema = t.record({
  /** Blocks appended, over all partitions, and the running digest of their hashes in ledger order. */
  blocks: t.uint(),
  digest: digestSchema,
  chains: t.array(
    t.record({
      partitionId: t.string({ minLength: 1, maxLength: 256 }),
      height: t.uint(),
      head: digestSchema,
      digest: digestSchema,
    }),
    { maxItems: 4096 },
  ),
});

/** One partition's chain in a member's global ledger. */
interface Chain {
  height: number;
  /** Hash of the block at `height` (zeros before the first). */
  head: Uint8Array;
  /** chainDigest over the partition's block hashes, in height order. */
  digest: Uint8Array;
  /** Hashes of the last few heights (up to duplicateWindow), to check a re-proposed block. */
  readonly recent: Uint8Array[];
}

interface Member {
  readonly id: string;
  readonly machine: Machine;
  readonly driver: RaftGroupDriver;
  blocks: number;
  digest: Uint8Array;
  readonly chains: Map<string, Chain>;
  /** Snapshots of the state at multiples of snapshotEntries, each compacted to one interval later. */
  readonly pendingSnapshots: { readonly index: number; readonly data: Uint8Array }[];
  /** Leader side: highest height proposed per partition, and partitions with a fetch in flight. */
  readonly proposed: Map<string, number>;
  readonly fetching: Set<string>;
}

const entryBytesMax = 4 * 1024 * 1024;
/**
 * A block proposed again after a leader change is checked against the hash a member appended at its
 * height if it is this recent; older ones (none are expected) are counted and skipped unchecked.
 */
const duplicateWindow = 1024;

function emptyChain(): Chain {
  return { height: 0, head: emptyDigest, digest: emptyDigest, recent: [] };
}

export class GlobalLedger {
  /** Leader apply time minus first certification time, one per block (ms). */
  readonly lagsMs: number[] = [];
  /**
   * The lag in parts, one per block (ms): first certification → certified at the fetch replica →
   * its fetch reply handled at the leader → applied at the leader.
   */
  readonly lagParts = { fetchReplica: [] as number[], fetch: [] as number[], replicate: [] as number[] };
  /** Leader side: when each block's fetch reply was handled, by partition id and height. */
  private readonly fetchedAt = new Map<string, number[]>();
  verifiedBlocks = 0;
  duplicates = 0;
  uncheckedDuplicates = 0;
  snapshots = 0;
  snapshotsInstalled = 0;
  proposals = 0;
  refusedProposals = 0;
  fetches = 0;
  leaderChanges = 0;
  messages = 0;
  messageBytes = 0;
  readonly rejected = new Map<string, number>();
  private leaderId: string | undefined;
  private readonly members: Member[] = [];
  private readonly byId = new Map<string, Partition>();

  constructor(
    private readonly world: World,
    private readonly partitions: readonly Partition[],
    private readonly options: LedgerOptions,
  ) {
    for (const partition of partitions) this.byId.set(partition.groupId, partition);
    const voters = Array.from({ length: options.members }, (_, i) => `g${i}`);
    // Proposals are raw inputs (a block is proposed, not awaited), so no driver timer is armed; were
    // one, it would run on the virtual clock.
    const clock: RaftClock = {
      setTimeout: (callback, ms) => {
        let armed = true;
        world.events.schedule(world.events.now + ms, () => {
          if (armed) callback();
        });
        return () => {
          armed = false;
        };
      },
    };
    voters.forEach((id, i) => {
      const member: Member = {
        id,
        machine: world.machine(`ledger/${id}`),
        blocks: 0,
        digest: emptyDigest,
        chains: new Map(partitions.map((partition) => [partition.groupId, emptyChain()])),
        pendingSnapshots: [],
        proposed: new Map(),
        fetching: new Set(),
        // The callbacks run once the member exists: a fresh storage restores nothing.
        driver: new RaftGroupDriver({
          groupId: 'global-ledger',
          config: {
            id,
            voters,
            seed: 7919 * (i + 1),
            electionTicks: options.electionTicks,
            heartbeatTicks: options.heartbeatTicks,
            entryBytesMax,
          },
          storage: new MemoryRaftStorage(),
          clock,
          transport: { send: (to, message) => this.send(member, to, message) },
          stateMachine: {
            apply: (_index, data) => {
              this.applyBlock(member, data);
              return new Uint8Array(0);
            },
            snapshot: () => this.encodeState(member),
            restore: (_index, data) => this.installSnapshot(member, data),
          },
          observer: {
            // A refused proposal is counted as such (refusedProposals), not as a rejected input.
            stepped: (input, ready) => {
              if (input.kind === 'propose') return;
              for (const { code } of ready.rejected)
                this.rejected.set(code, (this.rejected.get(code) ?? 0) + 1);
            },
            applied: (entry) => this.applied(member, entry),
          },
        }),
      };
      this.members.push(member);
    });
  }

  get machines(): readonly Machine[] {
    return this.members.map((member) => member.machine);
  }

  /** Starts every member's ticks and fetch timer now. */
  start(): void {
    const now = this.world.events.now;
    for (const member of this.members) {
      this.world.every(member.machine, this.options.tickMs, now, () => this.step(member, { kind: 'tick' }));
      this.world.every(member.machine, this.options.fetchIntervalMs, now, () => this.fetchRound(member));
    }
  }

  hasLeader(): boolean {
    return this.members.some((member) => member.driver.isLeader);
  }

  /** Every member holds every block every partition certified. */
  caughtUp(): boolean {
    return this.members.every((member) =>
      this.partitions.every((partition) => member.chains.get(partition.groupId)!.height === partition.height),
    );
  }

  /** Heights of `partitionId` every member holds (the partition's replicas may drop those blocks). */
  heldEverywhere(partitionId: string): number {
    return Math.min(...this.members.map((member) => member.chains.get(partitionId)!.height));
  }

  /**
   * Throws unless every member's global ledger is the same sequence (same block count and running
   * digest) and holds exactly each partition's chain in height order: the digest of the hashes a
   * member appended equals the digest of the hashes the partition certified.
   */
  check(): void {
    const reference = this.members[0]!;
    const total = this.partitions.reduce((sum, partition) => sum + partition.height, 0);
    const expected = new Map(this.partitions.map((partition) => [partition.groupId, partition.digest()]));
    for (const member of this.members) {
      if (member.blocks !== total) {
        throw new Error(`ledger ${member.id}: ${member.blocks} blocks, partitions certified ${total}`);
      }
      if (!bytesEqual(member.digest, reference.digest)) {
        throw new Error(`ledger ${member.id}: its sequence of blocks differs from ledger ${reference.id}'s`);
      }
      for (const partition of this.partitions) {
        const chain = member.chains.get(partition.groupId)!;
        if (
          chain.height !== partition.height ||
          !bytesEqual(chain.digest, expected.get(partition.groupId)!)
        ) {
          throw new Error(
            `ledger ${member.id}: ${partition.groupId}'s blocks missing or not the partition's`,
          );
        }
      }
    }
  }

  describe(): string {
    return this.members
      .map((member) => {
        const status = member.driver.raft.status();
        return `${member.id}:${status.role}/t${status.term}/c${status.commit}/a${status.applied}/s${status.snapshotIndex}/b${member.blocks}`;
      })
      .join(' ');
  }

  /** Steps `input` into a member's driver, which carries out the Ready; returns that Ready. */
  private step(member: Member, input: RaftInput): RaftReady {
    const ready = member.driver.step(input);
    // Work on a machine runs one piece at a time, never inside another member's Ready.
    if (ready === undefined) throw new Error(`ledger ${member.id}: stepped while busy or closed`);
    this.maybeCompact(member);
    return ready;
  }

  /**
   * Hands the core the snapshot taken one interval ago, once it has applied past it: the log keeps
   * the last interval's entries, so a follower a little behind still gets entries, not a snapshot.
   */
  private maybeCompact(member: Member): void {
    const pending = member.pendingSnapshots[0];
    if (pending === undefined) return;
    if (member.driver.raft.status().applied < pending.index + this.options.snapshotEntries) return;
    member.pendingSnapshots.shift();
    this.snapshots += 1;
    member.driver.step({ kind: 'snapshot', index: pending.index, data: pending.data });
  }

  private encodeState(member: Member): Uint8Array {
    return encodeWith(ledgerStateSchema, {
      blocks: member.blocks,
      digest: member.digest,
      chains: [...member.chains].map(([partitionId, chain]) => ({
        partitionId,
        height: chain.height,
        head: chain.head,
        digest: chain.digest,
      })),
    });
  }

  /** A follower too far behind for the leader's log takes the leader's state from its snapshot. */
  private installSnapshot(member: Member, data: Uint8Array): void {
    const state = decodeWith(ledgerStateSchema, data);
    this.snapshotsInstalled += 1;
    member.blocks = state.blocks;
    member.digest = state.digest;
    for (const chain of state.chains) {
      member.chains.set(chain.partitionId, {
        height: chain.height,
        head: chain.head,
        digest: chain.digest,
        recent: [],
      });
    }
    member.pendingSnapshots.length = 0;
  }

  private send(member: Member, to: string, message: RaftMessage): void {
    const peer = this.members.find((candidate) => candidate.id === to);
    if (peer === undefined) throw new Error(`ledger: no member ${to}`);
    const bytes = encodeRaftMessage(message);
    this.messages += 1;
    this.messageBytes += bytes.length;
    member.machine.sendTo(peer.machine, bytes.length, () => this.step(peer, { kind: 'bytes', bytes }));
  }

  /** On the leader: one fetch in flight per partition, from the height after the last proposed. */
  private fetchRound(member: Member): void {
    if (!member.driver.isLeader) return;
    if (this.leaderId !== member.id) {
      if (this.leaderId !== undefined) this.leaderChanges += 1;
      this.leaderId = member.id;
      // What this member applied; blocks proposed but not applied yet may come again (then skipped).
      member.proposed.clear();
      for (const [partitionId, chain] of member.chains) member.proposed.set(partitionId, chain.height);
    }
    for (const partition of this.partitions) {
      const partitionId = partition.groupId;
      if (member.fetching.has(partitionId)) continue;
      member.fetching.add(partitionId);
      this.fetches += 1;
      const from = member.proposed.get(partitionId)! + 1;
      const held = this.heldEverywhere(partitionId);
      partition.fetch(member.machine, from, this.options.fetchBlocksMax, held, (blocks, now) => {
        member.fetching.delete(partitionId);
        const fetchedAt = this.fetchedAt.get(partitionId) ?? [];
        this.fetchedAt.set(partitionId, fetchedAt);
        for (let i = 0; i < blocks.length; i++) fetchedAt[from - 1 + i] ??= now;
        this.propose(member, partitionId, from, blocks);
      });
    }
  }

  private propose(member: Member, partitionId: string, from: number, blocks: readonly Uint8Array[]): void {
    if (!member.driver.isLeader || this.leaderId !== member.id) return;
    if (member.proposed.get(partitionId)! + 1 !== from) return;
    for (const data of blocks) {
      const refused = this.step(member, { kind: 'propose', data }).rejected.length > 0;
      if (refused) {
        this.refusedProposals += 1;
        return;
      }
      this.proposals += 1;
      member.proposed.set(partitionId, member.proposed.get(partitionId)! + 1);
    }
  }

  /** After the state machine (`applyBlock`) applied any entry. */
  private applied(member: Member, entry: RaftEntry): void {
    // The state after every snapshotEntries-th entry, kept until the core may compact to it.
    if (entry.index % this.options.snapshotEntries === 0) {
      member.pendingSnapshots.push({ index: entry.index, data: this.encodeState(member) });
    }
  }

  private applyBlock(member: Member, data: Uint8Array): void {
    if (data.length === 0) return;
    const block = decodeWith(ledgerBlockSchema, data, { maxBytes: entryBytesMax });
    const header = block.header;
    const partition = this.byId.get(header.partitionId);
    if (partition === undefined)
      throw new Error(`ledger ${member.id}: unknown partition ${header.partitionId}`);
    const chain = member.chains.get(header.partitionId)!;
    const hash = blockHash(header);
    if (header.height <= chain.height) {
      const back = chain.height - header.height;
      if (back >= chain.recent.length) {
        this.uncheckedDuplicates += 1;
        return;
      }
      if (!bytesEqual(chain.recent[chain.recent.length - 1 - back]!, hash)) {
        throw new Error(`ledger ${member.id}: a second, different ${header.partitionId}@${header.height}`);
      }
      this.duplicates += 1;
      return;
    }
    if (header.height !== chain.height + 1) {
      throw new Error(`ledger ${member.id}: ${header.partitionId}@${header.height} after ${chain.height}`);
    }
    if (!bytesEqual(header.previousHash, chain.head)) {
      throw new Error(`ledger ${member.id}: ${header.partitionId}@${header.height} does not chain`);
    }
    if (hexKey(merkleRoot(block.requests)) !== hexKey(header.transactionsRoot)) {
      throw new Error(`ledger ${member.id}: ${header.partitionId}@${header.height} transactions root`);
    }
    // 2f+1 real Ed25519 verifications; throws if the certificate does not hold.
    verifyHeaderCertificate(header, { signatures: block.signatures }, partition.membership);
    this.verifiedBlocks += 1;
    chain.height = header.height;
    chain.head = hash;
    chain.digest = chainDigest(chain.digest, hash);
    chain.recent.push(hash);
    if (chain.recent.length > duplicateWindow) chain.recent.shift();
    member.blocks += 1;
    member.digest = chainDigest(member.digest, hash);
    if (member.driver.isLeader) {
      const certifiedAt = partition.certifiedAt[header.height - 1]!;
      const atFetchReplica = partition.certifiedAtFetchReplica[header.height - 1]!;
      const fetchedAt = this.fetchedAt.get(header.partitionId)?.[header.height - 1] ?? atFetchReplica;
      member.machine.afterWork((finish) => {
        this.lagsMs.push(finish - certifiedAt);
        this.lagParts.fetchReplica.push(atFetchReplica - certifiedAt);
        this.lagParts.fetch.push(fetchedAt - atFetchReplica);
        this.lagParts.replicate.push(finish - fetchedAt);
      });
    }
  }
}
