/**
 * The global ledger of `npm run bench:scale`: a Raft group of `RaftNode` cores, each on its own
 * simulated machine (see scale-sim.ts), driven by the shared `applyRaftReady` contract.
 *
 * Every `fetchIntervalMs` the leader asks one replica of each partition for the blocks it certified
 * since the last fetch (a request and a reply over the simulated links, the reply as large as the
 * encoded blocks) and proposes each block as one entry. Every member, when it applies an entry,
 * decodes the block and checks it before appending it to its copy of the global ledger: it must
 * follow the partition's previous block (height and previous hash), its transactions root must match
 * its requests, and its certificate must verify (verifyHeaderCertificate: 2f+1 real Ed25519
 * signatures). Replication lag is the leader's apply time minus the block's first certification.
 */
import { decodeWith } from '../../src/codec/index.js';
import { hexKey } from '../../src/consensus/pbft/quorum.js';
import { RaftNode, applyRaftReady, encodeRaftMessage } from '../../src/consensus/raft/index.js';
import type { RaftEntry, RaftHost, RaftInput } from '../../src/consensus/raft/index.js';
import { merkleRoot } from '../../src/crypto/index.js';
import { blockHash, verifyHeaderCertificate } from '../../src/ledger/block.js';
import { ledgerBlockSchema } from './scale-partition.js';
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
}

/** One block of the global ledger, as a member appended it. */
interface LedgerRecord {
  readonly partitionId: string;
  readonly height: number;
  readonly hash: string;
}

interface Member {
  readonly id: string;
  readonly machine: Machine;
  readonly node: RaftNode;
  host?: RaftHost;
  readonly ledger: LedgerRecord[];
  /** Per partition: the hashes of its blocks, in height order (index height - 1). */
  readonly chains: Map<string, string[]>;
  /** Leader side: highest height proposed per partition, and partitions with a fetch in flight. */
  readonly proposed: Map<string, number>;
  readonly fetching: Set<string>;
}

const zeroHash = new Uint8Array(32);
const entryBytesMax = 4 * 1024 * 1024;

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
    voters.forEach((id, i) => {
      this.members.push({
        id,
        machine: world.machine(`ledger/${id}`),
        node: new RaftNode({
          id,
          voters,
          seed: 7919 * (i + 1),
          electionTicks: options.electionTicks,
          heartbeatTicks: options.heartbeatTicks,
          entryBytesMax,
        }),
        ledger: [],
        chains: new Map(partitions.map((partition) => [partition.groupId, []])),
        proposed: new Map(),
        fetching: new Set(),
      });
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
    return this.members.some((member) => member.node.status().role === 'leader');
  }

  /** Every member holds every block every partition certified. */
  caughtUp(): boolean {
    return this.members.every((member) =>
      this.partitions.every(
        (partition) => member.chains.get(partition.groupId)!.length === partition.ledger.length,
      ),
    );
  }

  /**
   * Throws unless every member's global ledger is the same sequence and holds exactly the union of
   * the partition ledgers, each partition's blocks in height order.
   */
  check(): void {
    const reference = this.members[0]!.ledger;
    const total = this.partitions.reduce((sum, partition) => sum + partition.ledger.length, 0);
    for (const member of this.members) {
      if (member.ledger.length !== total) {
        throw new Error(`ledger ${member.id}: ${member.ledger.length} blocks, partitions certified ${total}`);
      }
      member.ledger.forEach((record, i) => {
        const expected = reference[i]!;
        if (record.hash !== expected.hash) {
          throw new Error(`ledger ${member.id}: entry ${i} differs from ledger ${this.members[0]!.id}'s`);
        }
      });
      for (const partition of this.partitions) {
        const chain = member.chains.get(partition.groupId)!;
        const inOrder = member.ledger.filter((record) => record.partitionId === partition.groupId);
        partition.ledger.forEach((block, i) => {
          const hash = hexKey(blockHash(block.header));
          if (chain[i] !== hash || inOrder[i]?.hash !== hash || inOrder[i]?.height !== i + 1) {
            throw new Error(
              `ledger ${member.id}: block ${partition.groupId}@${i + 1} missing or not the partition's`,
            );
          }
        });
      }
    }
  }

  describe(): string {
    return this.members
      .map((member) => {
        const status = member.node.status();
        return `${member.id}:${status.role}/t${status.term}/c${status.commit}/a${status.applied}/b${member.ledger.length}`;
      })
      .join(' ');
  }

  private step(member: Member, input: RaftInput): void {
    const host = this.hostOf(member);
    applyRaftReady(host, host.step(input));
  }

  private hostOf(member: Member): RaftHost {
    if (member.host !== undefined) return member.host;
    member.host = {
      step: (input) => member.node.step(input),
      // The core keeps its log in memory; durable storage is not part of this model.
      persist: () => undefined,
      send: (to, message) => {
        const peer = this.members.find((candidate) => candidate.id === to);
        if (peer === undefined) throw new Error(`ledger: no member ${to}`);
        const bytes = encodeRaftMessage(message);
        this.messages += 1;
        this.messageBytes += bytes.length;
        member.machine.sendTo(peer.machine, bytes.length, () => this.step(peer, { kind: 'bytes', bytes }));
      },
      installSnapshot: () => {
        throw new Error('ledger: no snapshots in this benchmark');
      },
      apply: (entry) => this.apply(member, entry),
      rejected: (code) => this.rejected.set(code, (this.rejected.get(code) ?? 0) + 1),
    };
    return member.host;
  }

  /** On the leader: one fetch in flight per partition, from the height after the last proposed. */
  private fetchRound(member: Member): void {
    if (member.node.status().role !== 'leader') return;
    if (this.leaderId !== member.id) {
      if (this.leaderId !== undefined) this.leaderChanges += 1;
      this.leaderId = member.id;
      // What this member applied; blocks proposed but not applied yet may come again (then skipped).
      member.proposed.clear();
      for (const [partitionId, chain] of member.chains) member.proposed.set(partitionId, chain.length);
    }
    for (const partition of this.partitions) {
      const partitionId = partition.groupId;
      if (member.fetching.has(partitionId)) continue;
      member.fetching.add(partitionId);
      this.fetches += 1;
      const from = member.proposed.get(partitionId)! + 1;
      partition.fetch(member.machine, from, this.options.fetchBlocksMax, (blocks, now) => {
        member.fetching.delete(partitionId);
        const fetchedAt = this.fetchedAt.get(partitionId) ?? [];
        this.fetchedAt.set(partitionId, fetchedAt);
        for (let i = 0; i < blocks.length; i++) fetchedAt[from - 1 + i] ??= now;
        this.propose(member, partitionId, from, blocks);
      });
    }
  }

  private propose(member: Member, partitionId: string, from: number, blocks: readonly Uint8Array[]): void {
    if (member.node.status().role !== 'leader' || this.leaderId !== member.id) return;
    if (member.proposed.get(partitionId)! + 1 !== from) return;
    for (const data of blocks) {
      const ready = member.node.step({ kind: 'propose', data });
      const refused = ready.rejected.length > 0;
      applyRaftReady(this.hostOf(member), { ...ready, rejected: [] });
      if (refused) {
        this.refusedProposals += 1;
        return;
      }
      this.proposals += 1;
      member.proposed.set(partitionId, member.proposed.get(partitionId)! + 1);
    }
  }

  private apply(member: Member, entry: RaftEntry): void {
    if (entry.type !== 'normal' || entry.data.length === 0) return;
    const block = decodeWith(ledgerBlockSchema, entry.data, { maxBytes: entryBytesMax });
    const header = block.header;
    const partition = this.byId.get(header.partitionId);
    if (partition === undefined)
      throw new Error(`ledger ${member.id}: unknown partition ${header.partitionId}`);
    const chain = member.chains.get(header.partitionId)!;
    const hash = blockHash(header);
    const hashHex = hexKey(hash);
    if (header.height <= chain.length) {
      if (chain[header.height - 1] !== hashHex) {
        throw new Error(`ledger ${member.id}: a second, different ${header.partitionId}@${header.height}`);
      }
      this.duplicates += 1;
      return;
    }
    if (header.height !== chain.length + 1) {
      throw new Error(`ledger ${member.id}: ${header.partitionId}@${header.height} after ${chain.length}`);
    }
    const previous = chain.length === 0 ? hexKey(zeroHash) : chain[chain.length - 1]!;
    if (hexKey(header.previousHash) !== previous) {
      throw new Error(`ledger ${member.id}: ${header.partitionId}@${header.height} does not chain`);
    }
    if (hexKey(merkleRoot(block.requests)) !== hexKey(header.transactionsRoot)) {
      throw new Error(`ledger ${member.id}: ${header.partitionId}@${header.height} transactions root`);
    }
    // 2f+1 real Ed25519 verifications; throws if the certificate does not hold.
    verifyHeaderCertificate(header, { signatures: block.signatures }, partition.membership);
    this.verifiedBlocks += 1;
    chain.push(hashHex);
    member.ledger.push({ partitionId: header.partitionId, height: header.height, hash: hashHex });
    if (member.node.status().role === 'leader') {
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
