/**
 * A seeded Raft simulator (TigerBeetle style): n servers in one process, a network that drops, delays,
 * duplicates, reorders, corrupts and partitions, servers that crash and restart with only what they
 * persisted, and clients proposing entries. Every fault is drawn from one seed, so any failing seed
 * replays exactly. Invariants (Raft §5.4, Figure 3) are checked after every step; at the end the
 * network heals and a new proposal must commit everywhere within a bound (liveness). Clients also
 * issue read-index reads (checked for linearizability, thesis §6.4) and the leader adds learners,
 * promotes them and removes voters one at a time (thesis §4.1), removed servers are shut down, and
 * leaders hand over leadership now and then (thesis §3.10).
 *
 * Each server is the production Raft group driver (src/raft-group/driver.ts) on a `MemoryRaftStorage`,
 * with the simulated network as its transport: the simulator watches every input and Ready through
 * the driver's observer and feeds client operations as raw inputs (`driver.step`), so the trace is
 * the inputs the driver steps into each core.
 */
import { TraceDigest } from '../trace-digest.js';
import { Prng } from '../prng.js';
import { AssertionError, ErrorCode } from '../../errors.js';
import { encodeCanonical, decodeCanonical } from '../../codec/index.js';
import { encodeRaftMessage } from '../../consensus/raft/index.js';
import type {
  RaftConfig,
  RaftEntry,
  RaftInput,
  RaftMessage,
  RaftReady,
  RaftSnapshot,
} from '../../consensus/raft/index.js';
import { RaftGroupDriver } from '../../raft-group/driver.js';
import type { RaftClock, ReplicatedStateMachine } from '../../raft-group/driver.js';
import { MemoryRaftStorage } from '../../raft-group/storage.js';

/** Every fault the Raft simulator injects (what `--require-every-fault` expects a run to show). */
export const raftFaultKinds = [
  'crash',
  'restart',
  'partition',
  'heal',
  'partitionDrop',
  'drop',
  'duplicate',
  'tornFrame',
] as const;

export interface RaftSeedOptions {
  readonly nodes?: 3 | 5;
  /** Ticks of the fault phase. Default 1000. */
  readonly ticks?: number;
  /** Ticks allowed, after healing, for a new proposal to commit on every server. Default 400. */
  readonly livenessTicksMax?: number;
}

export interface RaftSeedResult {
  readonly seed: number;
  readonly violations: string[];
  readonly faults: Record<string, number>;
  /** Highest index committed anywhere. */
  readonly committed: number;
  /** Interesting events that are not faults (elections, snapshot installs...). */
  readonly events: Record<string, number>;
  /** sha256 (16 hex) of every input stepped into a server, in order: equal for equal runs. */
  readonly trace: string;
}

interface SimServer {
  readonly id: string;
  /** The running server; undefined while crashed (or after it was retired). */
  driver: RaftGroupDriver | undefined;
  readonly storage: MemoryRaftStorage;
  /** The state machine: applied entries' identities, index → key. Lost on crash. */
  applied: Map<number, string>;
  appliedIndex: number;
}

interface InFlight {
  readonly deliverAt: number;
  readonly order: number;
  readonly to: string;
  readonly message: RaftMessage;
}

const electionTicks = 10;
const heartbeatTicks = 2;
const snapshotEveryEntries = 15;

function entryKey(entry: RaftEntry): string {
  const data = new TextDecoder().decode(entry.data);
  return entry.type === 'config' ? `config:${JSON.stringify(entry.config)}` : `${entry.type}:${data}`;
}

const empty = new Uint8Array(0);

/** Client operations here are raw inputs, so no driver timer is ever armed; one never fires. */
const noTimers: RaftClock = { setTimeout: () => () => {} };

function increment(counter: Record<string, number>, key: string, by = 1): void {
  counter[key] = (counter[key] ?? 0) + by;
}

/** Runs one seed. Pure: the result depends only on `seed` and `options`. */
export function runRaftSeed(seed: number, options: RaftSeedOptions = {}): RaftSeedResult {
  const n = options.nodes ?? 3;
  const ticks = options.ticks ?? 1000;
  const livenessTicksMax = options.livenessTicksMax ?? 400;
  const root = new Prng(seed);
  const faultRandom = root.fork();
  const netRandom = root.fork();
  const clientRandom = root.fork();
  const seedRandom = root.fork();

  const ids = Array.from({ length: n }, (_, i) => `n${i}`);
  /** Servers that start outside the configuration, for membership changes to add. */
  const spares = ['spare0', 'spare1'];
  const allIds = [...ids, ...spares];
  const preVote = faultRandom.chance(0.8);
  const checkQuorum = faultRandom.chance(0.8);
  const dropRate = faultRandom.next() * 0.15;
  const duplicateRate = faultRandom.next() * 0.05;
  const delayTicksMax = faultRandom.int(1, 6);
  const faultRate = 0.004 + faultRandom.next() * 0.02;

  const violations: string[] = [];
  const faults: Record<string, number> = {};
  const events: Record<string, number> = {};
  const violation = (text: string): void => {
    if (violations.length < 20) violations.push(`seed ${seed}: ${text}`);
  };

  const configFor = (id: string): RaftConfig => ({
    id,
    voters: ids,
    seed: seedRandom.nextUint32(),
    electionTicks,
    heartbeatTicks,
    preVote,
    checkQuorum,
    appendEntriesMax: 8,
    maxInflightMessages: 3,
  });

  const servers = new Map<string, SimServer>();

  let now = 0;
  let order = 0;
  let inFlight: InFlight[] = [];
  /** Partition group per server; messages between groups are lost. */
  let group = new Map<string, number>(allIds.map((id) => [id, 0]));
  let faultsOn = true;

  // Global knowledge for the invariants.
  const leaderOfTerm = new Map<number, string>();
  /** (index, term) → entry key and the term of the entry before it (log matching, Raft §5.3). */
  const logRecord = new Map<string, { key: string; prevTerm: number | undefined }>();
  /** index → the committed entry's term and key (state machine safety, leader completeness). */
  const trace = new TraceDigest();
  const committedAt = new Map<number, { term: number; key: string }>();
  let committedMax = 0;
  let clientCounter = 0;
  const everMember = new Set(ids);
  const retired = new Set<string>();
  /** Read id → the highest index committed when the read was issued (linearizability, thesis §6.4). */
  const readsIssued = new Map<string, number>();
  let readCounter = 0;
  const retire = (id: string): void => {
    if (retired.has(id)) return;
    // Stopped at the next tick, not in the middle of handling its own Ready.
    retired.add(id);
    increment(events, 'retired');
  };

  const recordCommitted = (server: SimServer, entry: RaftEntry): void => {
    const key = entryKey(entry);
    const known = committedAt.get(entry.index);
    if (known === undefined) {
      committedAt.set(entry.index, { term: entry.term, key });
      committedMax = Math.max(committedMax, entry.index);
      if (entry.config !== undefined) {
        // Operators shut down a server once its removal commits; it never comes back.
        const members = new Set([...entry.config.voters, ...entry.config.learners]);
        for (const id of everMember) if (!members.has(id)) retire(id);
        for (const id of members) everMember.add(id);
      }
    } else if (known.key !== key || known.term !== entry.term) {
      violation(
        `state machine safety: ${server.id} applied ${key}@${entry.term} at ${entry.index}, others ${known.key}`,
      );
    }
  };

  const installSnapshot = (server: SimServer, snapshot: Pick<RaftSnapshot, 'index' | 'data'>): void => {
    server.applied = new Map();
    if (snapshot.data.length > 0) {
      const keys = decodeCanonical(snapshot.data) as string[];
      keys.forEach((key, i) => {
        server.applied.set(i + 1, key);
        const known = committedAt.get(i + 1);
        if (known !== undefined && known.key !== key) {
          violation(
            `state machine safety: snapshot on ${server.id} holds ${key} at ${i + 1}, others ${known.key}`,
          );
        }
      });
    }
    server.appliedIndex = snapshot.index;
  };

  const checkNode = (server: SimServer, ready: RaftReady, commitBefore: number): void => {
    const node = server.driver!.raft;
    const status = node.status();
    // Election safety (Raft §5.2): at most one leader per term.
    if (status.role === 'leader') {
      const known = leaderOfTerm.get(status.term);
      if (known === undefined) {
        leaderOfTerm.set(status.term, server.id);
        increment(events, 'elections');
        // Leader completeness (Raft §5.4): every committed entry is in a new leader's log.
        for (const [index, entry] of committedAt) {
          if (index <= status.snapshotIndex) continue;
          if (node.termAt(index) !== entry.term) {
            violation(
              `leader completeness: ${server.id} leads term ${status.term} without committed ${index}`,
            );
          }
        }
      } else if (known !== server.id) {
        violation(`election safety: ${known} and ${server.id} both lead term ${status.term}`);
      }
    }
    // Log matching (Raft §5.3): one (index, term) names one entry, with one predecessor term.
    for (const op of ready.persist) {
      if (op.op !== 'append') continue;
      for (const entry of op.entries) {
        const slot = `${entry.index}/${entry.term}`;
        const record = { key: entryKey(entry), prevTerm: node.termAt(entry.index - 1) };
        const known = logRecord.get(slot);
        if (known === undefined) logRecord.set(slot, record);
        else if (
          known.key !== record.key ||
          (known.prevTerm !== undefined &&
            record.prevTerm !== undefined &&
            known.prevTerm !== record.prevTerm)
        ) {
          violation(`log matching: ${server.id} holds a different entry at ${slot}`);
        }
      }
    }
    // Thesis §4.1: a log never holds two configuration entries beyond the committed prefix.
    if (ready.persist.some((op) => op.op === 'append' && op.entries.some((e) => e.config !== undefined))) {
      const uncommittedConfigs = node
        .entries()
        .filter((e) => e.config !== undefined && e.index > committedMax);
      if (uncommittedConfigs.length > 1) {
        violation(
          `${server.id} holds ${uncommittedConfigs.length} uncommitted configuration entries (thesis §4.1)`,
        );
      }
    }
    // Committed entries are never truncated (a snapshot install replaces the log beyond its index).
    for (const op of ready.persist) {
      if (op.op === 'truncate' && op.fromIndex <= commitBefore) {
        violation(`${server.id} truncated committed entries from ${op.fromIndex}`);
      }
    }
  };

  /** What the simulator checks of every Ready, before the driver carries it out. */
  const checkReady = (server: SimServer, input: RaftInput, ready: RaftReady): void => {
    // Nothing of this Ready is written yet: the stored commit is the one before it.
    checkNode(server, ready, server.storage.current.hardState.commit);
    for (const read of ready.readStates) {
      const bound = readsIssued.get(read.id);
      if (bound === undefined) violation(`${server.id} answered unknown read ${read.id}`);
      else if (read.index < bound) {
        violation(`linearizability: read ${read.id} at index ${read.index} misses committed index ${bound}`);
      }
      readsIssued.delete(read.id);
      increment(events, 'reads');
    }
    if (ready.installSnapshot !== undefined) increment(events, 'snapshotInstalls');
    if (input.kind === 'snapshot') {
      if (ready.rejected.length > 0) violation(`${server.id} refused its own snapshot`);
      increment(events, 'snapshots');
    }
  };

  const applied = (server: SimServer, entry: RaftEntry): void => {
    if (entry.index !== server.appliedIndex + 1) {
      violation(`${server.id} applied ${entry.index} after ${server.appliedIndex}`);
    }
    recordCommitted(server, entry);
    server.applied.set(entry.index, entryKey(entry));
    server.appliedIndex = entry.index;
  };

  /** The simulated network: each message is delayed, maybe duplicated, and queued for delivery. */
  const send = (to: string, message: RaftMessage): void => {
    const copies = faultsOn && netRandom.chance(duplicateRate) ? 2 : 1;
    if (copies === 2) increment(faults, 'duplicate');
    for (let c = 0; c < copies; c++) {
      const delay = netRandom.int(1, faultsOn ? delayTicksMax : 1);
      inFlight.push({ deliverAt: now + delay, order: order++, to, message });
    }
  };

  /**
   * The state machine: applied entries' identities (kept by `applied`, which sees configuration
   * entries too), snapshotted as the list of keys.
   */
  const stateMachineOf = (server: SimServer): ReplicatedStateMachine => ({
    apply: () => empty,
    snapshot: () => {
      const keys: string[] = [];
      for (let i = 1; i <= server.appliedIndex; i++) keys.push(server.applied.get(i) ?? '?');
      if (keys.includes('?')) throw new AssertionError(`${server.id} lost track of its applied entries`);
      return encodeCanonical(keys);
    },
    restore: (index, data) => installSnapshot(server, { index, data }),
  });

  /** Starts (or restarts) a server from what its storage holds; its state machine starts empty. */
  const start = (server: SimServer): void => {
    server.applied = new Map();
    server.appliedIndex = 0;
    server.driver = new RaftGroupDriver({
      groupId: 'sim',
      config: configFor(server.id),
      storage: server.storage,
      clock: noTimers,
      transport: { send },
      stateMachine: stateMachineOf(server),
      snapshotEvery: snapshotEveryEntries,
      observer: {
        stepping: (input) => trace.add(`step:${server.id}`, input),
        stepped: (input, ready) => checkReady(server, input, ready),
        applied: (entry) => applied(server, entry),
      },
    });
  };

  const step = (server: SimServer, input: RaftInput): RaftReady | undefined => server.driver?.step(input);

  const crash = (server: SimServer): void => {
    // The process dies: its memory is gone, and so is whatever it wrote without syncing — nothing,
    // since the driver syncs before it shows anything and at the end of every step.
    server.driver = undefined;
    const { unsynced } = server.storage.crash();
    if (unsynced > 0) violation(`${server.id} crashed with ${unsynced} unsynced writes between steps`);
    server.applied = new Map();
    server.appliedIndex = 0;
  };

  const restart = (server: SimServer): void => start(server);

  for (const id of allIds) {
    const server: SimServer = {
      id,
      driver: undefined,
      storage: new MemoryRaftStorage(),
      applied: new Map(),
      appliedIndex: 0,
    };
    servers.set(id, server);
    start(server);
  }

  const liveServers = (): SimServer[] => [...servers.values()].filter((s) => s.driver !== undefined);
  const currentLeader = (): SimServer | undefined => {
    let best: SimServer | undefined;
    for (const server of liveServers()) {
      const status = server.driver!.raft.status();
      if (status.role === 'leader' && (best === undefined || status.term > best.driver!.raft.status().term))
        best = server;
    }
    return best;
  };

  const injectFaults = (): void => {
    if (!faultRandom.chance(faultRate * 5)) return;
    const kind = faultRandom.int(0, 3);
    const down = [...servers.values()].filter((s) => s.driver === undefined && !retired.has(s.id));
    if (kind === 0) {
      const groups = faultRandom.int(2, 3);
      group = new Map(allIds.map((id) => [id, faultRandom.int(0, groups - 1)]));
      increment(faults, 'partition');
    } else if (kind === 1) {
      group = new Map(allIds.map((id) => [id, 0]));
      increment(faults, 'heal');
    } else if (kind === 2 && down.length < Math.floor((n - 1) / 2) + 1) {
      const victim = faultRandom.pick(liveServers());
      crash(victim);
      increment(faults, 'crash');
    } else if (down.length > 0) {
      restart(faultRandom.pick(down));
      increment(faults, 'restart');
    }
  };

  const deliverDue = (): void => {
    const due = inFlight.filter((m) => m.deliverAt <= now);
    inFlight = inFlight.filter((m) => m.deliverAt > now);
    // Reorder: messages due at the same time arrive in a random order.
    for (const flight of netRandom.shuffle(due)) {
      const target = servers.get(flight.to);
      if (target?.driver === undefined) continue;
      if (group.get(flight.message.from) !== group.get(flight.to)) {
        increment(faults, 'partitionDrop');
        continue;
      }
      if (faultsOn && netRandom.chance(dropRate)) {
        increment(faults, 'drop');
        continue;
      }
      if (faultsOn && netRandom.chance(0.002)) {
        // A torn frame (a real transport checksums frames, so corruption shows up as damage the
        // decoder detects): the core must reject it and carry on.
        const bytes = encodeRaftMessage(flight.message);
        const torn = bytes.subarray(0, netRandom.int(0, bytes.length - 1));
        const ready = step(target, { kind: 'bytes', bytes: torn });
        increment(faults, 'tornFrame');
        if (ready !== undefined && ready.rejected.length === 0)
          violation(`${target.id} accepted a torn frame`);
        continue;
      }
      if (netRandom.chance(0.05)) step(target, { kind: 'bytes', bytes: encodeRaftMessage(flight.message) });
      else step(target, { kind: 'message', message: flight.message });
    }
  };

  const propose = (data: string): void => {
    const leader =
      currentLeader() ?? (liveServers().length > 0 ? clientRandom.pick(liveServers()) : undefined);
    if (leader !== undefined) step(leader, { kind: 'propose', data: new TextEncoder().encode(data) });
  };

  const changeMembership = (): void => {
    const leader = currentLeader();
    if (leader === undefined) return;
    const membership = leader.driver!.raft.status().membership;
    const spare = spares.find((id) => !everMember.has(id));
    const learner = membership.learners[0];
    let change: { type: 'addVoter' | 'addLearner' | 'removeServer'; id: string } | undefined;
    if (learner !== undefined) change = { type: 'addVoter', id: learner };
    else if (spare !== undefined && clientRandom.chance(0.5)) change = { type: 'addLearner', id: spare };
    else if (membership.voters.length > n)
      change = { type: 'removeServer', id: clientRandom.pick(membership.voters) };
    if (change === undefined) return;
    const ready = step(leader, { kind: 'changeMembership', change });
    if (ready === undefined || ready.rejected.length > 0) return;
    increment(events, `membership:${change.type}`);
    if (!clientRandom.chance(0.5)) return;
    // Thesis §4.1: a second change while the first is uncommitted (it cannot commit within the step
    // that appended it: every configuration here has at least three voters) must be refused, typed.
    const node = leader.driver!.raft;
    const before = node.status();
    const second = clientRandom.pick<{ type: 'addVoter' | 'addLearner' | 'removeServer'; id: string }>([
      { type: 'addVoter', id: change.id },
      { type: 'removeServer', id: clientRandom.pick(before.membership.voters) },
      { type: 'addLearner', id: spares.find((id) => id !== change.id) ?? 'spare1' },
    ]);
    const again = step(leader, { kind: 'changeMembership', change: second });
    increment(events, 'membership:secondRefused');
    if (
      again === undefined ||
      again.rejected.length !== 1 ||
      again.rejected[0]!.code !== ErrorCode.BadConfig ||
      node.status().lastIndex !== before.lastIndex
    ) {
      violation(
        `${leader.id} accepted ${second.type} ${second.id} while a membership change was uncommitted`,
      );
    }
  };

  const transfer = (): void => {
    const leader = currentLeader();
    if (leader === undefined) return;
    const voters = leader.driver!.raft.status().membership.voters.filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    const ready = step(leader, { kind: 'transferLeadership', to: clientRandom.pick(voters) });
    if (ready !== undefined && ready.rejected.length === 0) increment(events, 'transfers');
  };

  const read = (): void => {
    const leader = currentLeader();
    if (leader === undefined) return;
    const id = `r${readCounter++}`;
    readsIssued.set(id, committedMax);
    step(leader, { kind: 'readIndex', id });
  };

  const tickAll = (): void => {
    now++;
    for (const id of retired) servers.get(id)!.driver = undefined;
    for (const id of netRandom.shuffle(allIds)) {
      const server = servers.get(id)!;
      if (server.driver !== undefined) step(server, { kind: 'tick' });
    }
    deliverDue();
  };

  try {
    // Safety phase: faults on.
    for (let t = 0; t < ticks; t++) {
      injectFaults();
      if (clientRandom.chance(0.25)) propose(`c${clientCounter++}`);
      if (clientRandom.chance(0.05)) read();
      if (clientRandom.chance(0.004)) changeMembership();
      if (clientRandom.chance(0.003)) transfer();
      tickAll();
    }

    // Liveness phase: heal everything, then a fresh proposal must commit on every server.
    faultsOn = false;
    group = new Map(allIds.map((id) => [id, 0]));
    for (const server of servers.values())
      if (server.driver === undefined && !retired.has(server.id)) restart(server);
    const finalKey = `normal:final-${seed}`;
    let done = false;
    for (let t = 0; t < livenessTicksMax && !done; t++) {
      const has = (s: SimServer): boolean => [...s.applied.values()].includes(finalKey);
      if (t % 20 === 0 && !liveServers().some(has)) propose(`final-${seed}`);
      tickAll();
      const leader = currentLeader();
      if (leader !== undefined) {
        const membership = leader.driver!.raft.status().membership;
        done = [...membership.voters, ...membership.learners].every((id) => has(servers.get(id)!));
      }
    }
    if (!done)
      violation(`liveness: no new proposal committed everywhere within ${livenessTicksMax} ticks of healing`);
  } catch (error) {
    // A core assertion (a broken invariant) ends the seed as a violation rather than crashing the run.
    violation(`exception at tick ${now}: ${error instanceof Error ? error.message : String(error)}`);
  }

  return { seed, violations, faults, committed: committedMax, events, trace: trace.hex() };
}

export interface RaftSeedsResult {
  readonly seeds: number;
  readonly violations: string[];
  readonly faultsInjected: number;
}

/** Runs seeds from..from+count-1; the shape the sim CLI can print and gate on. */
export function runRaftSeeds(from: number, count: number, nodes: 3 | 5 = 3): RaftSeedsResult {
  const violations: string[] = [];
  let faultsInjected = 0;
  for (let seed = from; seed < from + count; seed++) {
    const result = runRaftSeed(seed, { nodes });
    violations.push(...result.violations);
    for (const [kind, count] of Object.entries(result.faults))
      if (kind !== 'partitionDrop') faultsInjected += count;
  }
  return { seeds: count, violations, faultsInjected };
}
