// A share holder's release duty (DESIGN §7) on a real partition (see testing/escrow-chain.ts): it
// releases its key share only to an audit whose block evidences prove it APPROVED, sealed to the
// auditor the evidences prove, whatever its own node's escrow record view says.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { escrowRecordView } from '../../contracts/escrow/queries.js';
import type { AuditView } from '../../contracts/escrow/views.js';
import { openShare, verifyShare } from '../../crypto/escrow/index.js';
import { nodeMethods } from '../../protocol/client-methods.js';
import { parseAs } from '../../protocol/typed-rpc.js';
import type { ConnectorContext } from '../context.js';
import type { NodeSession } from '../session/node-session.js';
import { TransactionSubmitter } from '../session/submitter.js';
import { partsFixture, startNodeStandIn } from '../testing/parts-fixture.js';
import type { NodeStandIn, PartsFixture } from '../testing/parts-fixture.js';
import { AgentDatabase } from './agent-database.js';
import { fetchEscrowRecord } from './escrow-record.js';
import { HolderDatabase } from './holder-database.js';
import { HolderDuties } from './holder-duties.js';
import { EscrowChain, escrowGroup, escrowRegistryView } from './testing/escrow-chain.js';
import type { EscrowedMessage } from './testing/escrow-chain.js';
import { escrowRecordAnswer } from './testing/record-answer.js';
import type { RecordAnswerOptions } from './testing/record-answer.js';

let fixture: PartsFixture;
let sender: ConnectorContext; // org1
let us: ConnectorContext; // org2: share 1
let member: ConnectorContext; // org3
let auditor: ConnectorContext; // org4
let chain: EscrowChain;
let standIn: NodeStandIn;
let session: NodeSession;
let duties: HolderDuties;
let message: EscrowedMessage;
const warnings: Record<string, unknown>[] = [];
/** How the node stand-in shows escrow records: honestly unless a test says otherwise. */
let shown: RecordAnswerOptions = {};

beforeAll(async () => {
  fixture = partsFixture();
  [sender, us, member, auditor] = await Promise.all([
    fixture.context(0),
    fixture.context(1),
    fixture.context(2),
    fixture.context(3),
  ]);
  const view = escrowRegistryView(fixture.layout.network.genesis);
  for (const context of [sender, us, member, auditor]) context.registry.update(view);
  chain = new EscrowChain(fixture, us);
  standIn = await startNodeStandIn(us.organization, {
    ...chain.handlers(),
    escrowRecord: (body) => {
      const { group, id } = parseAs(nodeMethods.escrowRecord.request, body, 'escrowRecord');
      return escrowRecordAnswer(chain, group, id, shown);
    },
  });
  session = fixture.session(us, 1, standIn.node);
  const logger = pino(
    { level: 'warn' },
    { write: (line: string) => warnings.push(JSON.parse(line) as Record<string, unknown>) },
  );
  duties = new HolderDuties({
    ...us,
    logger,
    submitter: new TransactionSubmitter({ ...us, session }),
    agentDatabase: new AgentDatabase(us.database),
    holderDatabase: new HolderDatabase(us.database),
  });
  message = await chain.publishEscrowed(sender, 'm-duties');
  chain.act(auditor, { kind: 'auditRequest', requestId: 'audit-d', id: 'm-duties', reason: 'inquiry' });
});

afterAll(async () => {
  session.close();
  await standIn.close();
  await fixture.close();
});

/** Our node's record of m-duties as `shown`, and asks the duties to release to its one audit. */
async function releaseAsShown(options: RecordAnswerOptions): Promise<boolean> {
  shown = options;
  try {
    const verified = await fetchEscrowRecord(session, us.trust, escrowGroup, 'm-duties');
    return await duties.release(verified, verified.record.audits[0] as AuditView);
  } finally {
    shown = {};
  }
}

function releasesOnChain(): AuditView['releases'] {
  return escrowRecordView(chain.state, escrowGroup, 'm-duties')?.audits[0]?.releases ?? [];
}

/** The views' audits with `change` applied. */
function viewWith(change: (audit: AuditView) => AuditView): RecordAnswerOptions['view'] {
  return (record) => ({ ...record, audits: record.audits.map(change) });
}

describe('HolderDuties.release', () => {
  it('releases nothing while its node says APPROVED but no evidence proves an approval', async () => {
    // PENDING on the chain; the view claims org3 approved.
    const claimed = viewWith((audit) => ({
      ...audit,
      state: 'APPROVED',
      approvals: [{ organization: 'org3', height: audit.height, transactionIndex: 0 }],
    }));
    expect(await releaseAsShown({ view: claimed })).toBe(false);
    expect(warnings.at(-1)).toMatchObject({
      requestId: 'audit-d',
      state: 'PENDING',
      unproven: [expect.stringContaining('approvals[org3]'), expect.stringContaining('state')],
    });
    // Approved on the chain, but the node withholds the approval's evidence.
    chain.act(member, { kind: 'auditApprove', requestId: 'audit-d' });
    const approval = chain.blocks.length;
    expect(await releaseAsShown({ hide: (position) => position.height === approval })).toBe(false);
    // Nor when it cannot even prove the request.
    expect(await releaseAsShown({ hide: () => true })).toBe(false);
    expect(warnings.at(-1)).toMatchObject({
      requestId: 'audit-d',
      error: expect.stringContaining('BAD_PROOF'),
    });
    expect(releasesOnChain()).toEqual([]);
  });

  it('seals its share to the proven auditor, not the one its node names, once the approval is proven', async () => {
    expect(await releaseAsShown({ view: viewWith((audit) => ({ ...audit, auditor: 'org3' })) })).toBe(true);
    const [release] = releasesOnChain();
    expect(release?.holder).toBe('org2');
    const value = await openShare(release?.share as never, auditor.encryptionKey, {
      network: auditor.registry.network,
      sender: 'org1',
      id: 'm-duties',
      holder: 'org2',
      purpose: 'release',
      requestId: 'audit-d',
    });
    expect(verifyShare(message.escrow.commitments, { index: 1, value })).toBe(true);
    // Released once: the proven release (and our table) stop a second one.
    expect(await releaseAsShown({})).toBe(false);
    expect(releasesOnChain()).toHaveLength(1);
  });
});
