import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CborValue } from '../codec/index.js';
import { ErrorCode } from '../errors.js';
import { ConnectorAdmin } from './admin.js';
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

beforeAll(async () => {
  fixture = partsFixture();
  context = await fixture.context(0);
  standIn = await startNodeStandIn(context.organization, {
    registry: () => registryAnswer(),
    admin: () => adminAnswer,
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
