import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CborValue } from '../codec/index.js';
import { bytesEqual, decodeWith, encodeCanonical, encodeWith } from '../codec/index.js';
import type { TopicPolicy } from '../contracts/registry.js';
import { ErrorCode } from '../errors.js';
import { adminTransactionSchema, policySchema } from '../registry/admin-transactions.js';
import type { AdminAction } from '../registry/admin-transactions.js';
import { DEFAULT_ESCROW_POLICY, DEFAULT_TOPIC_POLICY } from '../registry/assignment.js';
import { parseGenesis } from '../registry/genesis.js';
import { RegistryView } from '../registry/registry-view.js';
import { ConnectorAdmin, resolveTopicPolicy } from './admin.js';
import type { ConnectorContext } from './context.js';
import { partsFixture, startNodeStandIn } from './testing/parts-fixture.js';
import type { NodeStandIn, PartsFixture } from './testing/parts-fixture.js';
import { refusal } from '../testing/refusal.js';

let fixture: PartsFixture;
let context: ConnectorContext;
let standIn: NodeStandIn;
let admin: ConnectorAdmin;
/** What the stand-in node answers to `registry` and `admin` (each test sets them). */
let registryAnswer: () => CborValue;
let adminAnswer: CborValue;
/** The admin transactions the stand-in node received, in order. */
const submitted: Uint8Array[] = [];
const submittedActions = (): AdminAction[] =>
  submitted.map((bytes) => decodeWith(adminTransactionSchema, bytes).action);

beforeAll(async () => {
  fixture = partsFixture();
  context = await fixture.context(0);
  standIn = await startNodeStandIn(context.organization, {
    registry: () => registryAnswer(),
    admin: (body) => {
      submitted.push((body as { transaction: Uint8Array }).transaction);
      return adminAnswer;
    },
  });
  const session = fixture.session(context, 0, standIn.node);
  admin = new ConnectorAdmin({
    organization: context.organization,
    signer: context.signer,
    registry: context.registry,
    node: session,
  });
});

afterAll(async () => {
  await standIn.close();
  await fixture.close();
});

/** A registry answer as the node's registry service gives it: topic demo led by node2, one head. */
function registryReply(): Record<string, CborValue> {
  return {
    registry: context.registry.current.encode(),
    groups: [
      { group: '__system', leader: 'node1', applied: 4 },
      { group: 'topic:demo', leader: 'node2', applied: 2, held: 0 },
    ],
    globalHeads: [{ topic: 'demo', heads: { 'demo/0': 7 } }],
  };
}

describe('ConnectorAdmin over the typed registry and admin methods', () => {
  it("reads the node's registry answer: the topic group's leader and the global-ledger heads", async () => {
    registryAnswer = registryReply;
    const topic = await admin.describeTopic('demo');
    expect(topic.raft.leader).toBe('node2');
    expect(topic.partitions[0]).toMatchObject({ group: 'demo/0', globalHeight: 7 });
  });

  it('refuses a registry answer of the wrong shape as SCHEMA_MISMATCH naming the field', async () => {
    registryAnswer = () => ({ ...registryReply(), groups: [{ group: 'topic:demo', applied: 2 }] });
    const error = await refusal(admin.sync());
    expect(error.code).toBe(ErrorCode.SchemaMismatch);
    expect(error.message).toContain('registry answer: groups[0].leader');
  });

  it("gives a rejected admin transaction's reason code as details.reason, the text unchanged", async () => {
    registryAnswer = registryReply;
    adminAnswer = {
      index: 5,
      group: '__system',
      result: { status: 'REJECTED', reason: 'ALREADY_EXISTS', detail: 'topic demo exists' },
    };
    const error = await refusal(admin.submit(new Uint8Array([1])));
    expect(error).toMatchObject({
      code: ErrorCode.AdminRejected,
      message: 'ALREADY_EXISTS: topic demo exists',
      details: { reason: 'ALREADY_EXISTS' },
    });
    adminAnswer = { index: 6, group: 'topic:demo', result: { status: 'OK', detail: 'done' } };
    expect(await admin.submit(new Uint8Array([1]))).toEqual({
      group: 'topic:demo',
      index: 6,
      status: 'OK',
      detail: 'done',
    });
  });
});

const escrowPolicy: TopicPolicy = {
  ...DEFAULT_TOPIC_POLICY,
  availability: 'escrow',
  escrow: { chunkBytes: 65_536, replicas: 2, threshold: 3, shares: 5, auditApprovals: 2 },
};

/** The devnet registry with topic `audited`, an escrow topic, beside `demo`. */
function escrowRegistryReply(): Record<string, CborValue> {
  const genesis = fixture.layout.network.genesis;
  const audited = { ...genesis.topics[0]!, name: 'audited', policy: escrowPolicy };
  const registry = RegistryView.fromGenesis(
    parseGenesis({ ...genesis, topics: [...genesis.topics, audited] }),
  );
  return { ...registryReply(), registry: registry.encode() };
}

describe('topic policies: defaults, escrow, and checks before signing (issue 14 item 1)', () => {
  it('fills a standard policy from the defaults and never writes availability into it', () => {
    const resolved = resolveTopicPolicy(DEFAULT_TOPIC_POLICY, { ttlMs: 5 });
    expect(resolved).toEqual({ ...DEFAULT_TOPIC_POLICY, ttlMs: 5 });
    expect(Object.keys(resolved)).not.toContain('availability');
    // availability 'standard' said out loud encodes as the pre-escrow three fields too.
    const said = resolveTopicPolicy(DEFAULT_TOPIC_POLICY, { availability: 'standard' });
    const { messageBytesMax, ttlMs, payloadRetentionMs } = DEFAULT_TOPIC_POLICY;
    const threeFields = encodeCanonical({ messageBytesMax, ttlMs, payloadRetentionMs });
    expect(bytesEqual(encodeWith(policySchema, said), threeFields)).toBe(true);
  });

  it('fills escrow parameters from the topic, else the defaults, and drops them when escrow is turned off', () => {
    expect(resolveTopicPolicy(DEFAULT_TOPIC_POLICY, { availability: 'escrow' })).toEqual({
      ...DEFAULT_TOPIC_POLICY,
      availability: 'escrow',
      escrow: { chunkBytes: 1024 * 1024, replicas: 3, threshold: 2, shares: 3, auditApprovals: 1 },
    });
    expect(resolveTopicPolicy(escrowPolicy, { escrow: { threshold: 4 } }).escrow).toEqual({
      ...escrowPolicy.escrow,
      threshold: 4,
    });
    const off = resolveTopicPolicy(escrowPolicy, { availability: 'standard' });
    expect(off).toEqual(DEFAULT_TOPIC_POLICY);
    expect(Object.keys(off)).not.toContain('escrow');
    // Only the five known fields are taken from the input, whatever else it carries.
    const extra = { threshold: 1, surprise: 7 } as unknown as { threshold: number };
    expect(resolveTopicPolicy(escrowPolicy, { escrow: extra }).escrow).toEqual({
      ...escrowPolicy.escrow,
      threshold: 1,
    });
  });

  it('refuses a bad escrow policy as BAD_CONFIG naming the field, before signing anything', async () => {
    registryAnswer = registryReply;
    adminAnswer = { index: 9, group: '__system', result: { status: 'OK' } };
    submitted.length = 0;
    const cases: { policy: Parameters<typeof resolveTopicPolicy>[1]; says: string }[] = [
      {
        policy: { availability: 'escrow', escrow: { threshold: 4 } },
        says: 'policy.escrow.threshold is out of range: 4 given, allowed 1 to shares (3)',
      },
      {
        policy: { availability: 'escrow', escrow: { shares: 17 } },
        says: 'policy.escrow.shares is out of range: 17 given, allowed 1 to 16',
      },
      { policy: { availability: 'escrow', escrow: { chunkBytes: 100 } }, says: 'policy.escrow.chunkBytes' },
      { policy: { availability: 'escrow', escrow: { replicas: 0 } }, says: 'policy.escrow.replicas' },
      { policy: { escrow: { threshold: 2 } }, says: 'policy.escrow applies to escrow topics only' },
    ];
    for (const { policy, says } of cases) {
      const error = await refusal(
        admin.admin({ kind: 'createTopic', name: 'x', partitions: 1, producers: [], consumers: [], policy }),
      );
      expect(error.code).toBe(ErrorCode.BadConfig);
      expect(error.message).toContain(says);
    }
    expect(submitted).toEqual([]);
  });

  it("signs a createTopic with the escrow defaults filled in, and a setPolicy that keeps the topic's parameters", async () => {
    registryAnswer = escrowRegistryReply;
    adminAnswer = { index: 10, group: '__system', result: { status: 'OK' } };
    submitted.length = 0;
    await admin.admin({
      kind: 'createTopic',
      name: 'fresh',
      partitions: 1,
      producers: [],
      consumers: [],
      policy: { availability: 'escrow', escrow: { shares: 5 } },
    });
    await admin.admin({ kind: 'createTopic', name: 'plain', partitions: 1, producers: [], consumers: [] });
    await admin.admin({ kind: 'setPolicy', topic: 'audited', policy: { escrow: { auditApprovals: 0 } } });
    expect(submittedActions().map((action) => ('policy' in action ? action.policy : undefined))).toEqual([
      { ...DEFAULT_TOPIC_POLICY, availability: 'escrow', escrow: { ...DEFAULT_ESCROW_POLICY, shares: 5 } },
      DEFAULT_TOPIC_POLICY,
      { ...escrowPolicy, escrow: { ...escrowPolicy.escrow, auditApprovals: 0 } },
    ]);
  });

  it('describes availability for every topic and the escrow parameters for escrow topics only', async () => {
    registryAnswer = escrowRegistryReply;
    const demo = await admin.describeTopic('demo');
    expect(demo.policy.availability).toBe('standard');
    expect(Object.keys(demo.policy)).not.toContain('escrow');
    const audited = await admin.describeTopic('audited');
    expect(audited.policy).toEqual(escrowPolicy);
  });
});
