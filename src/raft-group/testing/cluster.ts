/**
 * An in-memory Raft cluster for tests (of the core, src/consensus/raft, and of what runs on it): each
 * server is the production Raft group driver (src/raft-group/driver.ts) on a `MemoryRaftStorage`
 * disk, the network is a FIFO queue the test controls (cut links, drop messages), and the driver
 * carries out every Ready in contract order — persist, send, install snapshot, apply — as it does in
 * the node. No randomness beyond each node's seed.
 */
import type { RaftNode } from '../../consensus/raft/index.js';
import type {
  HardState,
  RaftConfig,
  RaftEntry,
  RaftInput,
  RaftMessage,
  RaftReady,
} from '../../consensus/raft/index.js';
import { RaftGroupDriver } from '../driver.js';
import type { RaftClock, ReplicatedStateMachine } from '../driver.js';
import { MemoryRaftStorage } from '../storage.js';
import type { RaftStorageImage } from '../storage.js';

/** Inputs are stepped raw (`TestCluster.step`), so the drivers never arm a timer. */
const noTimers: RaftClock = { setTimeout: () => () => {} };

/** One server: a driver over a memory disk, and what its state machine applied. */
export class TestServer {
  driver: RaftGroupDriver;
  /** The server's disk: what it keeps across a restart. The driver syncs at the end of every step. */
  readonly disk = new MemoryRaftStorage();
  /** Data of the entries this server's state machine applied, by index (snapshot installs replace it). */
  applied = new Map<number, Uint8Array>();
  readonly readStates: { id: string; index: number }[] = [];
  readonly rejected: { code: string; reason: string }[] = [];
  down = false;

  /** `observe` sees every Ready of this server's core, before the driver carries it out. */
  constructor(
    config: RaftConfig,
    private readonly send: (to: string, message: RaftMessage) => void,
    private readonly observe: (ready: RaftReady) => void,
  ) {
    this.driver = this.start(config);
  }

  /** The core, to look at: step it through `TestCluster.step`, never directly. */
  get node(): Pick<RaftNode, 'status' | 'termAt' | 'entries'> {
    return this.driver.raft;
  }

  /** What this server persisted. */
  get storage(): Readonly<RaftStorageImage> {
    return this.disk.current;
  }

  /** A crash and restart: a new driver from what the disk holds; the state machine starts over. */
  restart(config: RaftConfig): void {
    this.disk.crash();
    this.applied = new Map();
    this.driver = this.start(config);
  }

  private start(config: RaftConfig): RaftGroupDriver {
    const stateMachine: ReplicatedStateMachine = {
      // Every entry, configuration ones too, is recorded by the observer's `applied`.
      apply: () => new Uint8Array(0),
      snapshot: () => {
        throw new Error('the test cluster snapshots only when a test steps a snapshot in');
      },
      restore: (_index, data) => installInto(this.applied, data),
    };
    return new RaftGroupDriver({
      groupId: 'test',
      config,
      storage: this.disk,
      clock: noTimers,
      transport: { send: this.send },
      stateMachine,
      observer: {
        stepped: (_input, ready) => this.observe(ready),
        applied: (entry) => this.applied.set(entry.index, entry.data),
      },
    });
  }
}

export interface ClusterOptions {
  voters: string[];
  learners?: string[];
  electionTicks?: number;
  heartbeatTicks?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  seed?: number;
  /** Extra settings for every server, e.g. appendEntriesMax. */
  extra?: Partial<RaftConfig>;
}

export class TestCluster {
  readonly servers = new Map<string, TestServer>();
  queue: { to: string; message: RaftMessage }[] = [];
  /** Links that drop everything, as "a>b". */
  readonly cut = new Set<string>();
  /** Optional filter: return false to drop a message. */
  filter: (message: RaftMessage) => boolean = () => true;

  constructor(private readonly options: ClusterOptions) {
    for (const id of [...options.voters, ...(options.learners ?? [])]) this.addServer(id);
  }

  configFor(id: string): RaftConfig {
    const index = [...this.options.voters, ...(this.options.learners ?? [])].indexOf(id);
    return {
      id,
      voters: this.options.voters,
      learners: this.options.learners ?? [],
      seed: (this.options.seed ?? 1) * 1000 + index + 1,
      electionTicks: this.options.electionTicks ?? 10,
      heartbeatTicks: this.options.heartbeatTicks ?? 1,
      preVote: this.options.preVote ?? true,
      checkQuorum: this.options.checkQuorum ?? true,
      ...this.options.extra,
    };
  }

  /** Adds a fresh server (empty storage) with the cluster's initial configuration. */
  addServer(id: string, config: Partial<RaftConfig> = {}): TestServer {
    const server = new TestServer(
      { ...this.configFor(id), ...config },
      (to, message) => this.queue.push({ to, message }),
      (ready) => this.handle(id, ready),
    );
    this.servers.set(id, server);
    return server;
  }

  server(id: string): TestServer {
    const server = this.servers.get(id);
    if (server === undefined) throw new Error(`no server ${id}`);
    return server;
  }

  /** Steps `input` into server `id`'s driver, which carries out the Ready; returns that Ready. */
  step(id: string, input: RaftInput): RaftReady {
    const ready = this.server(id).driver.step(input);
    if (ready === undefined) throw new Error(`${id} stepped while its driver handled a Ready`);
    return ready;
  }

  /**
   * Called with every Ready of server `id`'s core (the inputs `step` feeds and those its driver adds,
   * such as reporting what it applied), before the driver carries it out: records the read states
   * and rejections. A test may wrap it to watch Readies; it must not step anything.
   */
  handle(id: string, ready: RaftReady): void {
    const server = this.server(id);
    server.readStates.push(...ready.readStates.map(({ id: readId, index }) => ({ id: readId, index })));
    server.rejected.push(...ready.rejected.map(({ code, reason }) => ({ code, reason })));
  }

  /** Delivers queued messages (and what they cause) until none are left. */
  deliverAll(limit = 100_000): void {
    for (let n = 0; this.queue.length > 0; n++) {
      if (n > limit) throw new Error('message storm');
      const { to, message } = this.queue.shift()!;
      const target = this.servers.get(to);
      if (target === undefined || target.down || this.cut.has(`${message.from}>${to}`)) continue;
      if (!this.filter(message)) continue;
      this.step(to, { kind: 'message', message });
    }
  }

  tick(ids: readonly string[] = [...this.servers.keys()]): void {
    for (const id of ids) if (!this.server(id).down) this.step(id, { kind: 'tick' });
    this.deliverAll();
  }

  ticks(count: number, ids?: readonly string[]): void {
    for (let i = 0; i < count; i++) this.tick(ids);
  }

  /** Cuts every link between `group` and the rest. */
  isolate(group: readonly string[]): void {
    for (const a of this.servers.keys()) {
      for (const b of this.servers.keys()) {
        if (group.includes(a) !== group.includes(b)) this.cut.add(`${a}>${b}`);
      }
    }
  }

  heal(): void {
    this.cut.clear();
  }

  leaders(): string[] {
    return [...this.servers]
      .filter(([, s]) => !s.down && s.node.status().role === 'leader')
      .map(([id]) => id);
  }

  /** Ticks until exactly one live leader exists, and returns it. */
  electLeader(maxTicks = 500): string {
    for (let i = 0; i < maxTicks; i++) {
      this.tick();
      const leaders = this.leaders();
      if (leaders.length === 1) return leaders[0]!;
    }
    throw new Error('no leader elected');
  }

  /** Ticks `id` alone until its election timer fires and it asks for (pre-)votes. */
  campaign(id: string): void {
    for (let i = 0; i < 1000; i++) {
      const ready = this.step(id, { kind: 'tick' });
      if (ready.send.some((out) => out.message.type === 'vote' || out.message.type === 'preVote')) return;
      if (this.server(id).node.status().role === 'leader') return;
    }
    throw new Error(`${id} never campaigned`);
  }

  propose(id: string, text: string): RaftReady {
    return this.step(id, { kind: 'propose', data: new TextEncoder().encode(text) });
  }

  appliedText(id: string): string[] {
    const applied = this.server(id).applied;
    return [...applied.keys()].sort((a, b) => a - b).map((i) => new TextDecoder().decode(applied.get(i)!));
  }

  /** Simulates a crash and restart: the server keeps only its storage. */
  restart(id: string, seed: number): void {
    const old = this.server(id);
    old.restart({ ...this.configFor(id), seed });
    old.down = false;
  }
}

/** The tests' state machine snapshot: the applied entries' data, by index. */
export function encodeAppliedSnapshot(applied: Map<number, Uint8Array>, upTo: number): Uint8Array {
  const parts: string[] = [];
  for (const [index, data] of [...applied].sort((a, b) => a[0] - b[0])) {
    if (index <= upTo) parts.push(`${index}=${new TextDecoder().decode(data)}`);
  }
  return new TextEncoder().encode(parts.join('\n'));
}

function installInto(applied: Map<number, Uint8Array>, data: Uint8Array): void {
  applied.clear();
  const text = new TextDecoder().decode(data);
  if (text === '') return;
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    applied.set(Number(line.slice(0, at)), new TextEncoder().encode(line.slice(at + 1)));
  }
}

export type { HardState, RaftEntry };
