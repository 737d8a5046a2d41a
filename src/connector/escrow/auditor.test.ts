// The auditor side of escrow (DESIGN §7, issue 14) on a real partition: the SDT and escrow contracts
// execute every transaction, replicas certify every block, holders' real ChunkHolders serve the
// chunks, and the auditor's connector parts talk to a node stand-in over TLS. Crypto is real
// throughout: Feldman shares, HPKE share boxes, the master table, the payload envelope.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesEqual } from '../../codec/index.js';
import { escrowRecordView } from '../../contracts/escrow/queries.js';
import type { AuditView } from '../../contracts/escrow/views.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { AuditNetwork, group } from './testing/audit-network.js';
import type { SentEscrow } from './testing/audit-network.js';
import type { Auditor } from './auditor.js';
import type { AgentDatabase } from './agent-database.js';

let net: AuditNetwork;
let inspector: { auditor: Auditor; agent: AgentDatabase };
let bob: { auditor: Auditor; agent: AgentDatabase };

beforeAll(async () => {
  net = new AuditNetwork();
  await net.start();
  inspector = await net.auditor('inspector');
  bob = await net.auditor('bob');
}, 60_000);

afterAll(async () => {
  await net?.close();
});

async function failure(promise: Promise<unknown>): Promise<LedgerbusError> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(LedgerbusError);
  return error as LedgerbusError;
}

function auditOnChain(id: string, requestId: string): AuditView {
  const audit = escrowRecordView(net.chain.state, group, id)?.audits.find(
    (entry) => entry.requestId === requestId,
  );
  expect(audit).toBeDefined();
  return audit as AuditView;
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Sends `id`, has the inspector request an audit of it and bob approve it. */
async function approvedAudit(id: string, bytes: number): Promise<{ sent: SentEscrow; requestId: string }> {
  const sent = await net.send(id, randomBytes(bytes));
  net.follow(inspector.agent, id);
  const { requestId, state } = await inspector.auditor.request(id, 'routine inspection');
  expect(state).toBe('PENDING');
  net.follow(bob.agent, id);
  const approved = await bob.auditor.approve(requestId);
  expect(approved).toEqual({ requestId, state: 'APPROVED', approvals: 1, approvalsNeeded: 1 });
  return { sent, requestId };
}

describe('Auditor', () => {
  it('refuses a non-auditor before sending anything, and turns the contract’s NOT_AUDITOR into FORBIDDEN', async () => {
    const { id } = await net.send('m-forbidden', randomBytes(5_000));
    const member = await net.auditor('h1');
    net.follow(member.agent, id);
    const height = net.chain.blocks.length;
    const refused = await failure(member.auditor.request(id, 'curious'));
    expect(refused.code).toBe(ErrorCode.Forbidden);
    expect(net.chain.blocks.length).toBe(height);

    // A connector whose registry wrongly shows h1 as an auditor sends; the contract refuses.
    const stale = await net.auditor('h1', { registry: net.staleRegistry(['h1']) });
    net.follow(stale.agent, id);
    const contract = await failure(stale.auditor.request(id, 'curious'));
    expect(contract.code).toBe(ErrorCode.Forbidden);
    expect(contract.details?.reason).toBe('NOT_AUDITOR');
    expect(net.chain.blocks.length).toBe(height + 1);
  });

  it('answers FORBIDDEN to a fetch without an audit, AUDIT_NOT_APPROVED while pending, and FORBIDDEN to an ineligible approver', async () => {
    const { id } = await net.send('m-pending', randomBytes(5_000));
    net.follow(inspector.agent, id);
    expect((await failure(inspector.auditor.fetch(id))).code).toBe(ErrorCode.Forbidden);
    const { requestId } = await inspector.auditor.request(id, 'routine inspection');
    const early = await failure(inspector.auditor.fetch(id));
    expect(early.code).toBe(ErrorCode.AuditNotApproved);
    expect(early.retriable).toBe(true);
    // The auditor may not approve its own request.
    net.follow(inspector.agent, id);
    const own = await failure(inspector.auditor.approve(requestId));
    expect(own.code).toBe(ErrorCode.Forbidden);
    expect(own.details?.reason).toBe('APPROVER_NOT_ELIGIBLE');
    expect(auditOnChain(id, requestId).state).toBe('PENDING');
  });

  it('rebuilds the message without its owner: a bad share named and skipped, a lying holder recorded, an unreachable one passed over', async () => {
    const { sent, requestId } = await approvedAudit('m-main', 30_000);
    expect((await net.release(sent, 'h1', requestId)).status).toBe('OK');
    expect((await net.release(sent, 'h2', requestId, { forged: true })).status).toBe('OK');
    expect((await net.release(sent, 'h3', requestId)).status).toBe('OK');
    // Chunk 0's first holder serves other bytes, its second is unreachable: its third serves it.
    const [liar, unreachable] = sent.perChunk[0] as [string, string, string];
    net.faults.set(liar, 'lie');
    net.faults.set(unreachable, 'down');
    try {
      const result = await inspector.auditor.fetch(sent.id);
      expect(result).toMatchObject({
        id: sent.id,
        requestId,
        size: sent.plaintext.length,
        sha256: sha256Hex(sent.plaintext),
        chunks: sent.escrow.chunkCount,
        badShares: ['h2'],
        badHolders: [liar],
      });
      const { stream } = await inspector.auditor.payload(sent.id);
      const rebuilt = Buffer.concat(await stream.toArray());
      expect(bytesEqual(rebuilt, sent.plaintext)).toBe(true);

      const audit = auditOnChain(sent.id, requestId);
      expect(audit.state).toBe('CLOSED');
      expect(audit.outcome).toMatchObject({
        outcome: 'RETRIEVED',
        badShares: ['h2'],
        badHolders: [liar],
        detail: '',
      });
      const accepted = escrowRecordView(net.chain.state, group, sent.id);
      expect(accepted?.audits).toHaveLength(1);

      // Asked again, it answers from what it stored, submitting nothing.
      const height = net.chain.blocks.length;
      expect(await inspector.auditor.fetch(sent.id)).toEqual(result);
      expect(net.chain.blocks.length).toBe(height);

      net.follow(inspector.agent, sent.id);
      expect(inspector.auditor.list().find((entry) => entry.requestId === requestId)).toMatchObject({
        id: sent.id,
        group,
        auditor: 'inspector',
        state: 'CLOSED',
        approvals: [{ organization: 'bob' }],
        releases: [{ holder: 'h1' }, { holder: 'h2' }, { holder: 'h3' }],
        outcome: { outcome: 'RETRIEVED', badShares: ['h2'] },
      });
    } finally {
      net.faults.clear();
    }
  });

  it('fails retriably with fewer than k good shares while releases are missing, and records FAILED once none can come', async () => {
    const { sent, requestId } = await approvedAudit('m-few', 6_000);
    await net.release(sent, 'h1', requestId);
    const waiting = await failure(inspector.auditor.fetch(sent.id));
    expect(waiting.code).toBe(ErrorCode.AuditFailed);
    expect(waiting.retriable).toBe(true);
    expect(waiting.message).toMatch(/1 valid key shares of the 2 needed.*waiting for h2, h3/);
    expect(auditOnChain(sent.id, requestId).state).toBe('APPROVED');

    await net.release(sent, 'h2', requestId, { forged: true });
    await net.release(sent, 'h3', requestId, { forged: true });
    const final = await failure(inspector.auditor.fetch(sent.id));
    expect(final.code).toBe(ErrorCode.AuditFailed);
    expect(final.retriable).toBe(false);
    expect(final.message).toMatch(/bad shares from h2, h3/);
    expect(auditOnChain(sent.id, requestId).outcome).toMatchObject({
      outcome: 'FAILED',
      badShares: ['h2', 'h3'],
    });
    const closed = await failure(inspector.auditor.fetch(sent.id));
    expect(closed.code).toBe(ErrorCode.AuditFailed);
    expect(closed.retriable).toBe(false);
  });

  it('names the chunk no holder served and stays open while a holder was unreachable; skips a release it cannot prove', async () => {
    const { sent, requestId } = await approvedAudit('m-chunks', 6_000);
    await net.release(sent, 'h1', requestId);
    await net.release(sent, 'h3', requestId);

    for (const holder of sent.perChunk[0] ?? []) net.faults.set(holder, 'down');
    const unreachable = await failure(inspector.auditor.fetch(sent.id));
    net.faults.clear();
    expect(unreachable.code).toBe(ErrorCode.AuditFailed);
    expect(unreachable.retriable).toBe(true);
    expect(unreachable.message).toMatch(/no holder served chunk 0 of m-chunks/);
    expect(auditOnChain(sent.id, requestId).state).toBe('APPROVED');

    // The node hands over a release whose certificate is short: skipped, h1 not blamed.
    net.spoiledEvidence.add('h1');
    const unproven = await failure(inspector.auditor.fetch(sent.id));
    net.spoiledEvidence.clear();
    expect(unproven.code).toBe(ErrorCode.AuditFailed);
    expect(unproven.retriable).toBe(true);
    expect(unproven.message).toMatch(/unproven releases from h1/);
    expect(unproven.message).not.toMatch(/bad shares/);

    const result = await inspector.auditor.fetch(sent.id);
    expect(result).toMatchObject({ sha256: sha256Hex(sent.plaintext), badShares: [], badHolders: [] });
    expect(auditOnChain(sent.id, requestId).outcome?.outcome).toBe('RETRIEVED');
  });

  it('reports placement and whether holders’ attestations make the message retrievable', async () => {
    const sent = await net.send('m-status', randomBytes(12_000));
    net.follow(inspector.agent, sent.id);
    const before = await inspector.auditor.status(sent.id);
    expect(before).toMatchObject({
      id: sent.id,
      group,
      sender: 'alice',
      status: 'PENDING',
      threshold: 2,
      shares: [
        { holder: 'h1', index: 1, attested: null },
        { holder: 'h2', index: 2, attested: null },
        { holder: 'h3', index: 3, attested: null },
      ],
      placement: { chunks: sent.escrow.chunkCount, replicas: 3, allDistinct: true, ownerHolds: false },
      retrievable: false,
    });
    expect(before.placement.perChunk).toEqual(sent.perChunk);
    expect(before.why).toMatch(/0 of the 2 share holders/);

    const placed = (holder: string): number =>
      sent.perChunk.filter((holders) => holders.includes(holder)).length;
    for (const holder of ['h1', 'h2', 'h3', 'h4'] as const) {
      if (placed(holder) === 0 && holder === 'h4') continue;
      const result = net.escrowAction(holder, {
        kind: 'attest',
        attestations: [
          { id: sent.id, share: holder === 'h4' ? 'NONE' : 'VERIFIED', chunksHeld: placed(holder) },
        ],
      });
      expect(result.status).toBe('OK');
    }
    const after = await inspector.auditor.status(sent.id);
    expect(after).toMatchObject({ status: 'VERIFIED', retrievable: true });
    expect(after.why).toBeUndefined();
    expect(after.shares.map((share) => share.attested)).toEqual(['VERIFIED', 'VERIFIED', 'VERIFIED']);
  });
});
