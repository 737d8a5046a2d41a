/**
 * `npm run bench:pbft`: PBFT throughput against what Ed25519 allows on this machine.
 *
 * For n = 4 and n = 7, a whole group of replicas runs in this process on one thread, each the
 * production partition driver (src/partition/driver.ts: the PbftReplica core, its Ready carried out
 * in the contract's order, the simulator's state machine executing) over an in-memory store
 * (lib/tail-storage.ts) and an instant FIFO network: every message is delivered at once, in the order
 * sent. Signatures are real Ed25519. Ticks advance only when the network is idle, so they never cost
 * throughput; they only flush a partial last batch.
 *
 * Clients are a closed loop: `clients` requests are outstanding at all times, and each request
 * acknowledged (its block certified at some replica, which is when a real client could accept it)
 * is replaced by the next one. Every request is signed by its client BEFORE timing starts: the
 * client's signature cost is not the system's.
 *
 * The bound: a request's client signature must be verified once by each of the n replicas, so one
 * thread doing nothing but that would certify verify/s ÷ n requests per second. Protocol messages add
 * O(n²) verifications per batch, amortised over the batch. ratio = throughput ÷ bound; goal ≥ 0.7.
 *
 * Tuning is the production default (`defaultPbftTuning`, consensus/pbft/config.ts): batchRequestsMax
 * 1024, watermarkWindow 256, checkpointInterval 64, batchTicksMax 1. Clients default to 2 × the batch, so
 * one batch fills while the previous one is agreed. Batches of 256 and 512, and sending requests to
 * the primary only, measured within noise of this (ratio 0.46-0.53 on a shared 2-core machine), so
 * the defaults stay. At 20k requests a run holds ~20 blocks, below one checkpoint interval; a stable
 * checkpoint costs one truncate per 64 blocks, which does not move the result.
 *
 * The verify rate is sampled before and during each run (see `VerifyRateSampler`), because on a
 * shared machine one number taken beforehand can be off by 2×. With timers on (the default), the
 * core's crypto calls are timed, which splits the run into verify / sign / hash / merkleRoot / other
 * work of the core and its driver (coreAndDriver) / application / the bench's own loop (queue and
 * clients); `--no-timers` leaves only the counters.
 *
 * Options: --requests N (per n), --clients N, --batch N, --payload-bytes N, --replicas 4,7,
 * --requests-to all|primary, --no-timers, --verify-ms N (the up-front sample).
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { encodeClientRequest, headerHash } from '../src/consensus/pbft/messages.js';
import { hexKey, primaryOf } from '../src/consensus/pbft/quorum.js';
import { decodeValidated } from '../src/codec/index.js';
import { defaultPbftTuning } from '../src/consensus/pbft/config.js';
import type { PbftConfig, PbftCrypto } from '../src/consensus/pbft/types.js';
import type { Block } from '../src/ledger/block.js';
import { PartitionDriver } from '../src/partition/driver.js';
import type { PartitionStateMachine } from '../src/partition/driver.js';
import { simStateMachine } from '../src/sim/app.js';
import type { SimRegistry } from '../src/sim/app.js';
import { SimKeyring } from '../src/sim/sim-crypto.js';
import type { SimSigner } from '../src/sim/sim-crypto.js';
import { VerifyRateSampler } from './lib/ed25519-rate.js';
import type { VerifyRate } from './lib/ed25519-rate.js';
import { machineInfo, round, writeBenchResult } from './lib/results.js';
import { TailPartitionStorage } from './lib/tail-storage.js';
import { showHelpIfAsked } from './lib/help.js';

const groupId = 'bench/0';
const tickMs = 10;
/** Ticks in a row with nothing delivered before we call the run stuck. */
const idleTicksMax = 1000;
/**
 * The machine may be shared, so the verify rate is also sampled during the run: every
 * `sampleEveryMs` of cluster work, `sampleMs` of verifying, which is not counted as cluster time.
 */
const sampleEveryMs = 500;
const sampleMs = 50;

interface BenchOptions {
  readonly requests: number;
  readonly clients: number;
  readonly batchRequestsMax: number;
  readonly payloadBytes: number;
  readonly replicaCounts: readonly number[];
  /** Clients send each request to every replica (as the simulator does), or to the primary only. */
  readonly requestsTo: 'all' | 'primary';
  readonly timers: boolean;
  readonly verifyMs: number;
}

function parseOptions(): BenchOptions {
  showHelpIfAsked(import.meta.url);
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '20000' },
      clients: { type: 'string' },
      batch: { type: 'string', default: '1024' },
      'payload-bytes': { type: 'string', default: '64' },
      replicas: { type: 'string', default: '4,7' },
      'requests-to': { type: 'string', default: 'all' },
      'no-timers': { type: 'boolean', default: false },
      'verify-ms': { type: 'string', default: '1500' },
    },
    strict: true,
  });
  const positive = (name: string, text: string): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
    return value;
  };
  const batchRequestsMax = positive('batch', values.batch);
  const requestsTo = values['requests-to'];
  if (requestsTo !== 'all' && requestsTo !== 'primary')
    throw new Error('--requests-to must be all or primary');
  return {
    requests: positive('requests', values.requests),
    // Enough outstanding requests for two full batches in flight: one being agreed, one filling.
    clients: values.clients === undefined ? 2 * batchRequestsMax : positive('clients', values.clients),
    batchRequestsMax,
    payloadBytes: positive('payload-bytes', values['payload-bytes']),
    replicaCounts: values.replicas.split(',').map((part) => positive('replicas', part)),
    requestsTo,
    timers: !values['no-timers'],
    verifyMs: positive('verify-ms', values['verify-ms']),
  };
}

/** Production tuning (replica.ts defaults) with the batch size under test; ticks only flush the tail. */
function replicaConfig(options: BenchOptions, replicas: PbftConfig['replicas'], self: number): PbftConfig {
  return {
    ...defaultPbftTuning,
    groupId,
    configEpoch: 1,
    replicas,
    self,
    batchRequestsMax: options.batchRequestsMax,
    pendingRequestsMax: Math.max(defaultPbftTuning.pendingRequestsMax, 2 * options.clients),
  };
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

// ---- instrumentation ------------------------------------------------------------------------------

/** Where a cluster's time goes, summed over its replicas. */
class CryptoMeter {
  readonly verifies = new Map<string, number>();
  readonly signs = new Map<string, number>();
  hashes = 0;
  merkleRoots = 0;
  verifyMs = 0;
  signMs = 0;
  hashMs = 0;
  merkleMs = 0;

  constructor(private readonly timers: boolean) {}

  /** Wraps a replica's crypto so every call is counted (and timed, unless timers are off). */
  wrap(base: PbftCrypto): PbftCrypto {
    const count = (map: Map<string, number>, type: string): void => {
      map.set(type, (map.get(type) ?? 0) + 1);
    };
    if (!this.timers) {
      return {
        sign: (type, payload) => (count(this.signs, type), base.sign(type, payload)),
        verify: (key, type, payload, signature) => (
          count(this.verifies, type),
          base.verify(key, type, payload, signature)
        ),
        hash: (type, payload) => ((this.hashes += 1), base.hash(type, payload)),
        merkleRoot: (leaves) => ((this.merkleRoots += 1), base.merkleRoot(leaves)),
      };
    }
    return {
      sign: (type, payload) => {
        count(this.signs, type);
        const start = performance.now();
        const result = base.sign(type, payload);
        this.signMs += performance.now() - start;
        return result;
      },
      verify: (key, type, payload, signature) => {
        count(this.verifies, type);
        const start = performance.now();
        const result = base.verify(key, type, payload, signature);
        this.verifyMs += performance.now() - start;
        return result;
      },
      hash: (type, payload) => {
        this.hashes += 1;
        const start = performance.now();
        const result = base.hash(type, payload);
        this.hashMs += performance.now() - start;
        return result;
      },
      merkleRoot: (leaves) => {
        this.merkleRoots += 1;
        const start = performance.now();
        const result = base.merkleRoot(leaves);
        this.merkleMs += performance.now() - start;
        return result;
      },
    };
  }

  totalVerifies(): number {
    let total = 0;
    for (const value of this.verifies.values()) total += value;
    return total;
  }
}

// ---- the cluster ----------------------------------------------------------------------------------

interface Host {
  readonly index: number;
  readonly driver: PartitionDriver<SimRegistry, never>;
  /** Keeps every block: the run is short, and the final check reads them all. */
  readonly storage: TailPartitionStorage;
  certifiedRequests: number;
}

type Delivery =
  | { readonly to: number; readonly kind: 'message' | 'request'; readonly bytes: Uint8Array }
  | { readonly to: number; readonly kind: 'tick' };

/** Every batch names the same registry indexes (0, 0): the group needs nothing from it. */
const anyRegistry: SimRegistry = { system: 0, topic: 0 };

interface ClusterResult {
  readonly replicas: number;
  readonly requests: number;
  readonly seconds: number;
  readonly requestsPerSecond: number;
  readonly blocks: number;
  readonly averageBatch: number;
  readonly messages: number;
  readonly messagesPerBlock: number;
  readonly messageBytes: number;
  readonly ticks: number;
  readonly checkpoints: number;
  readonly rejected: Record<string, number>;
  readonly verifies: Record<string, number>;
  readonly verifiesPerRequest: number;
  readonly signs: Record<string, number>;
  readonly hashesPerRequest: number;
  /** Verifications per second of time spent inside `verify` calls in the core (timers on). */
  readonly coreVerifiesPerSecond: number | undefined;
  /** Milliseconds of wall time by where they went (timers on) — crypto inside the core, app, rest. */
  readonly timeMs: Record<string, number> | undefined;
}

class Cluster {
  private readonly hosts: Host[] = [];
  private readonly queue: Delivery[] = [];
  private head = 0;
  private readonly meter: CryptoMeter;
  /** Unmetered, for the final check. */
  private readonly plainCrypto: PbftCrypto;
  private now = 1_700_000_000_000;
  private ticks = 0;
  private nextRequest = 0;
  private acknowledged = 0;
  private ackedHeight = 0;
  private messages = 0;
  private messageBytes = 0;
  private readonly rejected = new Map<string, number>();
  /** Time inside the drivers (core, crypto, storage, application), and inside the application. */
  private stepMs = 0;
  private appMs = 0;

  constructor(
    private readonly n: number,
    private readonly options: BenchOptions,
    signers: readonly SimSigner[],
    private readonly requests: readonly Uint8Array[],
  ) {
    this.meter = new CryptoMeter(options.timers);
    this.plainCrypto = signers[0]!.crypto;
    const replicas = signers.map((signer, i) => ({ id: `r${i}`, publicKey: signer.publicKey }));
    const stateMachine: PartitionStateMachine<SimRegistry, never> = {
      execute: (state, context) => {
        const start = performance.now();
        const outcome = simStateMachine.execute(state, context);
        this.appMs += performance.now() - start;
        return outcome;
      },
    };
    signers.forEach((signer, i) => {
      const storage = new TailPartitionStorage(`r${i}`);
      const driver = new PartitionDriver<SimRegistry, never>({
        config: replicaConfig(options, replicas, i),
        crypto: this.meter.wrap(signer.crypto),
        storage,
        // Only a client waiting in `submit` sets a timer; these clients send with `receiveForwarded`.
        clock: { now: () => this.now, setTimeout: () => () => {} },
        transport: { send: (to, bytes) => this.send(to, bytes) },
        stateMachine,
        registry: { at: () => anyRegistry },
        log: (_level, message, fields) => {
          if (message !== 'pbft input rejected') return;
          const code = String(fields?.['code']);
          this.rejected.set(code, (this.rejected.get(code) ?? 0) + 1);
        },
      });
      const host: Host = { index: i, driver, storage, certifiedRequests: 0 };
      driver.onBlock((block) => this.stored(host, block));
      this.hosts.push(host);
    });
  }

  /** Runs until every request is certified at every replica; returns what it measured. */
  run(sampler: VerifyRateSampler): ClusterResult {
    const total = this.requests.length;
    const start = performance.now();
    let lastProgress = start;
    let lastSample = start;
    let pausedMs = 0;
    let idleTicks = 0;
    this.submit(Math.min(this.options.clients, total));
    while (this.hosts.some((host) => host.certifiedRequests < total)) {
      if (this.head < this.queue.length) {
        this.deliver(256);
        idleTicks = 0;
      } else {
        if (++idleTicks > idleTicksMax) throw new Error(`n=${this.n}: stuck (${this.describe()})`);
        this.tickAll();
      }
      const nowMs = performance.now();
      if (nowMs - lastSample >= sampleEveryMs) {
        sampler.sample(sampleMs);
        lastSample = performance.now();
        pausedMs += lastSample - nowMs;
      }
      if (nowMs - lastProgress >= 3000) {
        lastProgress = nowMs;
        const rate = this.acknowledged / ((nowMs - start - pausedMs) / 1000);
        progress(`  n=${this.n}: ${this.acknowledged}/${total} acknowledged, ${Math.round(rate)} req/s`);
      }
    }
    const seconds = (performance.now() - start - pausedMs) / 1000;
    this.checkAgreement();
    const blocks = this.hosts[0]!.driver.height;
    const verifies = Object.fromEntries([...this.meter.verifies.entries()].sort());
    const totalMs = seconds * 1000;
    const cryptoMs = this.meter.verifyMs + this.meter.signMs + this.meter.hashMs + this.meter.merkleMs;
    return {
      replicas: this.n,
      requests: total,
      seconds,
      requestsPerSecond: total / seconds,
      blocks,
      averageBatch: total / blocks,
      messages: this.messages,
      messagesPerBlock: this.messages / blocks,
      messageBytes: this.messageBytes,
      ticks: this.ticks,
      // Stable checkpoints reached: each truncates the persisted log once (counted at r0).
      checkpoints: this.hosts[0]!.storage.persistOps.truncate,
      rejected: Object.fromEntries(this.rejected),
      verifies,
      verifiesPerRequest: this.meter.totalVerifies() / total,
      signs: Object.fromEntries([...this.meter.signs.entries()].sort()),
      hashesPerRequest: this.meter.hashes / total,
      coreVerifiesPerSecond: this.options.timers
        ? this.meter.totalVerifies() / (this.meter.verifyMs / 1000)
        : undefined,
      timeMs: this.options.timers
        ? {
            total: totalMs,
            verify: this.meter.verifyMs,
            sign: this.meter.signMs,
            hash: this.meter.hashMs,
            merkleRoot: this.meter.merkleMs,
            coreAndDriver: this.stepMs - cryptoMs - this.appMs,
            app: this.appMs,
            loop: totalMs - this.stepMs,
          }
        : undefined,
    };
  }

  /** Closed loop: issues the next `count` pre-signed requests. */
  private submit(count: number): void {
    const primary = primaryOf(Math.max(...this.hosts.map((host) => host.driver.view)), this.n);
    for (let i = 0; i < count && this.nextRequest < this.requests.length; i++) {
      const bytes = this.requests[this.nextRequest++]!;
      if (this.options.requestsTo === 'primary') {
        this.queue.push({ to: primary, kind: 'request', bytes });
      } else {
        for (let to = 0; to < this.n; to++) this.queue.push({ to, kind: 'request', bytes });
      }
    }
  }

  /**
   * Delivers up to `count` messages in FIFO order (what they send joins the back of the queue), so
   * the caller gets control back now and then: with a closed loop the queue never drains by itself.
   */
  private deliver(count: number): void {
    for (let i = 0; i < count && this.head < this.queue.length; i++) {
      this.step(this.queue[this.head++]!);
    }
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 65_536) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  private tickAll(): void {
    this.ticks += 1;
    this.now += tickMs;
    for (const host of this.hosts) this.step({ to: host.index, kind: 'tick' });
  }

  /** Hands one delivery to its replica's driver, timed. */
  private step(delivery: Delivery): void {
    const { driver } = this.hosts[delivery.to]!;
    const start = performance.now();
    if (delivery.kind === 'tick') driver.tick(this.now);
    else if (delivery.kind === 'message') driver.receive(delivery.bytes);
    else driver.receiveForwarded(delivery.bytes);
    this.stepMs += performance.now() - start;
  }

  private send(to: number, bytes: Uint8Array): void {
    this.messages += 1;
    this.messageBytes += bytes.length;
    this.queue.push({ to, kind: 'message', bytes });
  }

  /** A driver stored a certified block: the first replica to store a height answers its clients. */
  private stored(host: Host, block: Block): void {
    const count = block.transactions.length;
    host.certifiedRequests += count;
    if (block.header.height > this.ackedHeight) {
      // The clients of the batch each send their next request.
      this.ackedHeight = block.header.height;
      this.acknowledged += count;
      this.submit(count);
    }
  }

  /** Every replica holds the same chain with every request exactly once. */
  private checkAgreement(): void {
    const reference = this.hosts[0]!.storage.blocks.head()!;
    for (const host of this.hosts) {
      const last = host.storage.blocks.head()!;
      if (
        last.height !== reference.height ||
        hexKey(headerHash(this.plainCrypto, last.header)) !==
          hexKey(headerHash(this.plainCrypto, reference.header))
      ) {
        throw new Error(`r${host.index} disagrees with r0 at the end of the run`);
      }
      const accepted = host.storage.blocks
        .range(1, last.height)
        .flatMap((block) => block.results)
        .filter((result) => (decodeValidated(result) as { status?: unknown }).status === 'accepted').length;
      if (accepted !== this.requests.length) {
        throw new Error(`r${host.index} accepted ${accepted} distinct requests, not ${this.requests.length}`);
      }
    }
  }

  private describe(): string {
    return this.hosts
      .map(
        ({ index, driver: { replica: core } }) =>
          `r${index}:v${core.view}/e${core.lastExecuted}/c${core.lastCertified}/p${core.pendingRequests}`,
      )
      .join(' ');
  }
}

// ---- main -----------------------------------------------------------------------------------------

/** Pre-signs every request: request j is client (j mod clients)'s next one, so each client has one out. */
function presignRequests(options: BenchOptions, keyring: SimKeyring): Uint8Array[] {
  const clients = Array.from({ length: options.clients }, (_, c) => keyring.identity(`bench/client-${c}`));
  const requests: Uint8Array[] = [];
  let last = performance.now();
  for (let j = 0; j < options.requests; j++) {
    const client = clients[j % clients.length]!;
    const operation = new Uint8Array(options.payloadBytes).fill(j & 0xff);
    requests.push(
      encodeClientRequest(
        { group: groupId, client: client.publicKey, seq: Math.floor(j / clients.length) + 1, operation },
        client.sign,
      ),
    );
    if (performance.now() - last >= 1000) {
      last = performance.now();
      progress(`  signed ${j + 1}/${options.requests}`);
    }
  }
  return requests;
}

interface Measured {
  readonly rate: VerifyRate;
  /** The rate measured before the run alone, for comparison with the one sampled throughout. */
  readonly rateBefore: number;
  readonly result: ClusterResult;
  readonly bound: number;
  readonly ratio: number;
}

function formatTable(measured: readonly Measured[]): string {
  const rows: [string, (m: Measured) => string][] = [
    ['replicas', (m) => String(m.result.replicas)],
    ['requests', (m) => String(m.result.requests)],
    ['seconds', (m) => m.result.seconds.toFixed(2)],
    ['throughput req/s', (m) => m.result.requestsPerSecond.toFixed(0)],
    ['ed25519 verify/s', (m) => m.rate.verifiesPerSecond.toFixed(0)],
    ['  before the run', (m) => m.rateBefore.toFixed(0)],
    ['  in-run sample min', (m) => m.rate.sampleRateMin.toFixed(0)],
    ['  in-run sample max', (m) => m.rate.sampleRateMax.toFixed(0)],
    ['bound verify/s ÷ n', (m) => m.bound.toFixed(0)],
    ['ratio', (m) => m.ratio.toFixed(3)],
    ['blocks', (m) => String(m.result.blocks)],
    ['average batch', (m) => m.result.averageBatch.toFixed(1)],
    ['messages per block', (m) => m.result.messagesPerBlock.toFixed(1)],
    ['verifies per request', (m) => m.result.verifiesPerRequest.toFixed(3)],
    ['hashes per request', (m) => m.result.hashesPerRequest.toFixed(2)],
    ['verify/s inside the core', (m) => m.result.coreVerifiesPerSecond?.toFixed(0) ?? '-'],
    ['checkpoints', (m) => String(m.result.checkpoints)],
  ];
  const timeKeys = Object.keys(measured[0]?.result.timeMs ?? {}).filter((key) => key !== 'total');
  for (const key of timeKeys) {
    rows.push([
      `time % ${key}`,
      (m) =>
        m.result.timeMs === undefined
          ? '-'
          : ((100 * m.result.timeMs[key]!) / m.result.timeMs.total!).toFixed(1),
    ]);
  }
  const labelWidth = Math.max(...rows.map(([label]) => label.length));
  const columnWidth = 12;
  const lines = [
    `${'PBFT, instant FIFO network, real Ed25519, one thread'.padEnd(labelWidth)}`,
    ...rows.map(
      ([label, cell]) =>
        `${label.padEnd(labelWidth)}  ${measured.map((m) => cell(m).padStart(columnWidth)).join('')}`,
    ),
  ];
  return lines.join('\n');
}

function main(): void {
  const options = parseOptions();
  const keyring = new SimKeyring('ed25519');
  progress(`pbft bench: pre-signing ${options.requests} requests from ${options.clients} clients`);
  const requests = presignRequests(options, keyring);
  const measured: Measured[] = [];
  for (const n of options.replicaCounts) {
    progress(`n=${n}: measuring Ed25519 verify/s for ${options.verifyMs} ms`);
    const sampler = new VerifyRateSampler();
    const rateBefore = sampler.sample(options.verifyMs);
    progress(`n=${n}: ${Math.round(rateBefore)} verify/s; running ${options.requests} requests`);
    const signers = Array.from({ length: n }, (_, i) => keyring.identity(`bench/n${n}/replica-${i}`));
    const result = new Cluster(n, options, signers, requests).run(sampler);
    const rate = sampler.rate();
    const bound = rate.verifiesPerSecond / n;
    measured.push({ rate, rateBefore, result, bound, ratio: result.requestsPerSecond / bound });
    progress(
      `n=${n}: ${Math.round(result.requestsPerSecond)} req/s in ${result.seconds.toFixed(2)} s; ` +
        `${Math.round(rate.verifiesPerSecond)} verify/s over ${rate.samples} samples ` +
        `(${Math.round(rate.sampleRateMin)}-${Math.round(rate.sampleRateMax)})`,
    );
  }
  process.stdout.write(`${formatTable(measured)}\n`);

  const headline = measured.find((m) => m.result.replicas === 4) ?? measured[0]!;
  const seven = measured.find((m) => m.result.replicas === 7);
  const tuning = replicaConfig(options, [], 0);
  writeBenchResult({
    name: 'pbft',
    value: round(headline.result.requestsPerSecond, 1),
    unit: 'requests/s',
    reference: `ed25519 verify/s ÷ ${headline.result.replicas} replicas (single thread)`,
    referenceValue: round(headline.bound, 1),
    ratio: round(headline.ratio),
    summary: {
      replicas: headline.result.replicas,
      averageBatch: round(headline.result.averageBatch, 1),
      ...(seven === undefined
        ? {}
        : { n7RequestsPerSecond: round(seven.result.requestsPerSecond, 1), n7Ratio: round(seven.ratio) }),
    },
    details: {
      machine: machineInfo(),
      options,
      tuning: {
        checkpointInterval: tuning.checkpointInterval,
        watermarkWindow: tuning.watermarkWindow,
        batchRequestsMax: tuning.batchRequestsMax,
        batchBytesMax: tuning.batchBytesMax,
        batchTicksMax: tuning.batchTicksMax,
        pendingRequestsMax: tuning.pendingRequestsMax,
      },
      runs: measured.map((m) => ({
        ...m.result,
        verifiesPerSecond: round(m.rate.verifiesPerSecond, 1),
        verifyRate: m.rate,
        verifiesPerSecondBefore: round(m.rateBefore, 1),
        bound: round(m.bound, 1),
        ratio: round(m.ratio),
      })),
    },
  });
}

main();
