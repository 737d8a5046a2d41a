/**
 * An in-memory Raft cluster for tests: each server has a "disk" (what it persisted), the network is a
 * FIFO queue the test controls (cut links, drop messages), and every Ready is handled in contract
 * order — persist, send, install snapshot, apply. No randomness beyond each node's seed.
 */
import { applyRaftReady } from '../driver.js';
import { RaftNode } from '../node.js';
import type {
  HardState,
  RaftConfig,
  RaftEntry,
  RaftInput,
  RaftMessage,
  RaftReady,
  RaftSnapshot,
} from '../types.js';
import { applyRaftPersist } from './storage.js';
import type { RaftStorage } from './storage.js';

export interface TestServer {
  node: RaftNode;
  storage: RaftStorage;
  /** Data of the entries this server's state machine applied, by index (snapshot installs replace it). */
  applied: Map<number, Uint8Array>;
  readStates: { id: string; index: number }[];
  rejected: { code: string; reason: string }[];
  down: boolean;
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
    const server: TestServer = {
      node: new RaftNode({ ...this.configFor(id), ...config }),
      storage: { hardState: { term: 0, votedFor: null, commit: 0 }, entries: [] },
      applied: new Map(),
      readStates: [],
      rejected: [],
      down: false,
    };
    this.servers.set(id, server);
    return server;
  }

  server(id: string): TestServer {
    const server = this.servers.get(id);
    if (server === undefined) throw new Error(`no server ${id}`);
    return server;
  }

  step(id: string, input: RaftInput): RaftReady {
    const server = this.server(id);
    const ready = server.node.step(input);
    this.handle(id, ready);
    return ready;
  }

  handle(id: string, ready: RaftReady): void {
    const server = this.server(id);
    applyRaftReady(
      {
        step: (input) => server.node.step(input),
        persist: (op) => applyRaftPersist(server.storage, op),
        send: (to, message) => this.queue.push({ to, message }),
        installSnapshot: (snapshot) => installInto(server.applied, snapshot),
        apply: (entry) => server.applied.set(entry.index, entry.data),
        readReady: (readId, index) => server.readStates.push({ id: readId, index }),
        rejected: (code, reason) => server.rejected.push({ code, reason }),
      },
      ready,
    );
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
    const restore = {
      hardState: old.storage.hardState,
      entries: old.storage.entries,
      ...(old.storage.snapshot === undefined ? {} : { snapshot: old.storage.snapshot }),
    };
    old.node = new RaftNode({ ...this.configFor(id), seed }, restore);
    old.applied = new Map();
    if (old.storage.snapshot !== undefined) installInto(old.applied, old.storage.snapshot);
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

function installInto(applied: Map<number, Uint8Array>, snapshot: RaftSnapshot): void {
  applied.clear();
  const text = new TextDecoder().decode(snapshot.data);
  if (text === '') return;
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    applied.set(Number(line.slice(0, at)), new TextEncoder().encode(line.slice(at + 1)));
  }
}

export type { HardState, RaftEntry };
