/**
 * A whole PBFT group in one process, driven from one seed (TigerBeetle's VOPR, etcd's raft tests).
 *
 * Each seed draws a network (drops, delays, duplicates, reorders, partitions), crashes and restarts,
 * and up to f Byzantine replicas with behaviours of their own. A safety phase runs with faults on;
 * then the network heals, crashed replicas restart, and a liveness phase must bring every correct
 * replica to the same height with every client request acknowledged. Invariants are checked after
 * every step. The same seed always produces the same run.
 */
import { encodeCanonical } from '../codec/index.js';
import { AssertionError } from '../errors.js';
import { inclusionProof, verifyInclusion } from '../crypto/index.js';
import type { InclusionProof } from '../crypto/index.js';
import {
  certificateValid,
  decodeBody,
  decodeEnvelope,
  encodeClientRequest,
  encodeEnvelope,
  headerHash,
  proposalDigest,
  signMessage,
} from '../consensus/pbft/messages.js';
import type { Envelope, PbftMessage } from '../consensus/pbft/messages.js';
import { faultTolerance, hexKey, quorumSize, sameBytes } from '../consensus/pbft/quorum.js';
import { PbftReplica } from '../consensus/pbft/replica.js';
import { applyPersistOp, applyReady, toTransferred } from '../consensus/pbft/driver.js';
import type { ReplicaHost } from '../consensus/pbft/driver.js';
import type {
  CertifiedBlock,
  CertifiedHeader,
  PbftConfig,
  PbftReady,
  PersistRecord,
  Proposal,
} from '../consensus/pbft/types.js';
import { SimApplication } from './app.js';
import { TraceDigest } from './trace-digest.js';
import { Prng } from './prng.js';
import { SimKeyring } from './sim-crypto.js';
import type { SimCryptoKind, SimSigner } from './sim-crypto.js';

export const faultKinds = [
  'drop',
  'delay',
  'duplicate',
  'reorder',
  'partition',
  'crash',
  'restart',
  'equivocation',
  'conflicting-vote',
  'forged',
  'replayed',
  'wrong-digest',
  'silent-primary',
  'twins',
] as const;
export type FaultKind = (typeof faultKinds)[number];

type ByzantineBehaviour =
  'equivocate' | 'conflicting-votes' | 'forge' | 'replay' | 'wrong-digest' | 'silent-primary';
const byzantineBehaviours: readonly ByzantineBehaviour[] = [
  'equivocate',
  'conflicting-votes',
  'forge',
  'replay',
  'wrong-digest',
  'silent-primary',
];

export interface SimOptions {
  readonly seed: number;
  readonly replicas: number;
  readonly crypto?: SimCryptoKind;
  /** Ticks with faults on. */
  readonly safetyTicks?: number;
  /** Ticks allowed after healing for everything to complete: the liveness bound. */
  readonly livenessTicks?: number;
  readonly clients?: number;
  readonly requestsPerClient?: number;
  /** Called every `progressEveryTicks` with a summary, for the live view. */
  readonly onProgress?: (summary: SimSummary) => void;
  readonly progressEveryTicks?: number;
}

export interface SimSummary {
  readonly seed: number;
  readonly tick: number;
  readonly phase: 'safety' | 'liveness' | 'done';
  readonly height: number;
  readonly views: number[];
  readonly acked: number;
  readonly requests: number;
  readonly crashed: number[];
  readonly byzantine: string[];
  readonly faults: Record<FaultKind, number>;
}

export interface SimResult {
  readonly seed: number;
  readonly violations: string[];
  readonly faults: Record<FaultKind, number>;
  readonly height: number;
  readonly acked: number;
  readonly requests: number;
  readonly ticks: number;
  readonly maxView: number;
  /** sha256 (16 hex) of every event delivered, in order: equal for equal runs. */
  readonly trace: string;
}

const tickMs = 10;

interface LedgerEntry {
  readonly block: CertifiedBlock;
  readonly results: readonly Uint8Array[];
}

/** A process hosting one replica: its durable state survives crashes, the rest does not. */
class Host {
  core: PbftReplica;
  app = new SimApplication();
  crashed = false;
  readonly persisted = new Map<string, PersistRecord>();
  readonly ledger: LedgerEntry[] = [];
  /** Results computed for batches executed but not yet certified. */
  readonly executedResults = new Map<number, Uint8Array[]>();
  readonly received: Uint8Array[] = [];

  constructor(
    readonly index: number,
    readonly label: string,
    readonly signer: SimSigner,
    readonly config: PbftConfig,
    readonly byzantine: readonly ByzantineBehaviour[],
  ) {
    this.core = new PbftReplica(config, signer.crypto);
  }

  get correct(): boolean {
    return this.byzantine.length === 0;
  }

  /** Rebuilds the replica from what was persisted, as a restarted process would. */
  restart(): void {
    this.crashed = false;
    this.app = new SimApplication();
    this.executedResults.clear();
    for (const entry of this.ledger) {
      const results = this.app.execute(entry.block.proposal);
      const root = this.signer.crypto.merkleRoot(results);
      if (!sameBytes(root, entry.block.header.resultsRoot)) {
        throw new AssertionError(
          `${this.label}: replaying block ${entry.block.header.height} gave other results`,
        );
      }
    }
    const head = this.ledger.at(-1)?.block;
    const stableEntry = [...this.ledger]
      .reverse()
      .find((entry) => entry.block.header.height % this.config.checkpointInterval === 0);
    this.core = new PbftReplica(this.config, this.signer.crypto, {
      records: [...this.persisted.values()],
      ...(head === undefined ? {} : { head }),
      ...(stableEntry === undefined ? {} : { stable: stableEntry.block }),
    });
  }
}

interface ClientRequestState {
  readonly seq: number;
  readonly bytes: Uint8Array;
  sentTick: number;
  acked?: { readonly height: number; readonly hash: string };
}

class SimClient {
  readonly requests: ClientRequestState[] = [];
  constructor(
    readonly index: number,
    readonly signer: SimSigner,
  ) {}
}

interface Reply {
  readonly certified: CertifiedHeader;
  readonly requestIndex: number;
  readonly proof: InclusionProof;
}

type Event =
  | { readonly kind: 'message'; readonly to: Host; readonly bytes: Uint8Array }
  | { readonly kind: 'request'; readonly to: Host; readonly bytes: Uint8Array }
  | {
      readonly kind: 'reply';
      readonly client: SimClient;
      readonly reply: Reply;
      readonly request: Uint8Array;
    };

interface Scheduled {
  readonly time: number;
  readonly order: number;
  readonly event: Event;
}

/** A binary min-heap by (time, order): order breaks ties so that runs are deterministic. */
class EventQueue {
  private readonly heap: Scheduled[] = [];
  private order = 0;
  push(time: number, event: Event): void {
    const item = { time, order: this.order++, event };
    const heap = this.heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }
  peekTime(): number {
    return this.heap[0]?.time ?? Number.POSITIVE_INFINITY;
  }
  pop(): Scheduled | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined) return undefined;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < heap.length && before(heap[left]!, heap[smallest]!)) smallest = left;
        if (right < heap.length && before(heap[right]!, heap[smallest]!)) smallest = right;
        if (smallest === i) break;
        [heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!];
        i = smallest;
      }
    }
    return top;
  }
  get size(): number {
    return this.heap.length;
  }
}

function before(a: Scheduled, b: Scheduled): boolean {
  return a.time < b.time || (a.time === b.time && a.order < b.order);
}

class InvariantViolation extends Error {}

export class SimWorld {
  readonly options: Required<Omit<SimOptions, 'onProgress'>> & Pick<SimOptions, 'onProgress'>;
  private readonly rng: Prng;
  private readonly netRng: Prng;
  private readonly byzRng: Prng;
  private readonly keyring: SimKeyring;
  private readonly hosts: Host[] = [];
  private readonly clients: SimClient[] = [];
  private readonly queue = new EventQueue();
  private readonly trace = new TraceDigest();
  private readonly config: PbftConfig[] = [];
  private readonly keysById = new Map<string, Uint8Array>();
  private readonly faults = Object.fromEntries(faultKinds.map((kind) => [kind, 0])) as Record<
    FaultKind,
    number
  >;
  private readonly committed = new Map<number, string>();
  private now = 0;
  private tick = 0;
  private phase: 'safety' | 'liveness' | 'done' = 'safety';
  private partition: Set<number> | undefined;
  private partitionUntil = 0;
  private readonly network: { drop: number; duplicate: number; reorder: number; delayMax: number };
  private readonly crashUntil = new Map<Host, number>();
  private readonly quorum: number;
  private readonly f: number;
  /** A broadcast is one byte array sent to many: decode it once for the Byzantine transform. */
  private readonly adapters = new WeakMap<Host, ReplicaHost>();
  private readonly decodedOutgoing = new WeakMap<Uint8Array, { envelope: Envelope; message: PbftMessage }>();

  constructor(options: SimOptions) {
    this.options = {
      crypto: 'hmac',
      safetyTicks: 600,
      livenessTicks: 3000,
      clients: 2,
      requestsPerClient: 12,
      progressEveryTicks: 100,
      ...options,
    };
    const n = this.options.replicas;
    this.f = faultTolerance(n);
    this.quorum = quorumSize(n);
    this.rng = new Prng(this.options.seed);
    this.netRng = this.rng.fork();
    this.byzRng = this.rng.fork();
    this.keyring = new SimKeyring(this.options.crypto);
    this.network = {
      drop: this.rng.next() * 0.15,
      duplicate: this.rng.next() * 0.1,
      reorder: this.rng.next() * 0.1,
      delayMax: this.rng.int(1, 4) * tickMs,
    };

    const signers = Array.from({ length: n }, (_, i) =>
      this.keyring.identity(`${this.options.seed}/replica-${i}`),
    );
    const replicas = signers.map((signer, i) => ({ id: `r${i}`, publicKey: signer.publicKey }));
    for (const replica of replicas) this.keysById.set(replica.id, replica.publicKey);

    // Up to f replicas are Byzantine; one of them may instead be a pair of twins sharing an identity.
    const byzantineCount = this.rng.int(0, this.f);
    const byzantineIndexes = new Set(this.rng.shuffle([...Array(n).keys()]).slice(0, byzantineCount));
    const twinsIndex = byzantineCount > 0 && this.rng.chance(0.3) ? [...byzantineIndexes][0] : undefined;
    for (let i = 0; i < n; i++) {
      const config: PbftConfig = {
        groupId: 'sim/0',
        configEpoch: 1,
        replicas,
        self: i,
        checkpointInterval: 4,
        watermarkWindow: 8,
        batchRequestsMax: this.rng.int(1, 6),
        batchBytesMax: 64 * 1024,
        batchTicksMax: this.rng.int(1, 3),
        requestTimeoutTicks: 40,
        viewChangeTimeoutTicks: 40,
        statusIntervalTicks: 8,
        pendingRequestsMax: 1000,
        requestBytesMax: 64 * 1024,
        clockSkewMaxMs: 1000,
        fetchBlocksMax: 8,
      };
      this.config.push(config);
      let behaviours: ByzantineBehaviour[] = [];
      if (byzantineIndexes.has(i) && i !== twinsIndex) {
        behaviours = byzantineBehaviours.filter(() => this.rng.chance(0.5));
        if (behaviours.length === 0) behaviours = [this.rng.pick(byzantineBehaviours)];
      }
      if (i === twinsIndex) {
        this.hosts.push(new Host(i, `r${i}`, signers[i]!, config, ['replay']));
        this.hosts.push(new Host(i, `r${i}-twin`, signers[i]!, config, ['replay']));
        this.faults.twins += 1;
      } else {
        this.hosts.push(new Host(i, `r${i}`, signers[i]!, config, behaviours));
      }
    }
    for (let c = 0; c < this.options.clients; c++) {
      this.clients.push(new SimClient(c, this.keyring.identity(`${this.options.seed}/client-${c}`)));
    }
  }

  /** Runs the safety phase then the liveness phase. Never throws: violations are returned. */
  run(): SimResult {
    const violations: string[] = [];
    try {
      this.runUntil(this.options.safetyTicks, () => false);
      this.heal();
      this.phase = 'liveness';
      const limit = this.options.safetyTicks + this.options.livenessTicks;
      const done = this.runUntil(limit, () => this.livenessReached());
      if (!done)
        violations.push(
          `liveness: not done ${this.options.livenessTicks} ticks after healing (${this.describe()})`,
        );
      else this.checkFinal();
      this.phase = 'done';
    } catch (error) {
      if (error instanceof InvariantViolation || error instanceof AssertionError)
        violations.push(error.message);
      else
        violations.push(
          `exception: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
        );
    }
    this.emitProgress();
    return {
      seed: this.options.seed,
      violations,
      faults: { ...this.faults },
      height: Math.max(0, ...this.correctHosts().map((host) => host.ledger.length)),
      acked: this.ackedCount(),
      requests: this.requestCount(),
      ticks: this.tick,
      maxView: Math.max(...this.hosts.map((host) => host.core.view)),
      trace: this.trace.hex(),
    };
  }

  private runUntil(lastTick: number, done: () => boolean): boolean {
    while (this.tick < lastTick) {
      this.tick += 1;
      this.now = this.tick * tickMs;
      if (this.phase === 'safety') this.injectFaults();
      this.clientActions();
      for (const host of this.hosts) {
        if (!host.crashed)
          this.drive(host, host.core.step({ kind: 'tick', now: this.now + this.skew(host) }));
      }
      while (this.queue.peekTime() <= this.now) {
        const item = this.queue.pop()!;
        this.deliver(item.event);
      }
      if (this.tick % this.options.progressEveryTicks === 0) this.emitProgress();
      if (done()) return true;
    }
    return false;
  }

  /** Clock skew within policy: correct replicas' clocks differ by less than clockSkewMaxMs. */
  private skew(host: Host): number {
    return (host.index * 37) % 200;
  }

  // ---- faults ----

  private injectFaults(): void {
    const rng = this.rng;
    if (this.partition !== undefined && this.tick >= this.partitionUntil) this.partition = undefined;
    if (this.partition === undefined && rng.chance(0.01)) {
      const size = rng.int(1, this.options.replicas - 1);
      this.partition = new Set(rng.shuffle([...Array(this.options.replicas).keys()]).slice(0, size));
      this.partitionUntil = this.tick + rng.int(20, 150);
      this.faults.partition += 1;
    }
    for (const [host, until] of this.crashUntil) {
      if (this.tick >= until) this.restartHost(host);
    }
    if (rng.chance(0.01)) {
      const host = rng.pick(this.hosts);
      if (!host.crashed) {
        host.crashed = true;
        this.crashUntil.set(host, this.tick + rng.int(10, 200));
        this.faults.crash += 1;
      }
    }
  }

  private restartHost(host: Host): void {
    this.crashUntil.delete(host);
    host.restart();
    this.faults.restart += 1;
  }

  private heal(): void {
    this.partition = undefined;
    for (const host of [...this.crashUntil.keys()]) this.restartHost(host);
    this.network.drop = 0;
    this.network.duplicate = 0;
    this.network.reorder = 0;
  }

  // ---- the network ----

  private send(from: Host, to: number | 'all', bytes: Uint8Array): void {
    const targets =
      to === 'all' ? [...Array(this.options.replicas).keys()].filter((i) => i !== from.index) : [to];
    for (const target of targets) {
      for (const out of this.byzantineTransform(from, target, bytes))
        this.transmit(from.index, out.target, out.bytes);
    }
  }

  private transmit(fromIndex: number, target: number, bytes: Uint8Array): void {
    const rng = this.netRng;
    if (this.partition !== undefined && this.partition.has(fromIndex) !== this.partition.has(target)) return;
    if (rng.chance(this.network.drop)) {
      this.faults.drop += 1;
      return;
    }
    const copies = rng.chance(this.network.duplicate) ? 2 : 1;
    if (copies === 2) this.faults.duplicate += 1;
    const recipients = this.hosts.filter((host) => host.index === target);
    for (let copy = 0; copy < copies; copy++) {
      let delay = rng.int(1, this.network.delayMax);
      if (rng.chance(this.network.reorder)) {
        delay += rng.int(tickMs, 8 * tickMs);
        this.faults.reorder += 1;
      } else if (delay > tickMs) {
        this.faults.delay += 1;
      }
      // Twins: each message reaches one of the two at random, or both.
      const chosen =
        recipients.length === 1 ? recipients : rng.chance(0.5) ? recipients : [rng.pick(recipients)];
      for (const host of chosen) this.queue.push(this.now + delay, { kind: 'message', to: host, bytes });
    }
  }

  private deliver(event: Event): void {
    if (event.kind === 'reply') {
      this.trace.add(`reply:${event.client.index}`, event.reply);
      this.onReply(event.client, event.reply, event.request);
      return;
    }
    const host = event.to;
    if (host.crashed) return;
    this.trace.add(`${event.kind}:${host.index}`, event.bytes);
    if (event.kind === 'message' && host.received.length < 256) host.received.push(event.bytes);
    this.drive(host, host.core.step({ kind: event.kind, bytes: event.bytes }));
  }

  // ---- a replica's driver: the same contract a real node follows ----

  private drive(host: Host, ready: PbftReady): void {
    let adapter = this.adapters.get(host);
    if (adapter === undefined) {
      adapter = this.hostAdapter(host);
      this.adapters.set(host, adapter);
    }
    applyReady(adapter, ready);
  }

  /** The simulated process behind a replica, as the shared driver sees it. */
  private hostAdapter(host: Host): ReplicaHost {
    return {
      step: (input) => host.core.step(input),
      persist: (op) => applyPersistOp(host.persisted, op),
      storeCertified: (block) => this.storeCertified(host, block),
      send: (to, bytes) => this.send(host, to, bytes),
      readBlocks: (fromSeq, count) =>
        host.ledger.slice(fromSeq - 1, fromSeq - 1 + count).map((entry) => toTransferred(entry.block)),
      encodeBlocks: (blocks) => host.core.encodeBlocks(blocks),
      alreadyCommitted: (request, seq) => {
        const entry = host.ledger[seq - 1];
        if (entry !== undefined) this.replyForBlock(host, entry.block, request);
      },
      execute: (batch) => {
        const results = host.app.execute(batch.proposal);
        host.executedResults.set(batch.seq, results);
        return host.signer.crypto.merkleRoot(results);
      },
    };
  }

  private storeCertified(host: Host, block: CertifiedBlock): void {
    const height = block.header.height;
    const results = host.executedResults.get(height);
    if (results === undefined)
      throw new AssertionError(`${host.label}: certified block ${height} it did not execute`);
    host.executedResults.delete(height);
    if (height !== host.ledger.length + 1) {
      throw new InvariantViolation(
        `${host.label}: certified block ${height} does not follow ${host.ledger.length}`,
      );
    }
    host.ledger.push({ block, results });
    if (host.correct) this.checkCommitted(host, block);
    for (const request of block.proposal.requests) this.replyForBlock(host, block, request);
  }

  // ---- invariants ----

  /** Agreement, immutability and certificate validity for a block a correct replica stored. */
  private checkCommitted(host: Host, block: CertifiedBlock): void {
    const height = block.header.height;
    const hash = hexKey(headerHash(host.signer.crypto, block.header));
    const known = this.committed.get(height);
    if (known === undefined) this.committed.set(height, hash);
    else if (known !== hash) {
      throw new InvariantViolation(
        `agreement: ${host.label} committed ${hash.slice(0, 12)} at ${height}, others ${known.slice(0, 12)}`,
      );
    }
    if (!certificateValid(host.signer.crypto, block, this.keysById, this.quorum)) {
      throw new InvariantViolation(`certificate: block ${height} at ${host.label} does not verify`);
    }
    const previous = host.ledger[height - 2];
    if (
      previous !== undefined &&
      !sameBytes(block.header.previousHash, headerHash(host.signer.crypto, previous.block.header))
    ) {
      throw new InvariantViolation(`chain: block ${height} at ${host.label} does not link to ${height - 1}`);
    }
    if (!sameBytes(block.header.transactionsRoot, host.signer.crypto.merkleRoot(block.proposal.requests))) {
      throw new InvariantViolation(
        `contents: block ${height} at ${host.label} has the wrong transactions root`,
      );
    }
  }

  private checkFinal(): void {
    const hosts = this.correctHosts();
    for (const host of hosts) {
      host.ledger.forEach((entry, index) => {
        const hash = hexKey(headerHash(host.signer.crypto, entry.block.header));
        if (this.committed.get(index + 1) !== hash) {
          throw new InvariantViolation(`immutability: ${host.label} block ${index + 1} changed`);
        }
      });
    }
    for (const client of this.clients) {
      for (const request of client.requests) {
        const acked = request.acked;
        if (acked === undefined) continue;
        for (const host of hosts) {
          const entry = host.ledger[acked.height - 1];
          if (
            entry === undefined ||
            hexKey(headerHash(host.signer.crypto, entry.block.header)) !== acked.hash
          ) {
            throw new InvariantViolation(
              `acked: client ${client.index} request ${request.seq} acked at ${acked.height} is not in ${host.label}'s ledger`,
            );
          }
        }
      }
    }
  }

  private livenessReached(): boolean {
    if (this.clients.some((client) => client.requests.length < this.options.requestsPerClient)) return false;
    if (this.clients.some((client) => client.requests.some((request) => request.acked === undefined)))
      return false;
    const heights = this.correctHosts().map((host) => host.ledger.length);
    // Done only when every correct replica holds every committed block and every acknowledged one.
    const ackedHeights = this.clients.flatMap((client) =>
      client.requests.map((request) => request.acked?.height ?? 0),
    );
    const target = Math.max(...this.committed.keys(), ...ackedHeights, 0);
    return heights.every((height) => height === target);
  }

  private correctHosts(): Host[] {
    return this.hosts.filter((host) => host.correct);
  }

  // ---- clients ----

  private clientActions(): void {
    for (const client of this.clients) {
      const outstanding = client.requests.filter((request) => request.acked === undefined);
      if (
        this.phase === 'safety' &&
        client.requests.length < this.options.requestsPerClient &&
        outstanding.length < 3 &&
        this.rng.chance(0.1)
      ) {
        this.sendNextRequest(client);
      }
      for (const request of outstanding) {
        if (this.tick - request.sentTick >= 60) {
          request.sentTick = this.tick;
          this.broadcastRequest(request.bytes);
        }
      }
      // In the liveness phase, clients that have not sent everything send the rest.
      if (this.phase === 'liveness' && client.requests.length < this.options.requestsPerClient) {
        this.sendNextRequest(client);
      }
    }
  }

  /** The client signs its next request (seq 1, 2, …) and sends it to every replica. */
  private sendNextRequest(client: SimClient): void {
    const seq = client.requests.length + 1;
    const operation = encodeCanonical({ client: client.index, seq });
    const bytes = encodeClientRequest(
      { group: 'sim/0', client: client.signer.publicKey, seq, operation },
      client.signer.sign,
    );
    client.requests.push({ seq, bytes, sentTick: this.tick });
    this.broadcastRequest(bytes);
  }

  private broadcastRequest(bytes: Uint8Array): void {
    for (const host of this.hosts) {
      if (this.partition !== undefined && this.partition.has(host.index)) continue;
      if (this.netRng.chance(this.network.drop)) {
        this.faults.drop += 1;
        continue;
      }
      this.queue.push(this.now + this.netRng.int(1, this.network.delayMax), {
        kind: 'request',
        to: host,
        bytes,
      });
    }
  }

  private replyForBlock(host: Host, block: CertifiedBlock, request: Uint8Array): void {
    const index = block.proposal.requests.findIndex((bytes) => sameBytes(bytes, request));
    if (index < 0) return;
    const client = this.clients.find((candidate) =>
      candidate.requests.some((state) => sameBytes(state.bytes, request)),
    );
    if (client === undefined) return;
    const reply: Reply = {
      certified: { header: block.header, signatures: block.signatures },
      requestIndex: index,
      proof: inclusionProof(block.proposal.requests, index),
    };
    this.queue.push(this.now + this.netRng.int(1, this.network.delayMax), {
      kind: 'reply',
      client,
      reply,
      request,
    });
    if (host.byzantine.includes('forge')) {
      // A forged acknowledgement: a header the group never certified, with the real signatures.
      const forged: Reply = {
        ...reply,
        certified: {
          ...reply.certified,
          header: { ...reply.certified.header, timestamp: reply.certified.header.timestamp + 1 },
        },
      };
      this.faults.forged += 1;
      this.queue.push(this.now + 1, { kind: 'reply', client, reply: forged, request });
    }
  }

  /** A client accepts an acknowledgement only with a valid certificate and inclusion proof. */
  private onReply(client: SimClient, reply: Reply, request: Uint8Array): void {
    const state = client.requests.find((candidate) => sameBytes(candidate.bytes, request));
    if (state === undefined || state.acked !== undefined) return;
    const crypto = client.signer.crypto;
    if (!certificateValid(crypto, reply.certified, this.keysById, this.quorum)) return;
    if (!verifyInclusion(reply.certified.header.transactionsRoot, request, reply.proof)) return;
    const height = reply.certified.header.height;
    const hash = hexKey(headerHash(crypto, reply.certified.header));
    const known = this.committed.get(height);
    if (known !== undefined && known !== hash) {
      throw new InvariantViolation(
        `acked: client ${client.index} accepted block ${hash.slice(0, 12)} at ${height}, committed ${known.slice(0, 12)}`,
      );
    }
    state.acked = { height, hash };
  }

  private ackedCount(): number {
    return this.clients.reduce(
      (sum, client) => sum + client.requests.filter((request) => request.acked).length,
      0,
    );
  }

  private requestCount(): number {
    return this.clients.reduce((sum, client) => sum + client.requests.length, 0);
  }

  // ---- Byzantine behaviour ----

  /** What a Byzantine replica actually sends in place of one honest message. */
  private byzantineTransform(
    host: Host,
    target: number,
    bytes: Uint8Array,
  ): { target: number; bytes: Uint8Array }[] {
    if (host.correct || host.byzantine.length === 0) return [{ target, bytes }];
    const rng = this.byzRng;
    const behaviours = host.byzantine;
    if (this.phase === 'liveness' && rng.chance(0.7)) return [{ target, bytes }];
    let decoded = this.decodedOutgoing.get(bytes);
    if (decoded === undefined) {
      const envelope = decodeEnvelope(bytes);
      decoded = { envelope, message: decodeBody(envelope.body) };
      this.decodedOutgoing.set(bytes, decoded);
    }
    const { message } = decoded;
    const out: { target: number; bytes: Uint8Array }[] = [];
    const resign = (changed: PbftMessage): Uint8Array =>
      encodeEnvelope(signMessage(host.signer.crypto, changed));

    if (behaviours.includes('silent-primary') && host.core.isPrimary) {
      this.faults['silent-primary'] += 1;
      return [];
    }
    let replaced = false;
    if (message.type === 'pre-prepare' && behaviours.includes('equivocate') && target % 2 === 1) {
      const proposal: Proposal = { ...message.proposal, timestamp: message.proposal.timestamp + 1 + target };
      out.push({
        target,
        bytes: resign({ ...message, proposal, digest: proposalDigest(host.signer.crypto, proposal) }),
      });
      this.faults.equivocation += 1;
      replaced = true;
    } else if (message.type === 'pre-prepare' && behaviours.includes('wrong-digest') && rng.chance(0.5)) {
      out.push({ target, bytes: resign({ ...message, digest: randomBytes(rng, 32) }) });
      this.faults['wrong-digest'] += 1;
      replaced = true;
    } else if (
      (message.type === 'prepare' || message.type === 'commit') &&
      behaviours.includes('conflicting-votes') &&
      rng.chance(0.5)
    ) {
      out.push({ target, bytes: resign({ ...message, digest: randomBytes(rng, 32) }) });
      this.faults['conflicting-vote'] += 1;
      replaced = true;
    } else if (message.type === 'prepare' && behaviours.includes('wrong-digest') && rng.chance(0.3)) {
      out.push({ target, bytes: resign({ ...message, digest: randomBytes(rng, 32) }) });
      this.faults['wrong-digest'] += 1;
      replaced = true;
    }
    if (!replaced) out.push({ target, bytes });

    if (behaviours.includes('forge') && rng.chance(0.2)) {
      // Claims to be another replica, signed with its own key: must fail authentication.
      const victim = (host.index + 1 + rng.int(0, this.options.replicas - 2)) % this.options.replicas;
      out.push({ target, bytes: resign({ ...message, from: victim }) });
      this.faults.forged += 1;
    }
    if (behaviours.includes('replay') && host.received.length > 0 && rng.chance(0.3)) {
      out.push({ target, bytes: rng.pick(host.received) });
      this.faults.replayed += 1;
    }
    return out;
  }

  // ---- reporting ----

  private describe(): string {
    return (
      this.hosts
        .map(
          (host) =>
            `${host.label}${host.correct ? '' : '*'}${host.crashed ? '!' : ''}:v${host.core.view}${host.core.inViewChange ? 'vc' : ''}/e${host.core.lastExecuted}/c${host.ledger.length}/p${host.core.pendingRequests}`,
        )
        .join(' ') + ` acked ${this.ackedCount()}/${this.requestCount()} committed ${this.committed.size}`
    );
  }

  private emitProgress(): void {
    this.options.onProgress?.({
      seed: this.options.seed,
      tick: this.tick,
      phase: this.phase,
      height: Math.max(0, ...this.correctHosts().map((host) => host.ledger.length)),
      views: this.hosts.map((host) => host.core.view),
      acked: this.ackedCount(),
      requests: this.requestCount(),
      crashed: this.hosts.filter((host) => host.crashed).map((host) => host.index),
      byzantine: this.hosts
        .filter((host) => !host.correct)
        .map((host) =>
          this.hosts.filter((other) => other.index === host.index).length > 1
            ? `${host.label}:twin+${host.byzantine.join('+')}`
            : `${host.label}:${host.byzantine.join('+')}`,
        ),
      faults: { ...this.faults },
    });
  }
}

function randomBytes(rng: Prng, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = rng.int(0, 255);
  return out;
}
