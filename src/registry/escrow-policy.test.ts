// An escrow topic policy (DESIGN §7, issue 14 item 1) through the registry: the encoding keeps every
// standard policy byte-identical, both state machines refuse a bad escrow policy as BAD_POLICY and
// keep a good one across snapshots, genesis may carry one, and the bounds the CLI and the REST schema
// name agree with validateTopicPolicy at every edge.
import { describe, expect, it } from 'vitest';
import { bytesEqual, encodeCanonical, encodeWith } from '../codec/index.js';
import { validateTopicPolicy } from '../contracts/registry.js';
import type { EscrowPolicy, TopicPolicy } from '../contracts/registry.js';
import { isLedgerbusError } from '../errors.js';
import { AdminReject, decodeRegistryResult, policySchema } from './admin-transactions.js';
import type { AdminAction } from './admin-transactions.js';
import { DEFAULT_ESCROW_POLICY, escrowPolicyBounds } from './assignment.js';
import { GenesisRegistry, parseGenesis } from './genesis.js';
import { RegistryView, genesisTopicEntries } from './registry-view.js';
import { SystemStateMachine } from './system-state.js';
import { TopicStateMachine } from './topic-state.js';
import {
  MemorySink,
  SystemHarness,
  adminEntry,
  createOrders,
  policy,
  signedAdmin,
  testGenesis,
} from './testing/fixtures.js';

const escrowPolicy: TopicPolicy = {
  ...policy,
  availability: 'escrow',
  escrow: { chunkBytes: 64 * 1024, replicas: 2, threshold: 2, shares: 3, auditApprovals: 1 },
};

function withEscrow(escrow: Partial<EscrowPolicy>): TopicPolicy {
  return { ...escrowPolicy, escrow: { ...DEFAULT_ESCROW_POLICY, ...escrow } };
}

/** Escrow policies the registry must refuse, each with the field its refusal names. */
const badPolicies: { what: string; policy: TopicPolicy; field: string }[] = [
  { what: 'threshold above shares', policy: withEscrow({ threshold: 4, shares: 3 }), field: 'threshold' },
  { what: 'threshold 0', policy: withEscrow({ threshold: 0 }), field: 'threshold' },
  { what: '17 shares', policy: withEscrow({ shares: 17, threshold: 2 }), field: 'shares' },
  { what: '0 replicas', policy: withEscrow({ replicas: 0 }), field: 'replicas' },
  { what: '17 replicas', policy: withEscrow({ replicas: 17 }), field: 'replicas' },
  { what: '1 KiB chunks', policy: withEscrow({ chunkBytes: 1024 }), field: 'chunkBytes' },
  { what: '16 MiB chunks', policy: withEscrow({ chunkBytes: 16 * 1024 * 1024 }), field: 'chunkBytes' },
  { what: '65 audit approvals', policy: withEscrow({ auditApprovals: 65 }), field: 'auditApprovals' },
  {
    what: 'escrow without availability',
    policy: { ...policy, escrow: DEFAULT_ESCROW_POLICY },
    field: 'escrow',
  },
  { what: 'availability without escrow', policy: { ...policy, availability: 'escrow' }, field: 'escrow' },
];

function createWith(name: string, topicPolicy: TopicPolicy): AdminAction {
  return { ...createOrders(), name, policy: topicPolicy } as AdminAction;
}

/** The topic group of `name`, fed at consecutive indexes; returns the reason code of each entry. */
function topicGroup(system: SystemHarness, name: string) {
  const machine = new TopicStateMachine(
    system.machine.latest.topics.get(name)!,
    system.reader,
    new MemorySink(),
  );
  let index = 0;
  return {
    machine,
    setPolicy(organization: string, topicPolicy: TopicPolicy): { reason: string; detail?: string } {
      const transaction = signedAdmin(
        organization,
        { kind: 'setPolicy', policy: topicPolicy },
        { group: machine.groupId },
      );
      const result = decodeRegistryResult(machine.apply(++index, adminEntry(transaction, system.applied())));
      return result.status === 'OK'
        ? { reason: 'OK' }
        : { reason: result.reason, ...(result.detail === undefined ? {} : { detail: result.detail }) };
    },
  };
}

describe('the escrow topic policy in the registry', () => {
  it('encodes a standard policy exactly as before escrow existed, with no availability field', () => {
    // What every createTopic/setPolicy and snapshot held before issue 14: three fields.
    expect(bytesEqual(encodeWith(policySchema, policy), encodeCanonical({ ...policy }))).toBe(true);
    expect(Object.keys(policySchema.parse(policy, ''))).toEqual(Object.keys(policy));
    // An escrow policy round-trips whole.
    const bytes = encodeWith(policySchema, escrowPolicy);
    expect(policySchema.parse(escrowPolicy, '')).toEqual(escrowPolicy);
    expect(bytes.length).toBeGreaterThan(encodeWith(policySchema, policy).length);
  });

  it('creates an escrow topic through a signed createTopic and keeps it across a snapshot', () => {
    const harness = new SystemHarness();
    expect(harness.admin('alpha', createWith('audited', escrowPolicy))).toBe('OK');
    expect(harness.machine.latest.topics.get('audited')?.config.policy).toEqual(escrowPolicy);
    const restored = new SystemStateMachine(testGenesis());
    restored.restore(harness.applied(), harness.machine.snapshot());
    expect(restored.latest.topics.get('audited')?.config.policy).toEqual(escrowPolicy);
    // And the connector's copy of the registry (a RegistryView snapshot) carries it too.
    const latest = harness.machine.latest;
    const view = RegistryView.decode(new RegistryView(latest, genesisTopicEntries(latest)).encode());
    expect(view.topic('audited')?.policy).toEqual(escrowPolicy);
  });

  for (const { what, policy: bad, field } of badPolicies) {
    it(`refuses a createTopic with ${what} as BAD_POLICY naming ${field}, changing nothing`, () => {
      const harness = new SystemHarness();
      const before = harness.machine.snapshot();
      const result = decodeRegistryResult(
        harness.machine.apply(harness.applied() + 1, adminEntry(signedAdmin('alpha', createWith('x', bad)))),
      );
      expect(result).toMatchObject({ status: 'REJECTED', reason: AdminReject.BadPolicy });
      expect(result.status === 'REJECTED' ? result.detail : '').toContain(field);
      expect(bytesEqual(harness.machine.snapshot(), before)).toBe(true);
    });
  }

  it('turns escrow on and off with setPolicy in the topic group, and refuses a bad one as BAD_POLICY', () => {
    const system = new SystemHarness();
    expect(system.admin('alpha', createOrders())).toBe('OK');
    const group = topicGroup(system, 'orders');
    expect(group.setPolicy('alpha', escrowPolicy)).toEqual({ reason: 'OK' });
    expect(group.machine.latest.config.policy).toEqual(escrowPolicy);
    for (const { policy: bad, field } of badPolicies) {
      const refused = group.setPolicy('alpha', bad);
      expect(refused.reason).toBe(AdminReject.BadPolicy);
      expect(refused.detail).toContain(field);
      expect(group.machine.latest.config.policy).toEqual(escrowPolicy);
    }
    expect(group.setPolicy('alpha', policy)).toEqual({ reason: 'OK' });
    expect(group.machine.latest.config.policy).toEqual(policy);
    // The group's snapshot keeps an escrow policy as well.
    expect(group.setPolicy('alpha', escrowPolicy)).toEqual({ reason: 'OK' });
    const restored = topicGroup(system, 'orders');
    restored.machine.restore(group.machine.latest.index, group.machine.snapshot());
    expect(restored.machine.latest.config.policy).toEqual(escrowPolicy);
  });

  it('accepts a genesis topic with an escrow policy, and refuses a bad one as BAD_CONFIG naming it', () => {
    const genesis = testGenesis();
    const withPolicy = (topicPolicy: TopicPolicy): unknown => ({
      ...genesis,
      topics: [{ ...genesis.topics[0]!, policy: topicPolicy }],
    });
    const registry = new GenesisRegistry(parseGenesis(withPolicy(escrowPolicy)));
    expect(registry.topic('t')?.policy).toEqual(escrowPolicy);
    let refusal = '';
    try {
      parseGenesis(withPolicy(withEscrow({ threshold: 5, shares: 4 })));
    } catch (error) {
      if (!isLedgerbusError(error)) throw error;
      refusal = `${error.code} ${error.message}`;
    }
    expect(refusal).toMatch(/^BAD_CONFIG genesis: topics\[0\]\.policy: .*policy\.escrow\.threshold/);
  });

  it('names the bounds validateTopicPolicy enforces, edge for edge', () => {
    for (const [field, { min, max }] of Object.entries(escrowPolicyBounds)) {
      const key = field as keyof EscrowPolicy;
      // threshold's upper edge is the shares, so let the shares be as large as allowed.
      const at = (value: number): TopicPolicy =>
        withEscrow({ shares: escrowPolicyBounds.shares.max, threshold: 1, [key]: value });
      expect(() => validateTopicPolicy(at(min)), `${field} ${min}`).not.toThrow();
      expect(() => validateTopicPolicy(at(max)), `${field} ${max}`).not.toThrow();
      expect(() => validateTopicPolicy(at(min - 1)), `${field} ${min - 1}`).toThrow(field);
      expect(() => validateTopicPolicy(at(max + 1)), `${field} ${max + 1}`).toThrow(field);
    }
    expect(() =>
      validateTopicPolicy({ ...policy, availability: 'escrow', escrow: DEFAULT_ESCROW_POLICY }),
    ).not.toThrow();
  });
});
