import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escrowRecordView } from '../../contracts/escrow/queries.js';
import { openShare, sealShare, splitSecret, verifyShare } from '../../crypto/escrow/index.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { ConnectorContext } from '../context.js';
import type { NodeSession } from '../session/node-session.js';
import { TransactionSubmitter } from '../session/submitter.js';
import { partsFixture, settleWithClock, startNodeStandIn } from '../testing/parts-fixture.js';
import type { NodeStandIn, PartsFixture } from '../testing/parts-fixture.js';
import { encodeChunkPutRequest } from '../../contracts/escrow/chunk-requests.js';
import { nonceBytes } from '../../contracts/limits.js';
import { sha256 } from '../../crypto/index.js';
import { ChunkHolder } from './chunk-holder.js';
import { EscrowAgent } from './escrow-agent.js';
import { EscrowChain, escrowGroup, escrowRegistryView } from './testing/escrow-chain.js';
import type { EscrowedMessage } from './testing/escrow-chain.js';

let fixture: PartsFixture;
let sender: ConnectorContext; // org1
let us: ConnectorContext; // org2: the agent under test, share 1, chunk 0
let member: ConnectorContext; // org3
let auditor: ConnectorContext; // org4
let chain: EscrowChain;
let standIn: NodeStandIn;
let session: NodeSession;
let agent: EscrowAgent;
let holder: ChunkHolder;
const warnings: Record<string, unknown>[] = [];

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
  standIn = await startNodeStandIn(us.organization, chain.handlers());
  session = fixture.session(us, 1, standIn.node);
  const logger = pino(
    { level: 'warn' },
    { write: (line: string) => warnings.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const submitter = new TransactionSubmitter({ ...us, session });
  agent = new EscrowAgent({ ...us, logger, session, submitter });
  holder = new ChunkHolder({ ...us, session });
});

afterAll(async () => {
  session.close();
  await standIn.close();
  await fixture.close();
});

/** Places chunk `chunkIndex` of `message` on org2, as its sender does before publishing. */
async function placeOnUs(message: EscrowedMessage, chunkIndex: number): Promise<void> {
  const chunk = message.chunks[chunkIndex] as Uint8Array;
  const request = encodeChunkPutRequest(
    {
      requester: 'org1',
      holder: 'org2',
      group: escrowGroup,
      id: message.id,
      chunkIndex,
      chunkHash: sha256(chunk),
      chunkSize: chunk.length,
      nonce: new Uint8Array(randomBytes(nonceBytes)),
      timestamp: fixture.clock.now(),
    },
    sender.signer,
  );
  await holder.put({ request, chunk });
}

/** The escrow transactions of `kind` org2 submitted, whatever the partition made of them. */
function ourActions(kind: string): number {
  return chain.executed.filter(
    ({ organization, operation }) =>
      organization === 'org2' && operation.type === 'escrow' && operation.action.kind === kind,
  ).length;
}

/** Rounds until the agent has read the whole log. */
async function catchUp(): Promise<void> {
  while ((await agent.round(escrowGroup)) > 0);
}

function record(id: string): NonNullable<ReturnType<typeof escrowRecordView>> {
  return escrowRecordView(chain.state, escrowGroup, id) as NonNullable<ReturnType<typeof escrowRecordView>>;
}

describe('EscrowAgent: attestations', () => {
  it('verifies its share and counts its chunks of a registered message, and attests VERIFIED once', async () => {
    const message = await chain.publishEscrowed(sender, 'm-good');
    await placeOnUs(message, 0);
    await catchUp();
    expect(record('m-good').attestations).toEqual([
      expect.objectContaining({ organization: 'org2', share: 'VERIFIED', chunksHeld: 1 }),
    ]);
    expect(agent.database.escrowMessage(escrowGroup, 'm-good')).toMatchObject({
      sender: 'org1',
      share: 'VERIFIED',
      share_index: 1,
      chunk_holder: 1,
      chunks_held: 1,
      attested: 1,
    });
    expect(agent.database.cursor(escrowGroup)).toBeGreaterThan(0);
    // The 'attested' entry our attestation made is read too, and attests nothing again.
    expect(ourActions('attest')).toBe(1);
    await catchUp();
    expect(ourActions('attest')).toBe(1);
  });

  it('complains (INVALID, naming the sender) about a share that fails the commitments or does not open', async () => {
    const otherPolynomial = splitSecret(2, 3).shares[0]?.value as Uint8Array;
    const wrong = await sealShare(otherPolynomial, us.encryptionKey.publicKey, {
      network: us.registry.network,
      sender: 'org1',
      id: 'm-wrong-share',
      holder: 'org2',
      purpose: 'escrow',
    });
    await chain.publishEscrowed(sender, 'm-wrong-share', {
      sealedShare: (index) => (index === 0 ? wrong : undefined),
    });
    const garbage = {
      encapsulatedKey: new Uint8Array(randomBytes(32)),
      sealedShare: new Uint8Array(randomBytes(48)),
    };
    await chain.publishEscrowed(sender, 'm-garbage', {
      sealedShare: (index) => (index === 0 ? garbage : undefined),
    });
    await catchUp();
    for (const id of ['m-wrong-share', 'm-garbage']) {
      expect(record(id).attestations).toEqual([
        expect.objectContaining({ organization: 'org2', share: 'INVALID', chunksHeld: 0 }),
      ]);
      expect(record(id).status).toBe('INVALID');
      expect(agent.database.escrowMessage(escrowGroup, id)).toMatchObject({ share: 'INVALID', attested: 1 });
      expect(warnings.filter((entry) => entry['id'] === id && entry['sender'] === 'org1')).toHaveLength(1);
    }
    // Both complaints went into one transaction.
    expect(ourActions('attest')).toBe(2);
    // The 'invalid' entries refresh the status rows.
    await catchUp();
    expect(agent.database.escrowMessageStatus(escrowGroup, 'm-garbage')).toBe('INVALID');
  });
});

describe('EscrowAgent: releases', () => {
  let message: EscrowedMessage;

  beforeAll(async () => {
    message = await chain.publishEscrowed(sender, 'm-audited');
    await placeOnUs(message, 0);
    await catchUp();
  });

  it('records a pending audit and releases nothing for it', async () => {
    chain.act(auditor, { kind: 'auditRequest', requestId: 'audit-7', id: 'm-audited', reason: 'inquiry' });
    await catchUp();
    expect(agent.database.auditsWithRequestId('audit-7')).toEqual([
      expect.objectContaining({ group_id: escrowGroup, id: 'm-audited', auditor: 'org4', state: 'PENDING' }),
    ]);
    expect(ourActions('shareRelease')).toBe(0);
  });

  it('releases its share to an APPROVED audit exactly once; the auditor opens it and it verifies', async () => {
    chain.act(member, { kind: 'auditApprove', requestId: 'audit-7' });
    await catchUp();
    expect(ourActions('shareRelease')).toBe(1);
    const audit = record('m-audited').audits[0];
    expect(audit?.releases.map((release) => release.holder)).toEqual(['org2']);
    const value = await openShare(audit?.releases[0]?.share as never, auditor.encryptionKey, {
      network: auditor.registry.network,
      sender: 'org1',
      id: 'm-audited',
      holder: 'org2',
      purpose: 'release',
      requestId: 'audit-7',
    });
    expect(verifyShare(message.escrow.commitments, { index: 1, value })).toBe(true);
    expect(value).toEqual(message.sharing.shares[0]?.value);
    expect(agent.database.auditsWithRequestId('audit-7')[0]).toMatchObject({ state: 'APPROVED' });

    // Our own shareReleased entry, and a restart that reads the whole log again: no second release,
    // whether it is our table or the partition's record that says we released.
    await catchUp();
    us.database.db.prepare('DELETE FROM escrow_cursors').run();
    await catchUp();
    us.database.db.prepare('DELETE FROM escrow_cursors').run();
    us.database.db.prepare('DELETE FROM escrow_releases').run();
    await catchUp();
    expect(ourActions('shareRelease')).toBe(1);
    expect(ourActions('attest')).toBe(3);
    expect(agent.database.audits().map((row) => row.request_id)).toEqual(['audit-7']);
  });
});

describe('EscrowAgent.run', () => {
  it('follows every escrow partition, backing off after a failed round, until the connector stops', async () => {
    const message = await chain.publishEscrowed(sender, 'm-run');
    await placeOnUs(message, 0);
    const handlers = chain.handlers();
    let calls = 0;
    const node = await startNodeStandIn(us.organization, {
      ...handlers,
      escrowLog: (body, peer) => {
        calls += 1;
        if (calls === 1) throw new LedgerbusError(ErrorCode.Timeout, 'no leader yet', { retriable: true });
        if (calls === 4) us.lifecycle.stop();
        return (handlers['escrowLog'] as NonNullable<(typeof handlers)['escrowLog']>)(body, peer);
      },
    });
    const runSession = fixture.session(us, 1, node.node);
    try {
      const runner = new EscrowAgent({
        ...us,
        random: () => 0,
        session: runSession,
        submitter: new TransactionSubmitter({ ...us, session: runSession }),
      });
      await settleWithClock(fixture.clock, runner.run());
      expect(runner.partitions).toEqual([escrowGroup]);
      // random() = 0: the low end of the first back-off, 0.8 × 1 s.
      expect(fixture.clock.waits).toContain(800);
      expect(record('m-run').attestations).toEqual([
        expect.objectContaining({ organization: 'org2', share: 'VERIFIED', chunksHeld: 1 }),
      ]);
    } finally {
      runSession.close();
      await node.close();
    }
  });
});
