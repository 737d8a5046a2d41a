import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytesEqual, decodeCanonical, encodeCanonical } from '../codec/index.js';
import type { CborValue } from '../codec/index.js';
import { policyDurationMsMax } from '../contracts/registry.js';
import { encodeBlock } from '../ledger/block.js';
import { AdminReject, defaultQuotas, encodeRegistryEntry, topicGroupId } from './admin-transactions.js';
import type { AdminAction, AdminTransaction } from './admin-transactions.js';
import { AdminNonceWindow, adminClockWindowMs } from './nonce-window.js';
import { SystemStateMachine } from './system-state.js';
import {
  SystemHarness,
  adminEntry,
  connectorKey,
  encryptionKey,
  freshNonce,
  keyFor,
  nodeKey,
  outcome,
  policy,
  registerNodeAction,
  replica,
  signedAdmin,
  startTime,
  testGenesis,
  validChain,
} from './testing/fixtures.js';

function register(
  id: string,
  roles: ('member' | 'supervisor' | 'auditor')[] = ['member'],
  keys = [connectorKey(id).publicKey],
): AdminAction {
  return { kind: 'registerOrganization', roles, signingKeys: keys, encryptionKey: encryptionKey(id) };
}

function setStatus(organization: string, status: 'APPROVED' | 'SUSPENDED' | 'REVOKED'): AdminAction {
  return { kind: 'setOrganizationStatus', organization, status };
}

type CreateTopic = Extract<AdminAction, { kind: 'createTopic' }>;

function createTopic(
  name: string,
  partitions: string[][],
  overrides: Partial<CreateTopic> = {},
): CreateTopic {
  return {
    kind: 'createTopic',
    name,
    partitions: partitions.map((ids) => ids.map(replica)),
    producers: ['alpha'],
    consumers: ['beta'],
    policy: { ...policy },
    ...overrides,
  };
}

function statusOf(harness: SystemHarness, id: string, index?: number): string | undefined {
  const view = index === undefined ? harness.machine.latest : harness.machine.at(index);
  return view.organizations.get(id)?.status;
}

/** Applies `data` and checks it is refused with `reason` and leaves the registry exactly as it was. */
function expectRefused(harness: SystemHarness, data: Uint8Array, reason: string): void {
  const before = harness.machine.latest;
  const snapshot = harness.machine.snapshot();
  expect(harness.submit(data)).toBe(reason);
  expect(harness.machine.latest).toBe(before);
  expect(bytesEqual(harness.machine.snapshot(), snapshot)).toBe(true);
}

function refuseAdmin(
  harness: SystemHarness,
  organization: string,
  action: AdminAction,
  reason: string,
  options: Parameters<typeof signedAdmin>[2] = {},
): void {
  expectRefused(harness, adminEntry(signedAdmin(organization, action, options)), reason);
}

/** gamma registered and approved: a fresh organization the tests can move through its states. */
function withGamma(): SystemHarness {
  const harness = new SystemHarness();
  expect(harness.admin('gamma', register('gamma'))).toBe('OK');
  expect(harness.admin('sup', setStatus('gamma', 'APPROVED'))).toBe('OK');
  return harness;
}

describe('SystemStateMachine: genesis', () => {
  it('starts from genesis with every organization APPROVED and genesis topics owned by nobody', () => {
    const harness = new SystemHarness();
    const view = harness.machine.latest;
    expect(view.index).toBe(0);
    expect([...view.organizations.values()].map((org) => [org.id, org.status])).toEqual([
      ['alpha', 'APPROVED'],
      ['beta', 'APPROVED'],
      ['sup', 'APPROVED'],
      ['aud', 'APPROVED'],
    ]);
    expect(
      bytesEqual(view.organizations.get('alpha')!.signingKeys[0]!, connectorKey('alpha').publicKey),
    ).toBe(true);
    expect(view.nodes.get('n3')!.organization).toBe('sup');
    const topic = view.topics.get('t')!;
    expect(topic.config.owner).toBeNull();
    expect(topic.config.partitions).toEqual([
      { configEpoch: 0, replicas: ['n1', 'n2', 'n3', 'n4'].map(replica) },
    ]);
    expect(topic.voters).toEqual(['n1', 'n2', 'n3']);
    expect(topic.learners).toEqual(['n4']);
  });

  it('applies an empty entry (a new leader’s no-op) as OK without a new version', () => {
    const harness = new SystemHarness();
    const before = harness.machine.latest;
    expect(harness.submit(new Uint8Array())).toBe('OK');
    expect(harness.machine.latest).toBe(before);
  });
});

describe('SystemStateMachine: registration workflow', () => {
  it('registers an organization as PENDING with its keys, holding no role: the roles are only requested', () => {
    const harness = new SystemHarness();
    expect(harness.admin('gamma', register('gamma', ['member', 'auditor']))).toBe('OK');
    const gamma = harness.machine.latest.organizations.get('gamma')!;
    expect(gamma.status).toBe('PENDING');
    expect(gamma.roles).toEqual([]);
    expect(gamma.requestedRoles).toEqual(['member', 'auditor']);
    expect(bytesEqual(gamma.signingKeys[0]!, connectorKey('gamma').publicKey)).toBe(true);
    expect(bytesEqual(gamma.encryptionKey, encryptionKey('gamma'))).toBe(true);
    expect(harness.machine.latest.index).toBe(1);
  });

  it('requires a registration to be signed by one of the keys it registers (SIGNING_KEY_UNKNOWN)', () => {
    const harness = new SystemHarness();
    refuseAdmin(harness, 'gamma', register('gamma'), AdminReject.SigningKeyUnknown, {
      key: keyFor('someone else'),
    });
    // Any of the registered keys proves possession, not only the first.
    const second = connectorKey('gamma', 1);
    expect(
      harness.admin(
        'gamma',
        register('gamma', ['member'], [connectorKey('gamma').publicKey, second.publicKey]),
        {
          key: second,
        },
      ),
    ).toBe('OK');
  });

  it('refuses the replay of an applied transaction (REPLAY)', () => {
    const harness = new SystemHarness();
    const entry = adminEntry(signedAdmin('gamma', register('gamma')));
    expect(harness.submit(entry)).toBe('OK');
    expectRefused(harness, entry, AdminReject.Replay);
    const approve = adminEntry(signedAdmin('sup', setStatus('gamma', 'APPROVED')));
    expect(harness.submit(approve)).toBe('OK');
    expect(harness.admin('sup', setStatus('gamma', 'SUSPENDED'))).toBe('OK');
    // Replaying the approval would undo the suspension.
    expectRefused(harness, approve, AdminReject.Replay);
    expect(statusOf(harness, 'gamma')).toBe('SUSPENDED');
  });

  it('refuses a second registration of an existing id (ALREADY_EXISTS)', () => {
    const harness = new SystemHarness();
    expect(harness.admin('gamma', register('gamma'))).toBe('OK');
    refuseAdmin(
      harness,
      'gamma',
      register('gamma', ['member'], [connectorKey('gamma', 2).publicKey]),
      AdminReject.AlreadyExists,
      {
        key: connectorKey('gamma', 2),
      },
    );
    // A genesis organization cannot be taken over by registering its id with another key.
    refuseAdmin(
      harness,
      'alpha',
      register('alpha', ['supervisor'], [keyFor('thief').publicKey]),
      AdminReject.AlreadyExists,
      {
        key: keyFor('thief'),
      },
    );
  });

  it('refuses a key already bound to an organization or a node key already in use (KEY_IN_USE)', () => {
    const harness = withGamma();
    const alphaKey = connectorKey('alpha');
    refuseAdmin(harness, 'delta', register('delta', ['member'], [alphaKey.publicKey]), AdminReject.KeyInUse, {
      key: alphaKey,
    });
    refuseAdmin(
      harness,
      'gamma',
      { kind: 'bindKey', key: connectorKey('beta').publicKey },
      AdminReject.KeyInUse,
    );
    refuseAdmin(
      harness,
      'gamma',
      registerNodeAction('gamma', 'g1', 'g1.example:7000', nodeKey('n1')),
      AdminReject.KeyInUse,
    );
  });

  it('lets only an approved supervisor decide registrations (NOT_ALLOWED otherwise)', () => {
    const harness = new SystemHarness();
    expect(harness.admin('gamma', register('gamma'))).toBe('OK');
    refuseAdmin(harness, 'alpha', setStatus('gamma', 'APPROVED'), AdminReject.NotAllowed);
    refuseAdmin(harness, 'aud', setStatus('gamma', 'APPROVED'), AdminReject.NotAllowed);
    // A registered but not yet approved supervisor has no power either.
    expect(harness.admin('sup2', register('sup2', ['supervisor']))).toBe('OK');
    refuseAdmin(harness, 'sup2', setStatus('gamma', 'APPROVED'), AdminReject.NotAllowed);
    refuseAdmin(harness, 'nobody', setStatus('gamma', 'APPROVED'), AdminReject.OrganizationUnknown);
    expect(statusOf(harness, 'gamma')).toBe('PENDING');
  });

  it('moves an organization through APPROVED, SUSPENDED and back, and REVOKED for good', () => {
    const harness = new SystemHarness();
    expect(harness.admin('gamma', register('gamma'))).toBe('OK');
    for (const status of ['APPROVED', 'SUSPENDED', 'APPROVED', 'REVOKED'] as const) {
      expect(harness.admin('sup', setStatus('gamma', status))).toBe('OK');
      expect(statusOf(harness, 'gamma')).toBe(status);
    }
    for (const status of ['APPROVED', 'SUSPENDED', 'REVOKED'] as const) {
      refuseAdmin(harness, 'sup', setStatus('gamma', status), AdminReject.NotAllowed);
    }
    refuseAdmin(harness, 'sup', setStatus('nobody', 'APPROVED'), AdminReject.OrganizationUnknown);
  });

  it('does not let a supervisor change its own status', () => {
    const harness = new SystemHarness();
    for (const status of ['APPROVED', 'SUSPENDED', 'REVOKED'] as const) {
      refuseAdmin(harness, 'sup', setStatus('sup', status), AdminReject.NotAllowed);
    }
    expect(statusOf(harness, 'sup')).toBe('APPROVED');
  });

  it('lets no SUSPENDED, PENDING or REVOKED organization create topics, bind keys or register nodes', () => {
    const harness = new SystemHarness();
    expect(harness.admin('gamma', register('gamma'))).toBe('OK');
    const actions: AdminAction[] = [
      createTopic('g-topic', [['n1', 'n2', 'n3', 'n4']]),
      { kind: 'bindKey', key: connectorKey('gamma', 5).publicKey },
      registerNodeAction('gamma', 'g1', 'g1.example:7000'),
    ];
    for (const status of ['PENDING', 'SUSPENDED', 'REVOKED'] as const) {
      if (status !== 'PENDING') expect(harness.admin('sup', setStatus('gamma', status))).toBe('OK');
      for (const action of actions) refuseAdmin(harness, 'gamma', action, AdminReject.NotAllowed);
    }
    // A suspended genesis organization is refused the same way.
    expect(harness.admin('sup', setStatus('alpha', 'SUSPENDED'))).toBe('OK');
    refuseAdmin(harness, 'alpha', createTopic('a-topic', [['n1', 'n2', 'n3', 'n4']]), AdminReject.NotAllowed);
  });

  it('lets an approved organization bind another key and sign with it', () => {
    const harness = withGamma();
    const second = connectorKey('gamma', 1);
    refuseAdmin(
      harness,
      'gamma',
      { kind: 'bindKey', key: connectorKey('gamma', 2).publicKey },
      AdminReject.SigningKeyUnknown,
      {
        key: second,
      },
    );
    expect(harness.admin('gamma', { kind: 'bindKey', key: second.publicKey })).toBe('OK');
    expect(
      harness.admin('gamma', { kind: 'bindKey', key: connectorKey('gamma', 2).publicKey }, { key: second }),
    ).toBe('OK');
    expect(harness.machine.latest.organizations.get('gamma')!.signingKeys).toHaveLength(3);
  });

  it('registers a node of an approved organization, once per id', () => {
    const harness = withGamma();
    const node = registerNodeAction('gamma', 'g1', 'g1.example:7000');
    expect(harness.admin('gamma', node)).toBe('OK');
    expect(harness.machine.latest.nodes.get('g1')).toEqual({
      id: 'g1',
      organization: 'gamma',
      publicKey: nodeKey('g1').publicKey,
      address: 'g1.example:7000',
    });
    refuseAdmin(
      harness,
      'gamma',
      registerNodeAction('gamma', 'g1', 'g1.example:7000', nodeKey('g1b')),
      AdminReject.AlreadyExists,
    );
    refuseAdmin(
      harness,
      'alpha',
      registerNodeAction('alpha', 'n1', 'g1.example:7000', nodeKey('x')),
      AdminReject.AlreadyExists,
    );
  });
});

describe('SystemStateMachine: authentication', () => {
  function tamper(transaction: AdminTransaction, change: Partial<AdminTransaction>): Uint8Array {
    return encodeRegistryEntry({ type: 'admin', transaction: { ...transaction, ...change } });
  }

  it('refuses a bad signature (BAD_SIGNATURE)', () => {
    const harness = withGamma();
    const signed = signedAdmin('gamma', { kind: 'bindKey', key: connectorKey('gamma', 1).publicKey });
    const signature = Uint8Array.from(signed.signature);
    signature[0] = signature[0]! ^ 0x80;
    expectRefused(harness, tamper(signed, { signature }), AdminReject.BadSignature);
    // The signed bytes cover the action: another key in the same envelope does not verify.
    expectRefused(
      harness,
      tamper(signed, { action: { kind: 'bindKey', key: connectorKey('gamma', 9).publicKey } }),
      AdminReject.BadSignature,
    );
    // A signature by gamma's key is not one by alpha, even though both keys are registered.
    expectRefused(
      harness,
      tamper(signed, { organization: 'alpha', signerKey: connectorKey('alpha').publicKey }),
      AdminReject.BadSignature,
    );
    expect(harness.submit(adminEntry(signed))).toBe('OK');
  });

  it('refuses a key that is not the acting organization’s (SIGNING_KEY_UNKNOWN, ORGANIZATION_UNKNOWN)', () => {
    const harness = new SystemHarness();
    refuseAdmin(
      harness,
      'alpha',
      { kind: 'bindKey', key: keyFor('k').publicKey },
      AdminReject.SigningKeyUnknown,
      {
        key: connectorKey('beta'),
      },
    );
    refuseAdmin(
      harness,
      'nobody',
      { kind: 'bindKey', key: keyFor('k').publicKey },
      AdminReject.OrganizationUnknown,
    );
  });

  it('refuses a transaction for another group and topic actions (WRONG_GROUP)', () => {
    const harness = new SystemHarness();
    refuseAdmin(harness, 'alpha', { kind: 'bindKey', key: keyFor('k').publicKey }, AdminReject.WrongGroup, {
      group: topicGroupId('t'),
    });
    refuseAdmin(harness, 'sup', { kind: 'setPolicy', policy: { ...policy } }, AdminReject.WrongGroup);
    refuseAdmin(harness, 'sup', { kind: 'setAcl', producers: [], consumers: [] }, AdminReject.WrongGroup);
  });

  it('refuses bytes that are not an admin entry (MALFORMED)', () => {
    const harness = new SystemHarness();
    expectRefused(harness, Uint8Array.of(0xff, 0x00, 0x13), AdminReject.Malformed);
    expectRefused(harness, new TextEncoder().encode('hello'), AdminReject.Malformed);
    const valid = adminEntry(signedAdmin('gamma', register('gamma')));
    expectRefused(harness, valid.subarray(0, valid.length - 1), AdminReject.Malformed);
    expectRefused(
      harness,
      encodeRegistryEntry({ type: 'blocks', partition: 't/0', blocks: [encodeBlock(validChain(1)[0]!)] }),
      AdminReject.Malformed,
    );
  });
});

describe('SystemStateMachine: topics', () => {
  it('creates a topic owned by its creator, with 3 Raft voters from 4 nodes', () => {
    const harness = new SystemHarness();
    expect(harness.admin('alpha', createTopic('orders', [['n4', 'n3', 'n2', 'n1']]))).toBe('OK');
    const topic = harness.machine.latest.topics.get('orders')!;
    expect(topic.config.owner).toBe('alpha');
    expect(topic.createdAt).toBe(1);
    expect(topic.config.partitions).toEqual([
      { configEpoch: 0, replicas: ['n4', 'n3', 'n2', 'n1'].map(replica) },
    ]);
    expect(topic.config.producers).toEqual(['alpha']);
    expect(topic.config.consumers).toEqual(['beta']);
    expect(topic.config.policy).toEqual(policy);
    expect(topic.voters).toEqual(['n1', 'n2', 'n3']);
    expect(topic.learners).toEqual(['n4']);
  });

  it('gives a topic 5 voters once its partitions span 5 nodes or more', () => {
    const harness = new SystemHarness();
    expect(
      harness.admin(
        'sup',
        createTopic('wide', [
          ['n1', 'n2', 'n3', 'n4'],
          ['n3', 'n4', 'n5', 'n6'],
        ]),
      ),
    ).toBe('OK');
    const topic = harness.machine.latest.topics.get('wide')!;
    expect(topic.config.owner).toBe('sup');
    expect(topic.voters).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
    expect(topic.learners).toEqual(['n6']);
  });

  it('requires replicas to be registered nodes with their registered keys (NODE_UNKNOWN)', () => {
    const harness = new SystemHarness();
    refuseAdmin(harness, 'alpha', createTopic('x', [['n1', 'n2', 'n3', 'n99']]), AdminReject.NodeUnknown);
    const wrongKey = createTopic('x', [['n1', 'n2', 'n3', 'n4']]);
    const partitions = [
      [...wrongKey.partitions[0]!.slice(0, 3), { id: 'n4', publicKey: nodeKey('impostor').publicKey }],
    ];
    refuseAdmin(harness, 'alpha', { ...wrongKey, partitions }, AdminReject.NodeUnknown);
  });

  it('requires known producers and consumers and a valid policy', () => {
    const harness = new SystemHarness();
    const replicas = [['n1', 'n2', 'n3', 'n4']];
    refuseAdmin(
      harness,
      'alpha',
      createTopic('x', replicas, { producers: ['alpha', 'ghost'] }),
      AdminReject.OrganizationUnknown,
    );
    refuseAdmin(
      harness,
      'alpha',
      createTopic('x', replicas, { consumers: ['ghost'] }),
      AdminReject.OrganizationUnknown,
    );
    refuseAdmin(
      harness,
      'alpha',
      createTopic('x', replicas, { policy: { ...policy, ttlMs: policyDurationMsMax + 1 } }),
      AdminReject.BadPolicy,
    );
    refuseAdmin(
      harness,
      'alpha',
      createTopic('x', replicas, { policy: { ...policy, payloadRetentionMs: policyDurationMsMax + 1 } }),
      AdminReject.BadPolicy,
    );
  });

  it('refuses a second topic of the same name and topics created by auditors', () => {
    const harness = new SystemHarness();
    refuseAdmin(harness, 'beta', createTopic('t', [['n1', 'n2', 'n3', 'n4']]), AdminReject.AlreadyExists);
    refuseAdmin(harness, 'aud', createTopic('y', [['n1', 'n2', 'n3', 'n4']]), AdminReject.NotAllowed);
  });
});

describe('SystemStateMachine: versions and snapshots', () => {
  it('keeps every version: at(index) is the registry in force at that index', () => {
    const harness = new SystemHarness();
    const expected: { index: number; gamma: string | undefined; nodes: number }[] = [
      { index: 0, gamma: undefined, nodes: 6 },
    ];
    let gamma: string | undefined;
    let nodes = 6;
    const record = (): void => {
      expected.push({ index: harness.applied(), gamma, nodes });
    };
    expect(harness.admin('gamma', register('gamma'))).toBe('OK');
    gamma = 'PENDING';
    record();
    const cycle = ['APPROVED', 'SUSPENDED'] as const;
    for (let round = 0; round < 40; round++) {
      const status = cycle[round % 2]!;
      expect(harness.admin('sup', setStatus('gamma', status))).toBe('OK');
      gamma = status;
      record();
      // Rejected entries take an index too but make no version.
      expect(harness.admin('alpha', setStatus('gamma', 'REVOKED'))).toBe(AdminReject.NotAllowed);
      record();
      if (status === 'APPROVED' && round % 4 === 0) {
        const id = `g${round}`;
        expect(harness.admin('gamma', registerNodeAction('gamma', id, `${id}.example:1`))).toBe('OK');
        nodes++;
        record();
      }
    }
    for (const { index, gamma: status, nodes: count } of expected) {
      const view = harness.machine.at(index);
      expect(view.organizations.get('gamma')?.status).toBe(status);
      expect(view.nodes.size).toBe(count);
      expect(view.index).toBeLessThanOrEqual(index);
    }
    // Beyond the last entry, the latest version holds.
    expect(harness.machine.at(10_000)).toBe(harness.machine.latest);
  });

  it('restores a snapshot into a fresh machine with the same registry', () => {
    const harness = withGamma();
    expect(harness.admin('gamma', { kind: 'bindKey', key: connectorKey('gamma', 1).publicKey })).toBe('OK');
    expect(harness.admin('gamma', registerNodeAction('gamma', 'g1', 'g1.example:1'))).toBe('OK');
    expect(harness.admin('alpha', createTopic('orders', [['n1', 'n2', 'n3', 'g1']]))).toBe('OK');
    expect(harness.admin('sup', setStatus('beta', 'SUSPENDED'))).toBe('OK');
    const index = harness.applied();
    const snapshot = harness.machine.snapshot();

    const fresh = new SystemStateMachine(testGenesis());
    fresh.restore(index, snapshot);
    expect(fresh.latest).toEqual(harness.machine.latest);
    expect(bytesEqual(fresh.snapshot(), snapshot)).toBe(true);
    // Nonces travel with the snapshot: a replay is still refused after a restore.
    const replayed = adminEntry(signedAdmin('sup', setStatus('beta', 'APPROVED')));
    const a = harness.machine.apply(index + 1, replayed);
    const b = fresh.apply(index + 1, replayed);
    expect(outcome(a)).toBe('OK');
    expect(bytesEqual(a, b)).toBe(true);
    expect(outcome(fresh.apply(index + 2, replayed))).toBe(AdminReject.Replay);
  });

  // BUG: restore() keeps a single version (Versions.reset), so at(i) for any i before the snapshot
  // index silently answers with the snapshot's registry. A topic replica that restored __system from
  // a snapshot then authorizes older topic entries (which name such an i) differently from one that
  // replayed the log: the topic groups' state diverges.
  it('after a restore, at(an earlier index) does not answer with a later registry', () => {
    const harness = new SystemHarness();
    const before = harness.applied();
    expect(harness.admin('sup', setStatus('beta', 'SUSPENDED'))).toBe('OK');
    const fresh = new SystemStateMachine(testGenesis());
    fresh.restore(harness.applied(), harness.machine.snapshot());
    expect(statusOf(harness, 'beta', before)).toBe('APPROVED');
    let answer: string | undefined;
    try {
      answer = fresh.at(before).organizations.get('beta')?.status;
    } catch {
      answer = 'refused';
    }
    expect(['APPROVED', 'refused']).toContain(answer);
  });

  // Was a bug: bindKey had no limit while the snapshot schema allowed 64 keys, so the 65th key made
  // snapshot() throw. An organization now binds at most adminLimits.signingKeysMax (16) keys in all.
  it('caps the keys an organization binds, so the registry can always be snapshotted', () => {
    const harness = withGamma();
    for (let n = 1; n <= 15; n++) {
      expect(harness.admin('gamma', { kind: 'bindKey', key: connectorKey('gamma', n).publicKey })).toBe('OK');
    }
    expect(harness.admin('gamma', { kind: 'bindKey', key: connectorKey('gamma', 16).publicKey })).toBe(
      AdminReject.NotAllowed,
    );
    expect(() => harness.machine.snapshot()).not.toThrow();
  });

  // BUG: registerNode accepts addresses up to 300 characters, the snapshot schema only 260 (`name`).
  it('can still snapshot after a node registered a long (valid) address', () => {
    const harness = withGamma();
    const address = `${'h'.repeat(280)}:7000`;
    expect(harness.admin('gamma', registerNodeAction('gamma', 'g1', address))).toBe('OK');
    expect(() => harness.machine.snapshot()).not.toThrow();
  });
});

describe('SystemStateMachine: roles are granted, never taken (issue 11, item 3)', () => {
  it('approving grants member if requested; supervisor and auditor only when the supervisor names them', () => {
    const harness = new SystemHarness();
    expect(harness.admin('evil', register('evil', ['member', 'supervisor']))).toBe('OK');
    expect(harness.admin('sup', setStatus('evil', 'APPROVED'))).toBe('OK');
    expect(harness.machine.latest.organizations.get('evil')!.roles).toEqual(['member']);
    // With only member granted, it decides nothing.
    expect(harness.admin('gamma', register('gamma'))).toBe('OK');
    refuseAdmin(harness, 'evil', setStatus('gamma', 'APPROVED'), AdminReject.NotAllowed);

    expect(harness.admin('aud2', register('aud2', ['auditor']))).toBe('OK');
    expect(
      harness.admin('sup', { ...setStatus('aud2', 'APPROVED'), roles: ['auditor'] } as AdminAction),
    ).toBe('OK');
    expect(harness.machine.latest.organizations.get('aud2')!.roles).toEqual(['auditor']);
  });

  it('keeps granted roles across a suspension and a later approval, and lets a supervisor change them', () => {
    const harness = withGamma();
    expect(harness.admin('sup', setStatus('gamma', 'SUSPENDED'))).toBe('OK');
    expect(harness.admin('sup', setStatus('gamma', 'APPROVED'))).toBe('OK');
    expect(harness.machine.latest.organizations.get('gamma')!.roles).toEqual(['member']);
    expect(
      harness.admin('sup', {
        ...setStatus('gamma', 'APPROVED'),
        roles: ['member', 'auditor'],
      } as AdminAction),
    ).toBe('OK');
    expect(harness.machine.latest.organizations.get('gamma')!.roles).toEqual(['member', 'auditor']);
    // A supervisor cannot grant itself anything either.
    refuseAdmin(
      harness,
      'sup',
      { ...setStatus('sup', 'APPROVED'), roles: ['supervisor', 'auditor'] } as AdminAction,
      AdminReject.NotAllowed,
    );
  });
});

describe('SystemStateMachine: one key, one party (issue 11, item 2)', () => {
  it("refuses a node whose key is an organization's connector key, and an organization key that is a node's", () => {
    const harness = withGamma();
    // The attack: alpha registers a node with beta's connector key, so beta's connector would be
    // taken for a node on every link.
    refuseAdmin(
      harness,
      'alpha',
      registerNodeAction('alpha', 'evil', 'evil.example:1', connectorKey('beta')),
      AdminReject.KeyInUse,
    );
    refuseAdmin(harness, 'gamma', { kind: 'bindKey', key: nodeKey('n1').publicKey }, AdminReject.KeyInUse);
    refuseAdmin(
      harness,
      'delta',
      register('delta', ['member'], [nodeKey('n2').publicKey]),
      AdminReject.KeyInUse,
      { key: nodeKey('n2') },
    );
  });

  it('refuses a node key without its proof of possession (BAD_PROOF)', () => {
    const harness = withGamma();
    // Signed by another key than the one registered.
    refuseAdmin(
      harness,
      'gamma',
      registerNodeAction('gamma', 'g1', 'g1.example:1', nodeKey('g1'), nodeKey('other')),
      AdminReject.BadProof,
    );
    // A proof made for another organization (or id) cannot be lifted into this registration.
    const forBeta = registerNodeAction('beta', 'g1', 'g1.example:1');
    refuseAdmin(harness, 'gamma', forBeta, AdminReject.BadProof);
    refuseAdmin(
      harness,
      'gamma',
      { ...registerNodeAction('gamma', 'g1', 'g1.example:1'), id: 'g2' },
      AdminReject.BadProof,
    );
    expect(harness.admin('gamma', registerNodeAction('gamma', 'g1', 'g1.example:1'))).toBe('OK');
  });

  it('removes a node by its organization or a supervisor, never one that votes or replicates', () => {
    const harness = withGamma();
    expect(harness.admin('gamma', registerNodeAction('gamma', 'g1', 'g1.example:1'))).toBe('OK');
    expect(harness.admin('gamma', registerNodeAction('gamma', 'g2', 'g2.example:1'))).toBe('OK');
    refuseAdmin(harness, 'alpha', { kind: 'removeNode', id: 'g1' }, AdminReject.NotAllowed);
    refuseAdmin(harness, 'gamma', { kind: 'removeNode', id: 'nope' }, AdminReject.NodeUnknown);
    refuseAdmin(harness, 'sup', { kind: 'removeNode', id: 'n1' }, AdminReject.NodeInUse);
    expect(harness.admin('alpha', createTopic('orders', [['n1', 'n2', 'n3', 'g2']]))).toBe('OK');
    refuseAdmin(harness, 'gamma', { kind: 'removeNode', id: 'g2' }, AdminReject.NodeInUse);
    expect(harness.admin('gamma', { kind: 'removeNode', id: 'g1' })).toBe('OK');
    expect(harness.machine.latest.nodes.has('g1')).toBe(false);
    expect(harness.admin('gamma', registerNodeAction('gamma', 'g3', 'g3.example:1'))).toBe('OK');
    expect(harness.admin('sup', { kind: 'removeNode', id: 'g3' })).toBe('OK');
    // Its key is free again once the node is gone.
    expect(harness.admin('gamma', registerNodeAction('gamma', 'g4', 'g4.example:1', nodeKey('g1')))).toBe(
      'OK',
    );
  });
});

describe('SystemStateMachine: quotas (issue 11, item 7)', () => {
  const quotas = {
    topicsPerOrganizationMax: 1,
    nodesPerOrganizationMax: 1,
    pendingRegistrationsMax: 1,
    partitionsPerTopicMax: 2,
  };

  it('lets only a supervisor set quotas, and refuses what exceeds them (QUOTA_EXCEEDED)', () => {
    const harness = withGamma();
    refuseAdmin(harness, 'alpha', { kind: 'setQuotas', quotas }, AdminReject.NotAllowed);
    expect(harness.admin('sup', { kind: 'setQuotas', quotas })).toBe('OK');
    expect(harness.machine.latest.quotas).toEqual(quotas);

    expect(harness.admin('gamma', registerNodeAction('gamma', 'g1', 'g1.example:1'))).toBe('OK');
    refuseAdmin(
      harness,
      'gamma',
      registerNodeAction('gamma', 'g2', 'g2.example:1'),
      AdminReject.QuotaExceeded,
    );

    refuseAdmin(
      harness,
      'alpha',
      createTopic('wide', [
        ['n1', 'n2', 'n3', 'n4'],
        ['n1', 'n2', 'n3', 'n4'],
        ['n1', 'n2', 'n3', 'n4'],
      ]),
      AdminReject.QuotaExceeded,
    );
    expect(harness.admin('alpha', createTopic('one', [['n1', 'n2', 'n3', 'n4']]))).toBe('OK');
    refuseAdmin(harness, 'alpha', createTopic('two', [['n1', 'n2', 'n3', 'n4']]), AdminReject.QuotaExceeded);

    expect(harness.admin('p1', register('p1'))).toBe('OK');
    refuseAdmin(harness, 'p2', register('p2'), AdminReject.QuotaExceeded);
    // Deciding a pending registration frees its place.
    expect(harness.admin('sup', setStatus('p1', 'REVOKED'))).toBe('OK');
    expect(harness.admin('p2', register('p2'))).toBe('OK');
  });

  it('survives a snapshot, and a snapshot from before quotas existed restores the defaults', () => {
    const harness = withGamma();
    expect(harness.admin('sup', { kind: 'setQuotas', quotas })).toBe('OK');
    const fresh = new SystemStateMachine(testGenesis());
    fresh.restore(harness.applied(), harness.machine.snapshot());
    expect(fresh.latest.quotas).toEqual(quotas);
    expect(new SystemStateMachine(testGenesis()).latest.quotas).toEqual(defaultQuotas);
  });

  it('keeps one nonce set for every version, so a transaction adds one entry, not a copy', () => {
    const harness = withGamma();
    const first = harness.machine.latest;
    const before = first.nonces.size;
    for (let n = 1; n <= 5; n++) {
      expect(harness.admin('gamma', { kind: 'bindKey', key: connectorKey('gamma', n).publicKey })).toBe('OK');
    }
    expect(harness.machine.latest.nonces).toBe(first.nonces);
    expect(harness.machine.latest.nonces.size).toBe(before + 5);
  });
});

describe('SystemStateMachine: replay window (issue 18, item 4)', () => {
  const minute = 60_000;
  const hour = 60 * minute;
  const bind = (n: number): AdminAction => ({ kind: 'bindKey', key: connectorKey('gamma', n).publicKey });

  it("refuses a transaction signed over the window before its organization's newest (STALE), a reused nonce inside it (REPLAY)", () => {
    const harness = withGamma();
    const newest = signedAdmin('gamma', bind(1), { timestamp: startTime + 2 * hour });
    expect(harness.submit(adminEntry(newest))).toBe('OK');
    refuseAdmin(harness, 'gamma', bind(2), AdminReject.Stale, {
      timestamp: startTime + 2 * hour - adminClockWindowMs - 1,
    });
    // Inside the window, an older clock is fine: an organization's machines do not share one.
    expect(harness.admin('gamma', bind(2), { timestamp: startTime + 2 * hour - adminClockWindowMs })).toBe(
      'OK',
    );
    expectRefused(harness, adminEntry(newest), AdminReject.Replay);
  });

  it("lets no organization's clock lock out another: the high-water mark is per organization", () => {
    const harness = withGamma();
    const tenYears = 10 * 365 * 24 * hour;
    expect(harness.admin('gamma', bind(1), { timestamp: startTime + tenYears })).toBe('OK');
    // gamma's own transactions now need its future clock, everybody else's do not.
    refuseAdmin(harness, 'gamma', bind(2), AdminReject.Stale, { timestamp: startTime });
    expect(harness.admin('sup', { kind: 'setQuotas', quotas: defaultQuotas }, { timestamp: startTime })).toBe(
      'OK',
    );
    expect(
      harness.admin('alpha', createTopic('alpha-topic', [['n1', 'n2', 'n3', 'n4']]), {
        timestamp: startTime,
      }),
    ).toBe('OK');
  });

  it('holds the nonces of the last window only, however many admin transactions it applies', () => {
    const harness = new SystemHarness();
    const applied = 4_000;
    // One every 10 s for 11 hours: 360 inside any one-hour window.
    for (let n = 0; n < applied; n++) {
      expect(
        harness.admin(
          'sup',
          { kind: 'setQuotas', quotas: defaultQuotas },
          { timestamp: startTime + n * 10_000 },
        ),
      ).toBe('OK');
    }
    const held = harness.machine.latest.nonces.size;
    expect(held).toBeLessThanOrEqual(1_024);
    expect(held).toBeGreaterThanOrEqual(adminClockWindowMs / 10_000);
    const restored = new SystemStateMachine(testGenesis());
    restored.restore(harness.applied(), harness.machine.snapshot());
    expect(restored.latest.nonces.size).toBe(adminClockWindowMs / 10_000 + 1);
  });

  it('refuses an organization past its nonce bound inside one window (QUOTA_EXCEEDED) until older ones leave it', () => {
    const window = new AdminNonceWindow(hour, 3);
    const at = (timestamp: number) => ({ organization: 'gamma', nonce: freshNonce(), timestamp });
    for (const minutes of [0, 1, 2]) {
      const transaction = at(startTime + minutes * minute);
      expect(window.refusal(transaction)).toBeUndefined();
      window.record(transaction);
    }
    expect(window.refusal(at(startTime + 3 * minute))?.reason).toBe(AdminReject.QuotaExceeded);
    // Another organization has a bound of its own.
    expect(window.refusal({ ...at(startTime), organization: 'alpha' })).toBeUndefined();
    // Once gamma's clock moves past the first nonce's window, its place is free again.
    const later = at(startTime + hour + 30 * minute);
    expect(window.refusal(later)).toBeUndefined();
    window.record(later);
    // Recording it moved the mark past every earlier nonce: they were pruned, being stale.
    expect(window.size).toBe(1);
  });

  it('answers the same after a snapshot restore, and a snapshot from before the window still refuses its replays', () => {
    const harness = withGamma();
    const old = signedAdmin('gamma', bind(1), { timestamp: startTime });
    expect(harness.submit(adminEntry(old))).toBe('OK');
    const restored = new SystemStateMachine(testGenesis());
    restored.restore(harness.applied(), harness.machine.snapshot());
    expect(outcome(restored.apply(harness.applied() + 1, adminEntry(old)))).toBe(AdminReject.Replay);

    // The same state written as a snapshot was before the window: `organization:nonce` strings.
    const legacy = decodeCanonical(harness.machine.snapshot()) as Record<string, CborValue>;
    const keys = (legacy['replayWindow'] as { organization: string; nonces: { nonce: string }[] }[]).flatMap(
      (entry) => entry.nonces.map(({ nonce }) => `${entry.organization}:${nonce}`),
    );
    delete legacy['replayWindow'];
    legacy['nonces'] = keys.sort();
    const fromLegacy = new SystemStateMachine(testGenesis());
    fromLegacy.restore(harness.applied(), encodeCanonical(legacy));
    let index = harness.applied();
    expect(outcome(fromLegacy.apply(++index, adminEntry(old)))).toBe(AdminReject.Replay);
    // gamma's next transaction sets its high-water mark; the legacy nonces then fall to the stale check.
    expect(
      outcome(
        fromLegacy.apply(
          ++index,
          adminEntry(signedAdmin('gamma', bind(2), { timestamp: startTime + 2 * hour })),
        ),
      ),
    ).toBe('OK');
    expect(outcome(fromLegacy.apply(index + 1, adminEntry(old)))).toBe(AdminReject.Stale);
  });
});

describe('SystemStateMachine: determinism (property)', () => {
  // Signing is the slow part, so the property draws from entries signed once.
  const pool: Uint8Array[] = [
    adminEntry(signedAdmin('gamma', register('gamma'))),
    adminEntry(signedAdmin('sup', setStatus('gamma', 'APPROVED'))),
    adminEntry(signedAdmin('sup', setStatus('gamma', 'SUSPENDED'))),
    adminEntry(signedAdmin('sup', setStatus('gamma', 'REVOKED'))),
    adminEntry(signedAdmin('gamma', { kind: 'bindKey', key: connectorKey('gamma', 1).publicKey })),
    adminEntry(
      signedAdmin(
        'gamma',
        { kind: 'bindKey', key: connectorKey('gamma', 2).publicKey },
        { key: connectorKey('gamma', 1) },
      ),
    ),
    adminEntry(signedAdmin('gamma', registerNodeAction('gamma', 'g1', 'g1.example:1'))),
    adminEntry(signedAdmin('gamma', createTopic('g-topic', [['n1', 'n2', 'n3', 'g1']]))),
    adminEntry(
      signedAdmin(
        'alpha',
        createTopic('a-topic', [
          ['n1', 'n2', 'n3', 'n4'],
          ['n2', 'n3', 'n4', 'n5'],
        ]),
      ),
    ),
    adminEntry(signedAdmin('sup', setStatus('alpha', 'SUSPENDED'))),
    adminEntry(signedAdmin('sup', setStatus('alpha', 'APPROVED'))),
    adminEntry(signedAdmin('delta', register('delta', ['supervisor']))),
    adminEntry(signedAdmin('sup', setStatus('delta', 'APPROVED'))),
    adminEntry(signedAdmin('delta', setStatus('sup', 'SUSPENDED'))),
    adminEntry(signedAdmin('delta', setStatus('gamma', 'APPROVED'))),
    adminEntry(signedAdmin('beta', registerNodeAction('beta', 'b9', 'b9.example:1'))),
    adminEntry(signedAdmin('beta', { kind: 'setAcl', producers: [], consumers: [] })),
    adminEntry(
      signedAdmin('alpha', { kind: 'bindKey', key: keyFor('k').publicKey }, { group: topicGroupId('t') }),
    ),
    // Clocks apart by more than the replay window: which of these is STALE depends on the order.
    adminEntry(
      signedAdmin(
        'sup',
        { kind: 'setQuotas', quotas: defaultQuotas },
        { timestamp: startTime + 2 * 3_600_000 },
      ),
    ),
    adminEntry(
      signedAdmin(
        'sup',
        { kind: 'setQuotas', quotas: defaultQuotas },
        { timestamp: startTime - 2 * 3_600_000 },
      ),
    ),
    adminEntry(
      signedAdmin(
        'gamma',
        { kind: 'bindKey', key: connectorKey('gamma', 3).publicKey },
        { timestamp: startTime + 3 * 3_600_000 },
      ),
    ),
    new Uint8Array(),
  ];

  const entryArbitrary = fc.oneof(
    { weight: 3, arbitrary: fc.nat(pool.length - 1).map((i) => pool[i]!) },
    {
      weight: 3,
      arbitrary: fc
        .tuple(fc.nat(pool.length - 1), fc.nat(), fc.integer({ min: 1, max: 255 }))
        .map(([i, position, mask]) => {
          const bytes = Uint8Array.from(pool[i]!);
          if (bytes.length > 0) bytes[position % bytes.length] = bytes[position % bytes.length]! ^ mask;
          return bytes;
        }),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.nat(pool.length - 1), fc.nat())
        .map(([i, cut]) => pool[i]!.subarray(0, cut % (pool[i]!.length + 1))),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  );

  it('never throws, and the same entries give the same registry byte for byte, restored from a snapshot or not', () => {
    fc.assert(
      fc.property(fc.array(entryArbitrary, { maxLength: 40 }), fc.nat(40), (entries, restoreAt) => {
        const one = new SystemStateMachine(testGenesis());
        const two = new SystemStateMachine(testGenesis());
        // A replica that installs one's snapshot part-way (its replay window pruned on another schedule).
        const three = new SystemStateMachine(testGenesis());
        const cut = Math.min(restoreAt, entries.length);
        entries.forEach((data, i) => {
          if (i === cut && cut > 0) three.restore(i, one.snapshot());
          const a = one.apply(i + 1, data);
          const b = two.apply(i + 1, data);
          expect(bytesEqual(a, b)).toBe(true);
          if (i >= cut && cut > 0) expect(outcome(three.apply(i + 1, data))).toBe(outcome(a));
          // A result always decodes, whatever the entry was.
          outcome(a);
        });
        expect(bytesEqual(one.snapshot(), two.snapshot())).toBe(true);
      }),
      { numRuns: 150 },
    );
  });
});
