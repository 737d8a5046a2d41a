/**
 * A whole PBFT group in one process, driven from one seed (TigerBeetle's VOPR, etcd's raft tests).
 *
 * Each seed draws a network (drops, delays, duplicates, reorders, partitions), crashes and restarts,
 * and up to f Byzantine replicas with behaviours of their own. A safety phase runs with faults on;
 * then the network heals, crashed replicas restart, and a liveness phase must bring every correct
 * replica to the same height with every client request acknowledged. Invariants are checked after
 * every step. The same seed always produces the same run.
 *
 * Every replica is the node's own partition driver (src/partition/driver.ts) on a memory disk, a
 * simulated clock and this simulated network (host.ts), so the node's logic — persist before send,
 * holding batches for the registry, closing an epoch — runs under the faults too, and so do the
 * faults only a driver has (driver-faults.ts: registry lag, an epoch change, torn and lost writes).
 * `faults: 'classic'` leaves those out; such runs are byte-identical to the simulator's before it
 * drove the real driver (the driver expands broadcasts and orders its outputs as the old host did).
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
import type { CertifiedHeader, PbftConfig, Proposal } from '../consensus/pbft/types.js';
import type { Block } from '../ledger/block.js';
import { certifiedHeaderOf } from '../partition/driver.js';
import { DriverFaults, driverFaultKinds } from './driver-faults.js';
import type { DriverFaultKind } from './driver-faults.js';
import { EventQueue } from './event-queue.js';
import { Host } from './host.js';
import type { ByzantineBehaviour, HostWorld } from './host.js';
import { TraceDigest } from './trace-digest.js';
import { Prng } from './prng.js';
import { SimKeyring } from './sim-crypto.js';
import type { SimCryptoKind, SimSigner } from './sim-crypto.js';

/** The faults the simulator had before it drove the production partition driver. */
export const classicFaultKinds = [
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
export const faultKinds = [...classicFaultKinds, ...driverFaultKinds] as const;
export type FaultKind = (typeof classicFaultKinds)[number] | DriverFaultKind;

/** Which faults a run injects: `classic` leaves out the driver's (for byte-identical old traces). */
export type FaultSet = 'classic' | 'all';

/** The fault kinds a run with `set` injects. */
export function faultKindsOf(set: FaultSet): readonly FaultKind[] {
  return set === 'classic' ? classicFaultKinds : faultKinds;
}

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
  /** `all` (default) adds registry lag, an epoch change and torn or lost writes (driver-faults.ts). */
  readonly faults?: FaultSet;
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

class InvariantViolation extends Error {}

export class SimWorld {
  readonly options: Required<Omit<SimOptions, 'onProgress'>> & Pick<SimOptions, 'onProgress'>;
  private readonly rng: Prng;
  private readonly netRng: Prng;
  private readonly byzRng: Prng;
  private readonly keyring: SimKeyring;
  private readonly hosts: Host[] = [];
  private readonly clients: SimClient[] = [];
  private readonly queue = new EventQueue<Event>();
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
  private readonly driverFaults: DriverFaults | undefined;
  private readonly quorum: number;
  private readonly f: number;
  /** A broadcast is one byte array sent to many: decode it once for the Byzantine transform. */
  private readonly decodedOutgoing = new WeakMap<Uint8Array, { envelope: Envelope; message: PbftMessage }>();

  constructor(options: SimOptions) {
    this.options = {
      crypto: 'hmac',
      safetyTicks: 600,
      livenessTicks: 3000,
      clients: 2,
      requestsPerClient: 12,
      progressEveryTicks: 100,
      faults: 'all',
      ...options,
    };
    const n = this.options.replicas;
    this.f = faultTolerance(n);
    this.quorum = quorumSize(n);
    this.rng = new Prng(this.options.seed);
    this.netRng = this.rng.fork();
    this.byzRng = this.rng.fork();
    this.keyring = new SimKeyring(this.options.crypto);
    this.driverFaults =
      this.options.faults === 'classic' ? undefined : new DriverFaults(this.driverFaultWorld());
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
        this.hosts.push(new Host(i, `r${i}`, signers[i]!, config, ['replay'], this.hostWorld));
        this.hosts.push(new Host(i, `r${i}-twin`, signers[i]!, config, ['replay'], this.hostWorld));
        this.faults.twins += 1;
      } else {
        this.hosts.push(new Host(i, `r${i}`, signers[i]!, config, behaviours, this.hostWorld));
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
      height: Math.max(0, ...this.correctHosts().map((host) => host.height)),
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
      this.driverFaults?.beforeTick(this.tick, this.phase === 'safety');
      this.clientActions();
      for (const host of this.hosts) {
        if (!host.crashed && !host.retired) this.guard(host, () => host.driver.tick());
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
    this.driverFaults?.heal();
  }

  // ---- the network ----

  /** What a replica's driver sends to one other replica (it expands broadcasts in index order). */
  private send(from: Host, target: number, bytes: Uint8Array): void {
    for (const out of this.byzantineTransform(from, target, bytes))
      this.transmit(from, out.target, out.bytes);
  }

  private transmit(from: Host, target: number, bytes: Uint8Array): void {
    const fromIndex = from.index;
    // The replica at `target` in the sender's epoch (both twins, if twins hold it).
    const recipients = this.hosts.filter(
      (host) => host.index === target && host.epoch === from.epoch && !host.retired,
    );
    if (recipients.length === 0) return;
    const rng = this.netRng;
    if (this.partition !== undefined && this.partition.has(fromIndex) !== this.partition.has(target)) return;
    if (rng.chance(this.network.drop)) {
      this.faults.drop += 1;
      return;
    }
    const copies = rng.chance(this.network.duplicate) ? 2 : 1;
    if (copies === 2) this.faults.duplicate += 1;
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
    if (host.crashed || host.retired) return;
    this.trace.add(`${event.kind}:${host.index}`, event.bytes);
    if (event.kind === 'message' && host.received.length < 256) host.received.push(event.bytes);
    if (event.kind === 'message') this.guard(host, () => host.driver.receive(event.bytes));
    else this.guard(host, () => host.driver.receiveForwarded(event.bytes));
  }

  /** A call into a host's driver, which a storage fault may crash in the middle. */
  private guard(host: Host, action: () => void): void {
    if (this.driverFaults === undefined) action();
    else this.driverFaults.guard(host, this.tick, action);
  }

  private driverFaultWorld(): ConstructorParameters<typeof DriverFaults>[0] {
    return {
      seed: this.options.seed,
      hosts: this.hosts,
      hostWorld: this.hostWorld,
      identity: (name) => this.keyring.identity(name),
      registerReplica: (id, publicKey) => this.keysById.set(id, publicKey),
      crashed: (host, restartTick) => this.crashUntil.set(host, restartTick),
      deliverRequest: (host, bytes) =>
        this.queue.push(this.now + tickMs, { kind: 'request', to: host, bytes }),
      count: (kind) => (this.faults[kind] += 1),
    };
  }

  // ---- what the production driver of each replica sees of the world ----

  private readonly hostWorld: HostWorld = {
    now: (host) => this.now + this.skew(host),
    send: (from, to, bytes) => this.send(from, to, bytes),
    namesRegistry: () => this.options.faults !== 'classic',
    epochAt: (topicIndex) => this.driverFaults?.epochAt(topicIndex),
    onBlock: (host, block) => {
      if (host.correct) {
        this.checkCommitted(host, block);
        this.driverFaults?.onCorrectBlock(block);
      }
      for (const request of block.transactions) this.replyForBlock(host, block, request);
    },
    onRetransmitted: (host, request, height) => {
      const block = host.block(height);
      if (block !== undefined) this.replyForBlock(host, block, request);
    },
  };

  // ---- invariants ----

  /** Agreement, immutability and certificate validity for a block a correct replica stored. */
  private checkCommitted(host: Host, block: Block): void {
    const height = block.header.height;
    const hash = hexKey(headerHash(host.signer.crypto, block.header));
    const known = this.committed.get(height);
    if (known === undefined) this.committed.set(height, hash);
    else if (known !== hash) {
      throw new InvariantViolation(
        `agreement: ${host.label} committed ${hash.slice(0, 12)} at ${height}, others ${known.slice(0, 12)}`,
      );
    }
    const certified = certifiedHeaderOf(block);
    if (!certificateValid(host.signer.crypto, certified, this.keysById, this.quorum)) {
      throw new InvariantViolation(`certificate: block ${height} at ${host.label} does not verify`);
    }
    const previous = host.block(height - 1);
    if (
      previous !== undefined &&
      !sameBytes(block.header.previousHash, headerHash(host.signer.crypto, previous.header))
    ) {
      throw new InvariantViolation(`chain: block ${height} at ${host.label} does not link to ${height - 1}`);
    }
    if (!sameBytes(block.header.transactionsRoot, host.signer.crypto.merkleRoot(block.transactions))) {
      throw new InvariantViolation(
        `contents: block ${height} at ${host.label} has the wrong transactions root`,
      );
    }
  }

  private checkFinal(): void {
    const hosts = this.correctHosts();
    for (const host of hosts) {
      for (let height = 1; height <= host.height; height++) {
        const hash = hexKey(headerHash(host.signer.crypto, host.block(height)!.header));
        if (this.committed.get(height) !== hash) {
          throw new InvariantViolation(`immutability: ${host.label} block ${height} changed`);
        }
      }
    }
    for (const client of this.clients) {
      for (const request of client.requests) {
        const acked = request.acked;
        if (acked === undefined) continue;
        for (const host of hosts) {
          const block = host.block(acked.height);
          if (block === undefined || hexKey(headerHash(host.signer.crypto, block.header)) !== acked.hash) {
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
    const heights = this.correctHosts().map((host) => host.height);
    // Done only when every correct replica holds every committed block and every acknowledged one.
    const ackedHeights = this.clients.flatMap((client) =>
      client.requests.map((request) => request.acked?.height ?? 0),
    );
    const target = Math.max(...this.committed.keys(), ...ackedHeights, 0);
    return heights.every((height) => height === target) && (this.driverFaults?.settled ?? true);
  }

  private correctHosts(): Host[] {
    return this.hosts.filter((host) => host.correct && !host.retired);
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

  private replyForBlock(host: Host, block: Block, request: Uint8Array): void {
    const index = block.transactions.findIndex((bytes) => sameBytes(bytes, request));
    if (index < 0) return;
    const client = this.clients.find((candidate) =>
      candidate.requests.some((state) => sameBytes(state.bytes, request)),
    );
    if (client === undefined) return;
    const reply: Reply = {
      certified: certifiedHeaderOf(block),
      requestIndex: index,
      proof: inclusionProof(block.transactions, index),
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
            `${host.label}${host.correct ? '' : '*'}${host.crashed ? '!' : ''}:v${host.core.view}${host.core.inViewChange ? 'vc' : ''}/e${host.core.lastExecuted}/c${host.height}/p${host.core.pendingRequests}`,
        )
        .join(' ') + ` acked ${this.ackedCount()}/${this.requestCount()} committed ${this.committed.size}`
    );
  }

  private emitProgress(): void {
    this.options.onProgress?.({
      seed: this.options.seed,
      tick: this.tick,
      phase: this.phase,
      height: Math.max(0, ...this.correctHosts().map((host) => host.height)),
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
