import { describe, expect, it } from 'vitest';
import { bytesEqual, toHex } from '../codec/index.js';
import { policyDurationMsMax } from '../contracts/registry.js';
import { blockHash, encodeBlock } from '../ledger/block.js';
import type { Block } from '../ledger/block.js';
import { AdminReject, SYSTEM_GROUP, decodeRegistryResult, topicGroupId } from './admin-transactions.js';
import type { AdminAction, RegistryResult } from './admin-transactions.js';
import { TopicStateMachine } from './topic-state.js';
import {
  MemorySink,
  SystemHarness,
  adminEntry,
  blocksEntry,
  buildBlock,
  connectorKey,
  createOrders,
  lie,
  lieKinds,
  nodeKey,
  partition,
  policy,
  publishResult,
  replica,
  replicaSigners,
  signedAdmin,
  startTime,
  validChain,
} from './testing/fixtures.js';
import type { AdminOptions, LieKind } from './testing/fixtures.js';

/** A topic group's state machine fed entry by entry, at consecutive Raft indexes. */
class TopicHarness {
  readonly sink = new MemorySink();
  readonly machine: TopicStateMachine;
  private index = 0;

  constructor(
    readonly system: SystemHarness,
    name: string,
  ) {
    const topic = system.machine.latest.topics.get(name);
    if (topic === undefined) throw new Error(`no topic ${name}`);
    this.machine = new TopicStateMachine(topic, system.reader, this.sink);
  }

  submit(data: Uint8Array): string {
    const result = this.result(data);
    return result.status === 'OK' ? 'OK' : result.reason;
  }

  result(data: Uint8Array): RegistryResult {
    this.index++;
    return decodeRegistryResult(this.machine.apply(this.index, data));
  }

  /** Signs `action` for this topic's group and names the __system index given (default: latest). */
  admin(
    organization: string,
    action: AdminAction,
    options: AdminOptions & { systemIndex?: number } = {},
  ): string {
    const transaction = signedAdmin(organization, action, { group: this.machine.groupId, ...options });
    return this.submit(adminEntry(transaction, options.systemIndex ?? this.system.applied()));
  }

  blocks(blocks: readonly (Block | Uint8Array)[], partitionId = partition): string {
    return this.submit(
      blocksEntry(
        partitionId,
        blocks.map((block) => (block instanceof Uint8Array ? block : encodeBlock(block))),
      ),
    );
  }
}

/** __system with topic "orders" created (and so owned) by alpha; n1..n4 replicate its partition. */
function ordersTopic(): TopicHarness {
  const system = new SystemHarness();
  const created = system.admin('alpha', createOrders());
  expect(created).toBe('OK');
  return new TopicHarness(system, 'orders');
}

const setPolicy = (ttlMs: number): AdminAction => ({ kind: 'setPolicy', policy: { ...policy, ttlMs } });
const setAcl = (producers: string[], consumers: string[]): AdminAction => ({
  kind: 'setAcl',
  producers,
  consumers,
});
const replicaSet = (ids: string[]): ReturnType<typeof replica>[] => ids.map(replica);

/** Checks an admin entry is refused with `reason` and makes no new version. */
function expectRefused(harness: TopicHarness, run: () => string, reason: string): void {
  const before = harness.machine.latest;
  expect(run()).toBe(reason);
  expect(harness.machine.latest).toBe(before);
}

describe('TopicStateMachine: configuration', () => {
  it('lets the owner and a supervisor change the topic, and nobody else', () => {
    const harness = ordersTopic();
    expect(harness.machine.groupId).toBe(topicGroupId('orders'));
    expect(harness.admin('alpha', setPolicy(1_000))).toBe('OK');
    expect(harness.admin('sup', setPolicy(2_000))).toBe('OK');
    expect(harness.admin('alpha', setAcl(['alpha', 'beta'], ['beta']))).toBe('OK');
    expect(harness.admin('sup', setAcl(['alpha'], ['beta', 'aud']))).toBe('OK');
    expect(
      harness.admin('alpha', {
        kind: 'addPartitions',
        count: 2,
        replicas: [replicaSet(['n2', 'n3', 'n4', 'n5'])],
      }),
    ).toBe('OK');
    expect(
      harness.admin('sup', {
        kind: 'setReplicas',
        partition: 1,
        replicas: replicaSet(['n3', 'n4', 'n5', 'n6']),
      }),
    ).toBe('OK');
    for (const organization of ['beta', 'aud']) {
      for (const action of [
        setPolicy(3_000),
        setAcl([], []),
        { kind: 'addPartitions', count: 3, replicas: [replicaSet(['n1', 'n2', 'n3', 'n4'])] } as const,
        { kind: 'setReplicas', partition: 0, replicas: replicaSet(['n1', 'n2', 'n3', 'n5']) } as const,
      ]) {
        expectRefused(harness, () => harness.admin(organization, action), AdminReject.NotAllowed);
      }
    }
    const config = harness.machine.latest.config;
    expect(config.owner).toBe('alpha');
    expect(config.policy.ttlMs).toBe(2_000);
    expect(config.producers).toEqual(['alpha']);
    expect(config.consumers).toEqual(['beta', 'aud']);
    expect(config.partitions).toEqual([
      { configEpoch: 0, replicas: replicaSet(['n1', 'n2', 'n3', 'n4']) },
      { configEpoch: 1, replicas: replicaSet(['n3', 'n4', 'n5', 'n6']) },
    ]);
  });

  it('lets only supervisors change a genesis topic, which has no owner', () => {
    const harness = new TopicHarness(new SystemHarness(), 't');
    expect(harness.machine.latest.config.owner).toBeNull();
    expectRefused(harness, () => harness.admin('alpha', setPolicy(5)), AdminReject.NotAllowed);
    expect(harness.admin('sup', setPolicy(5))).toBe('OK');
  });

  it('requires addPartitions to name the current count plus the replica sets it adds', () => {
    const harness = ordersTopic();
    const one = [replicaSet(['n2', 'n3', 'n4', 'n5'])];
    const two = [...one, replicaSet(['n3', 'n4', 'n5', 'n6'])];
    for (const [count, replicas] of [
      [1, one],
      [3, one],
      [2, two],
    ] as const) {
      expectRefused(
        harness,
        () => harness.admin('alpha', { kind: 'addPartitions', count, replicas: [...replicas] }),
        AdminReject.BadPartitionCount,
      );
    }
    expectRefused(
      harness,
      () =>
        harness.admin('alpha', {
          kind: 'addPartitions',
          count: 2,
          replicas: [replicaSet(['n1', 'n2', 'n3', 'n99'])],
        }),
      AdminReject.NodeUnknown,
    );
    expect(harness.admin('alpha', { kind: 'addPartitions', count: 3, replicas: [...two] })).toBe('OK');
    const view = harness.machine.latest;
    expect(view.config.partitions.map((p) => p.replicas.map((r) => r.id))).toEqual([
      ['n1', 'n2', 'n3', 'n4'],
      ['n2', 'n3', 'n4', 'n5'],
      ['n3', 'n4', 'n5', 'n6'],
    ]);
    expect(view.epochs).toHaveLength(3);
    expectRefused(
      harness,
      () => harness.admin('alpha', { kind: 'addPartitions', count: 4, replicas: [...two] }),
      AdminReject.BadPartitionCount,
    );
  });

  it('bumps the configuration epoch on setReplicas and keeps every earlier epoch', () => {
    const harness = ordersTopic();
    const first = replicaSet(['n2', 'n3', 'n4', 'n5']);
    const second = replicaSet(['n3', 'n4', 'n5', 'n6']);
    expect(harness.admin('alpha', { kind: 'setReplicas', partition: 0, replicas: first })).toBe('OK');
    expect(harness.admin('alpha', { kind: 'setReplicas', partition: 0, replicas: second })).toBe('OK');
    const view = harness.machine.latest;
    expect(view.config.partitions[0]).toEqual({ configEpoch: 2, replicas: second });
    expect(view.epochs[0]).toEqual([
      { configEpoch: 0, replicas: replicaSet(['n1', 'n2', 'n3', 'n4']) },
      { configEpoch: 1, replicas: first },
      { configEpoch: 2, replicas: second },
    ]);
    expectRefused(
      harness,
      () => harness.admin('alpha', { kind: 'setReplicas', partition: 1, replicas: first }),
      AdminReject.PartitionUnknown,
    );
    const impostor = [...first.slice(0, 3), { id: 'n5', publicKey: nodeKey('impostor').publicKey }];
    expectRefused(
      harness,
      () => harness.admin('alpha', { kind: 'setReplicas', partition: 0, replicas: impostor }),
      AdminReject.NodeUnknown,
    );
  });

  it('checks ACL organizations and policies', () => {
    const harness = ordersTopic();
    expectRefused(
      harness,
      () => harness.admin('alpha', setAcl(['ghost'], [])),
      AdminReject.OrganizationUnknown,
    );
    expectRefused(
      harness,
      () => harness.admin('alpha', setPolicy(policyDurationMsMax + 1)),
      AdminReject.BadPolicy,
    );
  });

  it('refuses an admin entry that names no __system index (MALFORMED)', () => {
    const harness = ordersTopic();
    const transaction = signedAdmin('alpha', setPolicy(10), { group: harness.machine.groupId });
    expectRefused(harness, () => harness.submit(adminEntry(transaction)), AdminReject.Malformed);
    expect(harness.submit(adminEntry(transaction, harness.system.applied()))).toBe('OK');
  });

  it('refuses replays, other groups, __system actions, bad signatures and junk', () => {
    const harness = ordersTopic();
    const transaction = signedAdmin('alpha', setPolicy(10), { group: harness.machine.groupId });
    const entry = adminEntry(transaction, harness.system.applied());
    expect(harness.submit(entry)).toBe('OK');
    expectRefused(harness, () => harness.submit(entry), AdminReject.Replay);
    expectRefused(
      harness,
      () => harness.admin('alpha', setPolicy(11), { group: SYSTEM_GROUP }),
      AdminReject.WrongGroup,
    );
    expectRefused(
      harness,
      () => harness.admin('alpha', setPolicy(11), { group: topicGroupId('t') }),
      AdminReject.WrongGroup,
    );
    expectRefused(
      harness,
      () => harness.admin('alpha', { kind: 'bindKey', key: connectorKey('alpha', 3).publicKey }),
      AdminReject.WrongGroup,
    );
    const forged = { ...transaction, nonce: new Uint8Array(16).fill(3) };
    expectRefused(
      harness,
      () => harness.submit(adminEntry(forged, harness.system.applied())),
      AdminReject.BadSignature,
    );
    expectRefused(harness, () => harness.submit(Uint8Array.of(1, 2, 3)), AdminReject.Malformed);
  });

  it('holds an entry (ready = false) until __system has applied the index it names', () => {
    const harness = ordersTopic();
    const at = harness.system.applied();
    const transaction = signedAdmin('alpha', setPolicy(10), { group: harness.machine.groupId });
    expect(harness.machine.ready(adminEntry(transaction, at))).toBe(true);
    expect(harness.machine.ready(adminEntry(transaction, at + 1))).toBe(false);
    expect(harness.machine.ready(adminEntry(transaction, at + 2))).toBe(false);
    expect(
      harness.system.admin('gamma', {
        kind: 'registerOrganization',
        roles: ['member'],
        signingKeys: [connectorKey('gamma').publicKey],
        encryptionKey: new Uint8Array(32),
      }),
    ).toBe('OK');
    expect(harness.machine.ready(adminEntry(transaction, at + 1))).toBe(true);
    expect(harness.machine.ready(adminEntry(transaction, at + 2))).toBe(false);
    // Only admin entries wait for __system; blocks, no-ops and junk are decided at once.
    expect(harness.machine.ready(blocksEntry(partition, [encodeBlock(validChain(1)[0]!)]))).toBe(true);
    expect(harness.machine.ready(new Uint8Array())).toBe(true);
    expect(harness.machine.ready(Uint8Array.of(0xff))).toBe(true);
  });

  it('authorizes against the registry at the named __system index, not the latest', () => {
    const harness = ordersTopic();
    const before = harness.system.applied();
    expect(
      harness.system.admin('sup', {
        kind: 'setOrganizationStatus',
        organization: 'alpha',
        status: 'SUSPENDED',
      }),
    ).toBe('OK');
    const suspended = harness.system.applied();
    // Named before the suspension: every replica decides as the registry stood then.
    expect(harness.admin('alpha', setPolicy(100), { systemIndex: before })).toBe('OK');
    expectRefused(
      harness,
      () => harness.admin('alpha', setPolicy(200), { systemIndex: suspended }),
      AdminReject.NotAllowed,
    );
    expect(
      harness.system.admin('sup', {
        kind: 'setOrganizationStatus',
        organization: 'alpha',
        status: 'APPROVED',
      }),
    ).toBe('OK');
    expectRefused(
      harness,
      () => harness.admin('alpha', setPolicy(300), { systemIndex: suspended }),
      AdminReject.NotAllowed,
    );
    expect(harness.admin('alpha', setPolicy(400), { systemIndex: harness.system.applied() })).toBe('OK');
    // A key bound later is unknown at an earlier index; and a leader may not name an index older than
    // one an accepted entry already used (here: the index of setPolicy(400)).
    const used = harness.system.applied();
    const later = connectorKey('alpha', 1);
    expect(harness.system.admin('alpha', { kind: 'bindKey', key: later.publicKey })).toBe('OK');
    expectRefused(
      harness,
      () => harness.admin('alpha', setPolicy(500), { key: later, systemIndex: used }),
      AdminReject.SigningKeyUnknown,
    );
    expectRefused(
      harness,
      () => harness.admin('alpha', setPolicy(500), { systemIndex: suspended }),
      AdminReject.Malformed,
    );
    expect(harness.admin('alpha', setPolicy(600), { key: later })).toBe('OK');
    expect(harness.machine.latest.config.policy.ttlMs).toBe(600);
  });

  it('keeps each configuration version by topic index', () => {
    const harness = ordersTopic();
    for (let ttl = 1; ttl <= 5; ttl++) expect(harness.admin('alpha', setPolicy(ttl))).toBe('OK');
    expect(harness.machine.at(0).config.policy.ttlMs).toBe(policy.ttlMs);
    for (let index = 1; index <= 5; index++)
      expect(harness.machine.at(index).config.policy.ttlMs).toBe(index);
  });
});

describe('TopicStateMachine: nonces', () => {
  it('keeps one nonce set for every version, so a transaction adds one entry, not a copy', () => {
    const harness = ordersTopic();
    const first = harness.machine.latest;
    const before = first.nonces.size;
    for (let ttlMs = 1_000; ttlMs <= 5_000; ttlMs += 1_000) {
      expect(harness.admin('alpha', setPolicy(ttlMs))).toBe('OK');
    }
    expect(harness.machine.latest.nonces).toBe(first.nonces);
    expect(harness.machine.latest.nonces.size).toBe(before + 5);
    // A restored machine refuses the same replays as the one it was taken from.
    const entry = adminEntry(
      signedAdmin('alpha', setPolicy(9_000), { group: harness.machine.groupId }),
      harness.system.applied(),
    );
    expect(harness.submit(entry)).toBe('OK');
    const restored = new TopicHarness(harness.system, 'orders');
    restored.machine.restore(harness.machine.latest.index, harness.machine.snapshot());
    expect(restored.submit(entry)).toBe(AdminReject.Replay);
  });

  it("refuses a transaction signed over the window before its organization's newest in the topic (STALE), after a restore too", () => {
    const harness = ordersTopic();
    const hour = 3_600_000;
    expect(harness.admin('alpha', setPolicy(1_000), { timestamp: startTime + 3 * hour })).toBe('OK');
    expect(harness.admin('alpha', setPolicy(2_000), { timestamp: startTime + hour })).toBe(AdminReject.Stale);
    expect(harness.machine.latest.config.policy.ttlMs).toBe(1_000);
    const restored = new TopicHarness(harness.system, 'orders');
    restored.machine.restore(harness.machine.latest.index, harness.machine.snapshot());
    expect(restored.admin('alpha', setPolicy(2_000), { timestamp: startTime + hour })).toBe(
      AdminReject.Stale,
    );
    expect(restored.admin('alpha', setPolicy(2_000), { timestamp: startTime + 2 * hour })).toBe('OK');
  });
});

describe('TopicStateMachine: snapshots', () => {
  it('keep every configuration version, so a restored machine answers at() for indexes the snapshot covers', () => {
    const harness = ordersTopic();
    const initialTtl = harness.machine.latest.config.policy.ttlMs;
    expect(harness.admin('alpha', setPolicy(1_000))).toBe('OK');
    expect(harness.admin('alpha', setPolicy(2_000))).toBe('OK');
    expect(harness.admin('alpha', setAcl(['alpha', 'beta'], ['beta']))).toBe('OK');
    // Entries that change no configuration: the snapshot is taken past the last version's index.
    expect(harness.submit(new Uint8Array(0))).toBe('OK');
    expect(harness.submit(new Uint8Array(0))).toBe('OK');
    const restored = new TopicHarness(harness.system, 'orders');
    restored.machine.restore(5, harness.machine.snapshot());
    for (const index of [0, 1, 2, 3, 4, 5, 6]) {
      expect(restored.machine.at(index).config, `at(${index})`).toEqual(harness.machine.at(index).config);
    }
    expect(restored.machine.at(0).config.policy.ttlMs).toBe(initialTtl);
    expect(restored.machine.at(1).config.policy.ttlMs).toBe(1_000);
    expect(restored.machine.at(2).config.policy.ttlMs).toBe(2_000);
    expect(restored.machine.latest.config.producers).toEqual(['alpha', 'beta']);
  });
});

describe('TopicStateMachine: the global ledger', () => {
  const chain = validChain(8);

  function genesisTopic(): TopicHarness {
    return new TopicHarness(new SystemHarness(), 't');
  }

  it('appends valid consecutive blocks to the sink in order', () => {
    const harness = genesisTopic();
    const seen: [string, number][] = [];
    harness.machine.onBlocks((p, height) => seen.push([p, height]));
    expect(harness.blocks(chain.slice(0, 3))).toBe('OK');
    expect(harness.blocks([chain[3]!])).toBe('OK');
    expect(harness.blocks([chain[4]!])).toBe('OK');
    expect(harness.sink.heights()).toEqual([1, 2, 3, 4, 5]);
    expect(harness.sink.entries.map((entry) => entry.hash)).toEqual(
      chain.slice(0, 5).map((block) => toHex(blockHash(block.header))),
    );
    expect(harness.sink.entries.map((entry) => entry.raftIndex)).toEqual([1, 1, 1, 2, 3]);
    expect(bytesEqual(harness.sink.entries[0]!.bytes, encodeBlock(chain[0]!))).toBe(true);
    const head = harness.machine.head(partition)!;
    expect(head.height).toBe(5);
    expect(bytesEqual(head.hash, blockHash(chain[4]!.header))).toBe(true);
    expect(seen).toEqual([
      [partition, 3],
      [partition, 4],
      [partition, 5],
    ]);
    const result = decodeRegistryResult(
      harness.machine.apply(10, blocksEntry(partition, [encodeBlock(chain[5]!)])),
    );
    expect(result).toEqual({ status: 'OK', detail: '1 blocks' });
  });

  it('treats a block already applied as a no-op, alone or at the start of a run', () => {
    const harness = genesisTopic();
    expect(harness.blocks(chain.slice(0, 3))).toBe('OK');
    for (const again of [[chain[2]!], [chain[0]!], chain.slice(0, 3)]) {
      expect(harness.blocks(again)).toBe('OK');
      expect(harness.sink.heights()).toEqual([1, 2, 3]);
    }
    // A new leader copying again from an older point only adds what is new.
    expect(harness.blocks(chain.slice(1, 5))).toBe('OK');
    expect(harness.sink.heights()).toEqual([1, 2, 3, 4, 5]);
  });

  it('refuses a gap (OUT_OF_ORDER) and appends nothing', () => {
    const harness = genesisTopic();
    expect(harness.blocks([chain[1]!])).toBe(AdminReject.OutOfOrder);
    expect(harness.blocks([chain[0]!])).toBe('OK');
    expect(harness.blocks([chain[2]!, chain[3]!])).toBe(AdminReject.OutOfOrder);
    expect(harness.sink.heights()).toEqual([1]);
    expect(harness.machine.head(partition)!.height).toBe(1);
  });

  /** What each lie must be caught by, so a rejection for an unrelated reason fails the test. */
  const causes: Record<LieKind, string> = {
    twoSignatures: 'INSUFFICIENT_SIGNATURES',
    nonMemberSigner: 'NON_MEMBER',
    nonMemberKey: 'BAD_SIGNATURE',
    forgedSignatureByte: 'BAD_SIGNATURE',
    tamperedTransaction: 'ROOT_MISMATCH',
    wrongPreviousHash: 'BROKEN_CHAIN',
    unknownEpoch: 'has no epoch 7',
    undecodable: 'undecodable block',
  };

  for (const kind of lieKinds) {
    it(`rejects a lie (${kind}) with BAD_BLOCK and appends nothing, at height 1 and later`, () => {
      const harness = genesisTopic();
      const result = harness.result(blocksEntry(partition, [lie(kind, 1, undefined)]));
      expect(result.status === 'REJECTED' && result.reason).toBe(AdminReject.BadBlock);
      expect(result.status === 'REJECTED' && result.detail).toContain(causes[kind]);
      expect(harness.sink.entries).toEqual([]);
      expect(harness.machine.head(partition)).toBeUndefined();
      expect(harness.blocks(chain.slice(0, 2))).toBe('OK');
      expect(harness.blocks([lie(kind, 3, chain[1]!.header)])).toBe(AdminReject.BadBlock);
      expect(harness.sink.heights()).toEqual([1, 2]);
      expect(harness.machine.head(partition)!.height).toBe(2);
      // The lie did not move the head: the real next block still goes in.
      expect(harness.blocks([chain[2]!])).toBe('OK');
      expect(harness.sink.heights()).toEqual([1, 2, 3]);
    });
  }

  it('rejects a certified block that conflicts with the replicated one at the same height', () => {
    const harness = genesisTopic();
    expect(harness.blocks(chain.slice(0, 2))).toBe('OK');
    const other = buildBlock({
      height: 2,
      previous: chain[0]!.header,
      transactions: [new TextEncoder().encode('another history')],
    });
    expect(harness.blocks([other])).toBe(AdminReject.BadBlock);
    expect(harness.sink.heights()).toEqual([1, 2]);
  });

  it('rejects a block of another partition or an unknown partition', () => {
    const harness = genesisTopic();
    const elsewhere = buildBlock({ height: 1, partitionId: 't/1' });
    expect(harness.blocks([elsewhere])).toBe(AdminReject.BadBlock);
    expect(harness.blocks([chain[0]!], 't/1')).toBe(AdminReject.PartitionUnknown);
    expect(harness.blocks([chain[0]!], 'other/0')).toBe(AdminReject.PartitionUnknown);
    expect(harness.sink.entries).toEqual([]);
  });

  it('keeps the valid blocks of a run before the first bad one (every replica keeps the same)', () => {
    const harness = genesisTopic();
    const run = [
      encodeBlock(chain[0]!),
      encodeBlock(chain[1]!),
      lie('forgedSignatureByte', 3, chain[1]!.header),
    ];
    expect(harness.blocks(run)).toBe(AdminReject.BadBlock);
    expect(harness.sink.heights()).toEqual([1, 2]);
    expect(harness.machine.head(partition)!.height).toBe(2);
  });

  it('verifies each block against the replica set of its own epoch', () => {
    const harness = genesisTopic();
    expect(harness.blocks(chain.slice(0, 2))).toBe('OK');
    // The partition moves to n2..n5 (epoch 1); blocks certified before still verify against epoch 0.
    expect(
      harness.admin('sup', {
        kind: 'setReplicas',
        partition: 0,
        replicas: replicaSet(['n2', 'n3', 'n4', 'n5']),
      }),
    ).toBe('OK');
    expect(harness.blocks([chain[2]!])).toBe('OK');
    const epochOneSigners = replicaSigners(['n2', 'n3', 'n4', 'n5']);
    const fourth = buildBlock({
      height: 4,
      previous: chain[2]!.header,
      configEpoch: 1,
      proposer: 'n2',
      signers: epochOneSigners.slice(0, 3),
    });
    // n1 is no member of epoch 1, so its signature does not count there.
    const byOldMember = buildBlock({
      height: 4,
      previous: chain[2]!.header,
      configEpoch: 1,
      proposer: 'n2',
      signers: replicaSigners(['n1', 'n2', 'n3']),
    });
    expect(harness.blocks([byOldMember])).toBe(AdminReject.BadBlock);
    expect(harness.blocks([fourth])).toBe('OK');
    // Once epoch 1 certified a block, an epoch-0 certificate cannot follow it.
    const regress = buildBlock({ height: 5, previous: fourth.header });
    expect(harness.blocks([regress])).toBe(AdminReject.BadBlock);
    expect(harness.sink.heights()).toEqual([1, 2, 3, 4]);
  });

  it('indexes the messages a block accepted', () => {
    const harness = genesisTopic();
    const first = chain[0]!;
    const results = [publishResult('msg-1', 'alpha', 0, 2), new TextEncoder().encode('not a result')];
    const second = buildBlock({ height: 2, previous: first.header, results });
    expect(harness.blocks([first, second])).toBe('OK');
    expect(harness.sink.entries.map((entry) => entry.accepted)).toEqual([[], ['msg-1']]);
  });

  it('restores heads from a snapshot: replays stay no-ops and the next block follows', () => {
    const harness = genesisTopic();
    expect(harness.blocks(chain.slice(0, 3))).toBe('OK');
    const restored = new TopicHarness(harness.system, 't');
    restored.machine.restore(3, harness.machine.snapshot());
    expect(restored.machine.headHashes()).toEqual(harness.machine.headHashes());
    expect(restored.blocks([chain[2]!])).toBe('OK');
    expect(restored.blocks([lie('tamperedTransaction', 4, chain[2]!.header)])).toBe(AdminReject.BadBlock);
    expect(restored.blocks([chain[3]!])).toBe('OK');
    expect(restored.sink.heights()).toEqual([4]);
  });
});
