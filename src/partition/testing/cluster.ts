/**
 * A deterministic in-process PBFT cluster for tests (in the manner of etcd-io/raft's `network` test
 * helper). Every replica is the production partition driver (src/partition/driver.ts) over a
 * `MemoryPartitionStorage`, a clock counted in ticks and a FIFO queue that tests can filter to drop
 * messages, cut replicas off, or hold messages back — the same driver the node and the simulator run,
 * so what these tests show about a replica holds for the one that ships. There is no randomness: the
 * same test always produces the same run.
 *
 * The driver's `onStep` observer records every step and its Ready (`history`), the inputs from
 * outside (`inputs`), each certified block with its proposal (`ledger`) and each executed batch
 * (`executions`). Execution is a pure function of the batch (`resultsFor`), so a lone replica can be
 * replayed from its recorded inputs with `SoloReplica` and compared byte for byte with a twin (see the
 * bad-input tests).
 */
import { encodeCanonical } from '../../codec/index.js';
import type { CborValue } from '../../codec/index.js';
import { domainHash } from '../../crypto/index.js';
import { AssertionError, assert } from '../../errors.js';
import type { Block } from '../../ledger/block.js';
// The simulator's keyring is the one fake signer both the simulator and these tests use.
import { SimKeyring, simNetwork } from '../../sim/sim-crypto.js';
import {
  decodeBody,
  decodeEnvelope,
  encodeClientRequest,
  encodeEnvelope,
  headerHash,
  signMessage,
} from '../../consensus/pbft/messages.js';
import { headerToCbor } from '../../ledger/header.js';
import type { Envelope, MessageFields, PbftMessage } from '../../consensus/pbft/messages.js';
import { hexKey } from '../../consensus/pbft/quorum.js';
import { PbftReplica } from '../../consensus/pbft/replica.js';
import type {
  CertifiedBlock,
  PbftConfig,
  PbftInput,
  PbftReady,
  PersistRecord,
  Proposal,
  RegistryIndexes,
  ReplicaInfo,
} from '../../consensus/pbft/types.js';
import { PartitionDriver } from '../driver.js';
import type { PartitionStateMachine } from '../driver.js';
import { MemoryPartitionStorage } from '../storage.js';

export type CryptoKind = SimKeyring['kind'];
export type Signer = ReturnType<SimKeyring['identity']>;

export type PbftTuning = Omit<PbftConfig, 'groupId' | 'configEpoch' | 'replicas' | 'self'>;

/** Small numbers so that checkpoints, window moves and timeouts happen within a few dozen ticks. */
export const testTuning: PbftTuning = {
  checkpointInterval: 4,
  watermarkWindow: 8,
  batchRequestsMax: 4,
  batchBytesMax: 64 * 1024,
  batchTicksMax: 1,
  requestTimeoutTicks: 30,
  viewChangeTimeoutTicks: 30,
  statusIntervalTicks: 5,
  pendingRequestsMax: 1000,
  requestBytesMax: 16 * 1024,
  clockSkewMaxMs: 1000,
  fetchBlocksMax: 8,
};

export const GROUP_ID = 'test/0';
export const CONFIG_EPOCH = 1;
/** Milliseconds per tick, and the clock at tick 0 (any realistic wall-clock value). */
export const TICK_MS = 10;
export const CLOCK_START_MS = 1_700_000_000_000;

/** What the test application returns for a batch: one leaf per request, a pure function of it. */
export function resultsFor(proposal: Proposal): Uint8Array[] {
  return proposal.requests.map((request) => domainHash('test-result', request));
}

export interface DecodedMessage {
  readonly envelope: Envelope;
  readonly message: PbftMessage;
}

/** Decodes wire bytes, or returns undefined if they are not a well-formed PBFT message. */
export function tryDecode(bytes: Uint8Array): DecodedMessage | undefined {
  try {
    const envelope = decodeEnvelope(bytes);
    return { envelope, message: decodeBody(envelope.body) };
  } catch {
    return undefined;
  }
}

export function decodeMessage(bytes: Uint8Array): PbftMessage {
  return decodeBody(decodeEnvelope(bytes).body);
}

export interface LedgerEntry {
  readonly block: CertifiedBlock;
  readonly results: readonly Uint8Array[];
}

/** The ledger's view of a stored block, for `verifyBlock`. */
export function ledgerBlock(entry: LedgerEntry): Block {
  return {
    header: entry.block.header,
    certificate: { signatures: entry.block.signatures },
    transactions: entry.block.proposal.requests,
    results: entry.results,
  };
}

export interface ReplicaSummary {
  readonly view: number;
  readonly inViewChange: boolean;
  readonly stable: number;
  readonly lastExecuted: number;
}

function summary(core: PbftReplica): ReplicaSummary {
  return {
    view: core.view,
    inViewChange: core.inViewChange,
    stable: core.stable,
    lastExecuted: core.lastExecuted,
  };
}

export interface StepRecord {
  readonly input: PbftInput;
  readonly ready: PbftReady;
  /** The replica's state just before and just after the step. */
  readonly before: ReplicaSummary;
  readonly after: ReplicaSummary;
  /** The cluster's tick count at the step. */
  readonly tick: number;
}

/** What a test replica needs of its cluster. */
interface ReplicaWorld {
  /** The cluster's clock (CLOCK_START_MS + ticks × TICK_MS). */
  now(): number;
  /** The cluster's tick count, stamped on each step record. */
  ticks(): number;
  /** Queues `bytes` from replica `from` to replica `to`. */
  send(from: number, to: number, bytes: Uint8Array): void;
}

/**
 * One process hosting a replica: a partition driver over a memory disk. The disk (persist records and
 * certified blocks) survives `restart`; the driver and the core, like a process, do not.
 */
export class TestReplica {
  crashed = false;
  /** The replica's disk. The driver syncs at the end of every step, so a crash loses nothing of it. */
  readonly storage = new MemoryPartitionStorage();
  /** Every batch this process executed, across restarts, in order. */
  readonly executions: { readonly seq: number; readonly proposal: Proposal }[] = [];
  readonly alreadyCommitted: { readonly request: Uint8Array; readonly seq: number }[] = [];
  /** Every step and its Ready, across restarts. */
  readonly history: StepRecord[] = [];
  /** Inputs from outside (ticks, messages, requests) since the last (re)start: enough to replay. */
  inputs: PbftInput[] = [];
  private partitionDriver: PartitionDriver<RegistryIndexes, never>;
  /** Each stored block as the Ready certified it (with its proposal), by height. */
  private readonly certifiedByHeight = new Map<number, CertifiedBlock>();
  private readonly entries: LedgerEntry[] = [];
  /** Proposals of batches the core committed and the driver has not yet executed, by sequence. */
  private readonly committing = new Map<number, Proposal>();
  /** The core's state after its last step: the `before` of the next one. */
  private last: ReplicaSummary;
  /** The registry indexes the tick being fed carries (see `step`). */
  private tickRegistry: RegistryIndexes | undefined;
  /** The Ready of the input being fed (the first step the driver takes for it). */
  private inputReady: PbftReady | undefined;

  /**
   * A replica whose disk already holds `ledger` (heights 1, 2, … in order): a new epoch's replica
   * that copied the previous epoch's blocks before it started.
   */
  constructor(
    readonly index: number,
    readonly signer: Signer,
    readonly config: PbftConfig,
    private readonly world: ReplicaWorld,
    ledger: readonly LedgerEntry[] = [],
  ) {
    for (const entry of ledger) {
      this.certifiedByHeight.set(entry.block.header.height, entry.block);
      this.storage.commitBlock(ledgerBlock(entry), new Map());
    }
    this.storage.sync();
    this.partitionDriver = this.start();
    this.last = summary(this.core);
  }

  /** The core, for observers: step the replica through `Cluster.step`, never the core directly. */
  get core(): PbftReplica {
    return this.partitionDriver.replica;
  }

  get driver(): PartitionDriver<RegistryIndexes, never> {
    return this.partitionDriver;
  }

  /** The stored blocks, in height order, each with the proposal it was certified with. */
  get ledger(): readonly LedgerEntry[] {
    const height = this.storage.blocks.head()?.height ?? 0;
    for (let next = this.entries.length + 1; next <= height; next++) {
      const stored = this.storage.blocks.get(next);
      const block = this.certifiedByHeight.get(next);
      if (stored === undefined || block === undefined) {
        throw new AssertionError(`r${this.index}: block ${next} stored but not seen certified`);
      }
      this.entries.push({ block, results: stored.results });
    }
    return this.entries;
  }

  /** The core's persist records as the disk holds them, by key. */
  get persisted(): ReadonlyMap<string, PersistRecord> {
    return new Map(this.storage.records().map((record) => [record.key, record]));
  }

  /**
   * Feeds one input from outside through the driver's entry for it (a tick carrying `registry` as
   * the indexes this host applied) and returns the Ready of that step; the driver carries it out
   * and steps `executed` itself, which `history` records too.
   */
  step(input: PbftInput): PbftReady {
    this.inputReady = undefined;
    switch (input.kind) {
      case 'tick':
        this.tickRegistry = input.registry;
        try {
          this.partitionDriver.tick(input.now);
        } finally {
          this.tickRegistry = undefined;
        }
        break;
      case 'message':
        this.partitionDriver.receive(input.bytes);
        break;
      case 'request':
        this.partitionDriver.receiveForwarded(input.bytes);
        break;
      case 'executed':
        throw new AssertionError('the driver executes batches and steps `executed` itself');
    }
    const ready = this.inputReady;
    if (ready === undefined) throw new AssertionError(`r${this.index}: the driver took no step`);
    this.inputReady = undefined;
    return ready;
  }

  /** Rebuilds the driver and core from the disk, as a restarted process would. */
  restart(): void {
    this.crashed = false;
    this.inputs = [];
    this.committing.clear();
    this.storage.crash();
    this.partitionDriver = this.start();
    this.last = summary(this.core);
  }

  rejectedCodes(): string[] {
    return this.history.flatMap((step) => step.ready.rejected.map((rejection) => rejection.code));
  }

  private start(): PartitionDriver<RegistryIndexes, never> {
    const stateMachine: PartitionStateMachine<RegistryIndexes, never> = {
      execute: (_state, context) => {
        const proposal = this.committing.get(context.height);
        assert(proposal !== undefined, `r${this.index}: executing ${context.height}, never committed`);
        this.committing.delete(context.height);
        this.executions.push({ seq: context.height, proposal });
        return { results: resultsFor(proposal), events: [] };
      },
    };
    const driver = new PartitionDriver<RegistryIndexes, never>({
      config: this.config,
      crypto: this.signer.crypto,
      storage: this.storage,
      clock: { now: () => this.world.now(), setTimeout: () => () => {} },
      transport: { send: (to, bytes) => this.world.send(this.index, to, bytes) },
      stateMachine,
      // The test registry is always there: no batch is ever held for it.
      registry: {
        at: (system, topic) => ({ system, topic }),
        indexes: () => this.tickRegistry,
      },
      onStep: (input, ready) => this.record(input, ready),
    });
    driver.onRetransmitted((request, seq) => this.alreadyCommitted.push({ request, seq }));
    return driver;
  }

  private record(input: PbftInput, ready: PbftReady): void {
    if (input.kind !== 'executed') this.inputs.push(input);
    this.inputReady ??= ready;
    for (const block of ready.certified) this.certifiedByHeight.set(block.header.height, block);
    for (const batch of ready.commit) this.committing.set(batch.seq, batch.proposal);
    const after = summary(this.core);
    this.history.push({ input, ready, before: this.last, after, tick: this.world.ticks() });
    this.last = after;
  }
}

export interface ClusterOptions {
  readonly replicas: number;
  readonly crypto?: CryptoKind;
  readonly tuning?: Partial<PbftTuning>;
  /** Distinguishes keys between clusters of one test file. */
  readonly label?: string;
  /** The network the replicas sign in (default: the simulator's fixed network). */
  readonly network?: string;
  /**
   * Blocks every replica's disk holds before it starts, from height 1 (a new epoch's replicas copy
   * the previous epoch's ledger up to its closing block, which `tuning.base` names).
   */
  readonly ledger?: readonly LedgerEntry[];
}

export interface Delivery {
  readonly from: number;
  readonly to: number;
  readonly bytes: Uint8Array;
  /** Undefined only for bytes that do not decode (never the case for what replicas send). */
  readonly message: PbftMessage | undefined;
}

/** Returns true to drop the delivery. */
export type DropRule = (delivery: Delivery) => boolean;

export class TestClient {
  private nextSeq = 1;
  constructor(
    readonly signer: Signer,
    private readonly groupId: string,
  ) {}

  /** A new signed request with the next client sequence number. */
  request(operation?: Uint8Array, seq = this.nextSeq++): Uint8Array {
    return encodeClientRequest(
      {
        group: this.groupId,
        client: this.signer.publicKey,
        seq,
        operation: operation ?? encodeCanonical({ seq }),
      },
      this.signer.sign,
    );
  }
}

export class Cluster {
  readonly keyring: SimKeyring;
  readonly replicaInfos: ReplicaInfo[];
  readonly signers: Signer[];
  readonly nodes: TestReplica[];
  readonly n: number;
  readonly tuning: PbftTuning;
  private readonly queue: Delivery[] = [];
  private readonly dropRules = new Set<DropRule>();
  /** Every delivery the queue carried (dropped or not), in order. */
  readonly traffic: (Delivery & { readonly dropped: boolean })[] = [];
  /** Count of ticks so far; the clock is CLOCK_START_MS + ticks × TICK_MS. */
  ticks = 0;
  /** Votes each replica sent, by (type, view, seq): a correct replica never sends two digests. */
  private readonly votesSent = new Map<string, string>();
  /** The bytes last queued and their decoding (see `enqueue`). */
  private lastSent: { readonly bytes: Uint8Array; readonly message: PbftMessage | undefined } | undefined;
  private readonly label: string;
  /** The network the replicas sign in. */
  readonly network: string;

  constructor(options: ClusterOptions) {
    this.n = options.replicas;
    this.label = options.label ?? 'cluster';
    this.network = options.network ?? simNetwork;
    this.keyring = new SimKeyring(options.crypto ?? 'hmac', this.network);
    this.tuning = { ...testTuning, ...options.tuning };
    this.signers = Array.from({ length: this.n }, (_, i) =>
      this.keyring.identity(`${this.label}/replica-${i}`),
    );
    this.replicaInfos = this.signers.map((signer, i) => ({ id: `r${i}`, publicKey: signer.publicKey }));
    const world: ReplicaWorld = {
      now: () => this.now,
      ticks: () => this.ticks,
      send: (from, to, bytes) => this.enqueue(from, to, bytes),
    };
    this.nodes = this.signers.map(
      (signer, i) => new TestReplica(i, signer, this.configFor(i), world, options.ledger),
    );
  }

  configFor(self: number): PbftConfig {
    return {
      groupId: GROUP_ID,
      configEpoch: CONFIG_EPOCH,
      replicas: this.replicaInfos,
      self,
      ...this.tuning,
    };
  }

  get now(): number {
    return CLOCK_START_MS + this.ticks * TICK_MS;
  }

  node(index: number): TestReplica {
    const node = this.nodes[index];
    if (node === undefined) throw new AssertionError(`no replica ${index}`);
    return node;
  }

  client(index: number): TestClient {
    return new TestClient(this.keyring.identity(`${this.label}/client-${index}`), GROUP_ID);
  }

  /** Signs a message as replica `from` (for crafting Byzantine or out-of-order input). */
  sign(from: number, fields: MessageFields<PbftMessage>): Uint8Array {
    return encodeEnvelope(this.signEnvelope(from, fields));
  }

  signEnvelope(from: number, fields: MessageFields<PbftMessage>): Envelope {
    const message = { ...fields, group: GROUP_ID, epoch: CONFIG_EPOCH, from } as PbftMessage;
    return signMessage(this.node(from).signer.crypto, message);
  }

  // ---- faults ----

  /** Drops every delivery the rule matches until the returned function is called. */
  drop(rule: DropRule): () => void {
    this.dropRules.add(rule);
    return () => this.dropRules.delete(rule);
  }

  /** Cuts `indexes` off from everyone else (both directions). */
  isolate(...indexes: number[]): () => void {
    const cut = new Set(indexes);
    return this.drop((delivery) => cut.has(delivery.from) !== cut.has(delivery.to));
  }

  heal(): void {
    this.dropRules.clear();
  }

  crash(index: number): void {
    this.node(index).crashed = true;
  }

  restart(index: number): void {
    this.node(index).restart();
  }

  // ---- driving ----

  /**
   * Feeds one input to a replica's driver, which carries out the Ready as in the node (see
   * `TestReplica.step`). Returns the Ready of that input's step.
   */
  step(index: number, input: PbftInput): PbftReady {
    return this.node(index).step(input);
  }

  /** Delivers `bytes` to replica `to` as if from the network, now, without the queue. */
  inject(to: number, bytes: Uint8Array): PbftReady {
    return this.step(to, { kind: 'message', bytes });
  }

  /** Hands a client request to the given replicas (all by default), as a broadcasting client does. */
  request(bytes: Uint8Array, to: readonly number[] = [...this.nodes.keys()]): void {
    for (const index of to) if (!this.node(index).crashed) this.step(index, { kind: 'request', bytes });
    this.deliverAll();
  }

  /** Advances every live replica by one tick per count, delivering all traffic after each. */
  tick(count = 1): void {
    for (let i = 0; i < count; i++) {
      this.ticks += 1;
      for (const node of this.nodes) {
        if (!node.crashed) this.step(node.index, { kind: 'tick', now: this.now });
      }
      this.deliverAll();
    }
  }

  /** Ticks until `done()` holds; throws if it does not within `maxTicks`. Returns the ticks taken. */
  tickUntil(done: () => boolean, maxTicks: number, what = 'condition'): number {
    for (let i = 0; i < maxTicks; i++) {
      if (done()) return i;
      this.tick();
    }
    if (done()) return maxTicks;
    throw new AssertionError(`${what} not reached within ${maxTicks} ticks: ${this.describe()}`);
  }

  /** Delivers queued messages in FIFO order until the network is quiet. */
  deliverAll(limit = 200_000): void {
    for (let delivered = 0; this.queue.length > 0; delivered++) {
      if (delivered >= limit) throw new AssertionError('network did not go quiet');
      const delivery = this.queue.shift()!;
      const target = this.node(delivery.to);
      const dropped = target.crashed || [...this.dropRules].some((rule) => rule(delivery));
      this.traffic.push({ ...delivery, dropped });
      if (!dropped) this.step(delivery.to, { kind: 'message', bytes: delivery.bytes });
    }
  }

  /**
   * Queues one copy of `bytes` for `to`. The driver sends a broadcast as one call per other replica,
   * in index order, all with the same bytes: those are decoded once.
   */
  private enqueue(from: number, to: number, bytes: Uint8Array): void {
    if (this.lastSent?.bytes !== bytes) {
      const message = tryDecode(bytes)?.message;
      if (message !== undefined) this.checkNoEquivocation(from, message);
      this.lastSent = { bytes, message };
    }
    this.queue.push({ from, to, bytes, message: this.lastSent.message });
  }

  private checkNoEquivocation(from: number, message: PbftMessage): void {
    if (message.type !== 'pre-prepare' && message.type !== 'prepare' && message.type !== 'commit') return;
    const key = `${from}/${message.type}/${message.view}/${message.seq}`;
    const digest = hexKey(message.digest);
    const known = this.votesSent.get(key);
    if (known !== undefined && known !== digest) {
      throw new AssertionError(
        `r${from} sent two ${message.type}s for view ${message.view} seq ${message.seq}`,
      );
    }
    this.votesSent.set(key, digest);
  }

  // ---- observations ----

  /** Throws unless every pair of ledgers agrees at every height both hold. */
  checkAgreement(): void {
    const byHeight = new Map<number, string>();
    for (const node of this.nodes) {
      for (const entry of node.ledger) {
        const hash = hexKey(headerHash(node.signer.crypto, entry.block.header));
        const known = byHeight.get(entry.block.header.height);
        if (known !== undefined && known !== hash) {
          throw new AssertionError(`ledgers disagree at height ${entry.block.header.height}`);
        }
        byHeight.set(entry.block.header.height, hash);
      }
    }
  }

  /** Every delivery carried so far, decoded, optionally only those of one type. */
  sent<T extends PbftMessage['type']>(
    type: T,
  ): (Delivery & { readonly message: Extract<PbftMessage, { type: T }>; readonly dropped: boolean })[] {
    return this.traffic.filter(
      (
        delivery,
      ): delivery is Delivery & {
        readonly message: Extract<PbftMessage, { type: T }>;
        readonly dropped: boolean;
      } => delivery.message?.type === type,
    );
  }

  describe(): string {
    return this.nodes
      .map(
        (node) =>
          `r${node.index}${node.crashed ? '!' : ''}:v${node.core.view}${node.core.inViewChange ? 'vc' : ''}` +
          `/e${node.core.lastExecuted}/c${node.ledger.length}/s${node.core.stable}/p${node.core.pendingRequests}`,
      )
      .join(' ');
  }
}

/**
 * A replica with no network: it executes what it commits at once with `resultsFor`. Built from the
 * same config, crypto and external inputs as a cluster replica, it reaches the same state.
 */
export class SoloReplica {
  readonly core: PbftReplica;

  constructor(
    config: PbftConfig,
    private readonly signer: Signer,
    inputs: readonly PbftInput[] = [],
  ) {
    this.core = new PbftReplica(config, signer.crypto);
    for (const input of inputs) this.step(input);
  }

  /** Steps one input and every `executed` it leads to; returns all the Readies, in order. */
  step(input: PbftInput): PbftReady[] {
    const ready = this.core.step(input);
    const readies = [ready];
    for (const batch of ready.commit) {
      const resultsRoot = this.signer.crypto.merkleRoot(resultsFor(batch.proposal));
      readies.push(...this.step({ kind: 'executed', seq: batch.seq, resultsRoot }));
    }
    return readies;
  }
}

/** Canonical bytes of a list of Readies, for byte-for-byte comparison of two replicas' outputs. */
export function encodeReadies(readies: readonly PbftReady[]): Uint8Array {
  return encodeCanonical(readies.map(readyToCbor));
}

export function readyToCbor(ready: PbftReady): CborValue {
  return {
    persist: ready.persist.map((op): CborValue =>
      op.op === 'put'
        ? { op: op.op, key: op.record.key, seq: op.record.seq, bytes: op.record.bytes }
        : { op: op.op, belowSeq: op.belowSeq },
    ),
    certified: ready.certified.map((block) => ({
      header: headerToCbor(block.header),
      signatures: block.signatures.map((entry) => ({ signer: entry.signer, signature: entry.signature })),
      requests: [...block.proposal.requests],
    })),
    send: ready.send.map((out) => ({ to: out.to, bytes: out.bytes })),
    commit: ready.commit.map((batch) => ({
      seq: batch.seq,
      view: batch.proposal.view,
      proposer: batch.proposal.proposer,
      timestamp: batch.proposal.timestamp,
      requests: [...batch.proposal.requests],
      certified: batch.certified !== undefined,
    })),
    alreadyCommitted: ready.alreadyCommitted.map((entry) => ({ request: entry.request, seq: entry.seq })),
    rejected: ready.rejected.map((entry) => ({ code: entry.code, reason: entry.reason })),
    serve: ready.serve.map((entry) => ({ to: entry.to, fromSeq: entry.fromSeq, count: entry.count })),
  };
}

/** True when the Ready holds nothing but rejections. */
export function onlyRejected(ready: PbftReady): boolean {
  return (
    ready.persist.length === 0 &&
    ready.certified.length === 0 &&
    ready.send.length === 0 &&
    ready.commit.length === 0 &&
    ready.alreadyCommitted.length === 0 &&
    ready.serve.length === 0
  );
}
