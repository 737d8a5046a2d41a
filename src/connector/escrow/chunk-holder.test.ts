import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { bytesEqual, toHex } from '../../codec/index.js';
import { encodeChunkGetRequest, encodeChunkPutRequest } from '../../contracts/escrow/chunk-requests.js';
import { CHUNK_RECEIPT_SIGNING_TYPE, chunkReceiptPayload } from '../../contracts/escrow/transactions.js';
import { nonceBytes } from '../../contracts/limits.js';
import { sha256 } from '../../crypto/index.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { ConnectorContext } from '../context.js';
import type { NodeSession } from '../session/node-session.js';
import { partsFixture, startNodeStandIn } from '../testing/parts-fixture.js';
import type { NodeStandIn, PartsFixture } from '../testing/parts-fixture.js';
import { ChunkHolder } from './chunk-holder.js';
import { EscrowChain, escrowGroup, escrowRegistryView } from './testing/escrow-chain.js';
import type { EscrowedMessage } from './testing/escrow-chain.js';
import { escrowRecordAnswer } from './testing/record-answer.js';
import type { RecordAnswerOptions } from './testing/record-answer.js';
import { parseAs } from '../../protocol/typed-rpc.js';
import { nodeMethods } from '../../protocol/client-methods.js';

let fixture: PartsFixture;
let sender: ConnectorContext; // org1
let holderContext: ConnectorContext; // org2: the holder under test
let member: ConnectorContext; // org3: an approved member, no auditor
let auditorContext: ConnectorContext; // org4: the auditor
let chain: EscrowChain;
let standIn: NodeStandIn;
let session: NodeSession;
let holder: ChunkHolder;
/** What the holder logged at warn and above. */
const warnings: Record<string, unknown>[] = [];
/** How the node stand-in shows escrow records: honestly unless a test says otherwise. */
let shown: RecordAnswerOptions = {};

beforeAll(async () => {
  fixture = partsFixture();
  [sender, holderContext, member, auditorContext] = await Promise.all([
    fixture.context(0),
    fixture.context(1),
    fixture.context(2),
    fixture.context(3),
  ]);
  const view = escrowRegistryView(fixture.layout.network.genesis);
  for (const context of [sender, holderContext, member, auditorContext]) context.registry.update(view);
  chain = new EscrowChain(fixture, holderContext);
  standIn = await startNodeStandIn(holderContext.organization, {
    ...chain.handlers(),
    escrowRecord: (body) => {
      const { group, id } = parseAs(nodeMethods.escrowRecord.request, body, 'escrowRecord');
      return escrowRecordAnswer(chain, group, id, shown);
    },
  });
  session = fixture.session(holderContext, 1, standIn.node);
  const logger = pino(
    { level: 'warn' },
    { write: (line: string) => warnings.push(JSON.parse(line) as Record<string, unknown>) },
  );
  holder = new ChunkHolder({ ...holderContext, logger, session });
});

afterAll(async () => {
  session.close();
  await standIn.close();
  await fixture.close();
});

/** A put of `chunk` as chunk `chunkIndex` of `id`, signed by `by`; `fields` overrides what is signed. */
function put(
  chunk: Uint8Array,
  options: {
    id?: string;
    chunkIndex?: number;
    by?: ConnectorContext;
    holder?: string;
    timestamp?: number;
  } = {},
): { request: Uint8Array; chunk: Uint8Array } {
  const by = options.by ?? sender;
  return {
    request: encodeChunkPutRequest(
      {
        requester: by.organization,
        holder: options.holder ?? holderContext.organization,
        group: escrowGroup,
        id: options.id ?? 'm-put',
        chunkIndex: options.chunkIndex ?? 0,
        chunkHash: sha256(chunk),
        chunkSize: chunk.length,
        nonce: new Uint8Array(randomBytes(nonceBytes)),
        timestamp: options.timestamp ?? fixture.clock.now(),
      },
      by.signer,
    ),
    chunk,
  };
}

/** A chunk request for the chunk the master table names (a hash of nothing when the test has none). */
/** The chunks of the escrowed message the audit tests use, once published. */
let escrowedChunks: readonly Uint8Array[] = [];

function get(
  by: ConnectorContext,
  id: string,
  chunkIndex: number,
  requestId: string,
  chunkHash: Uint8Array = sha256(escrowedChunks[chunkIndex] ?? new Uint8Array(0)),
): { request: Uint8Array } {
  return {
    request: encodeChunkGetRequest(
      {
        requester: by.organization,
        holder: holderContext.organization,
        group: escrowGroup,
        id,
        chunkIndex,
        requestId,
        chunkHash,
        nonce: new Uint8Array(randomBytes(nonceBytes)),
        timestamp: fixture.clock.now(),
      },
      by.signer,
    ),
  };
}

async function codeOf(work: () => Promise<unknown>): Promise<string> {
  try {
    await work();
  } catch (error) {
    expect(error).toBeInstanceOf(LedgerbusError);
    return (error as LedgerbusError).code;
  }
  return 'OK';
}

describe('ChunkHolder.put', () => {
  it('stores a chunk durably and answers a receipt signed by a registered key of the holder', async () => {
    const chunk = new Uint8Array(randomBytes(4096));
    const receipt = await holder.put(put(chunk));
    expect(receipt.holder).toBe('org2');
    const registered = holderContext.registry.organization('org2')?.signingKeys ?? [];
    expect(registered.some((key) => bytesEqual(key, receipt.signerKey))).toBe(true);
    const payload = chunkReceiptPayload({
      holder: 'org2',
      sender: 'org1',
      id: 'm-put',
      chunkIndex: 0,
      chunkHash: sha256(chunk),
    });
    // Verified as the sender and the auditor do: in the network's domain, against the receipt's fields.
    expect(
      sender.signer.domain.verify(receipt.signerKey, CHUNK_RECEIPT_SIGNING_TYPE, payload, receipt.signature),
    ).toBe(true);
    const row = holder.chunks.chunk(escrowGroup, 'm-put', 0, 'org1');
    expect(row).toMatchObject({ hash: toHex(sha256(chunk)), size: 4096, sender: 'org1' });
    expect(await holderContext.storage.stat(row?.storage_key as string)).toEqual({
      key: toHex(sha256(chunk)),
      size: 4096,
    });
    // Placing the same chunk again (a new request) keeps one row and answers the same receipt.
    const again = await holder.put(put(chunk));
    expect(again.signature).toEqual(receipt.signature);
    expect(holder.chunks.chunksOf(escrowGroup, 'm-put', 'org1')).toHaveLength(1);
  });

  it('stores nothing for a chunk that is not the one signed (HASH_MISMATCH)', async () => {
    const chunk = new Uint8Array(randomBytes(4096));
    const body = put(chunk, { id: 'm-tampered' });
    const tampered = chunk.slice();
    tampered[100] = (tampered[100] as number) ^ 1;
    expect(await codeOf(() => holder.put({ ...body, chunk: tampered }))).toBe(ErrorCode.HashMismatch);
    const truncated = put(chunk, { id: 'm-truncated' });
    expect(await codeOf(() => holder.put({ ...truncated, chunk: chunk.slice(1) }))).toBe(
      ErrorCode.HashMismatch,
    );
    expect(holder.chunks.chunksOf(escrowGroup, 'm-tampered', 'org1')).toEqual([]);
    expect(holder.chunks.chunksOf(escrowGroup, 'm-truncated', 'org1')).toEqual([]);
    expect(await holderContext.storage.stat(toHex(sha256(tampered)))).toBeUndefined();
    expect(await holderContext.storage.stat(toHex(sha256(chunk)))).toBeUndefined();
  });

  it('refuses a replayed request, a request for another holder, a forged one and a stale one', async () => {
    const chunk = new Uint8Array(randomBytes(4096));
    const body = put(chunk, { id: 'm-replay' });
    await holder.put(body);
    expect(await codeOf(() => holder.put(body))).toBe(ErrorCode.Replay);

    const elsewhere = new Uint8Array(randomBytes(4096));
    expect(await codeOf(() => holder.put(put(elsewhere, { id: 'm-other', holder: 'org3' })))).toBe(
      ErrorCode.WrongGroup,
    );
    // org3 signs a request in org1's name.
    const forged = put(elsewhere, { id: 'm-forged', by: member });
    const claimed = encodeChunkPutRequest(
      {
        requester: 'org1',
        holder: 'org2',
        group: escrowGroup,
        id: 'm-forged',
        chunkIndex: 0,
        chunkHash: sha256(elsewhere),
        chunkSize: elsewhere.length,
        nonce: new Uint8Array(randomBytes(nonceBytes)),
        timestamp: fixture.clock.now(),
      },
      member.signer,
    );
    expect(await codeOf(() => holder.put({ ...forged, request: claimed }))).toBe(ErrorCode.BadSignature);
    const stale = put(elsewhere, { id: 'm-stale', timestamp: fixture.clock.now() - 120_000 });
    expect(await codeOf(() => holder.put(stale))).toBe(ErrorCode.RequestExpired);
    for (const id of ['m-other', 'm-forged', 'm-stale']) {
      expect(holder.chunks.chunksOf(escrowGroup, id, 'org1')).toEqual([]);
    }
    expect(await holderContext.storage.stat(toHex(sha256(elsewhere)))).toBeUndefined();
  });
});

describe('ChunkHolder.get', () => {
  let message: EscrowedMessage;

  beforeAll(async () => {
    message = await chain.publishEscrowed(sender, 'm-audit');
    escrowedChunks = message.chunks;
    // org2 holds chunk 0 only (placement 0,1 | 1,2).
    await holder.put(put(message.chunks[0] as Uint8Array, { id: 'm-audit', chunkIndex: 0 }));
  });

  function refusalsFor(requester: string): Record<string, unknown>[] {
    return warnings.filter((entry) => entry['requester'] === requester && entry['id'] === 'm-audit');
  }

  it('refuses and logs a chunk request before the audit is approved, and one by another than its auditor', async () => {
    const requested = chain.act(auditorContext, {
      kind: 'auditRequest',
      requestId: 'audit-1',
      id: 'm-audit',
      reason: 'quarterly review',
    });
    expect(requested).toMatchObject({ status: 'OK', audit: { state: 'PENDING' } });
    expect(await codeOf(() => holder.get(get(auditorContext, 'm-audit', 0, 'audit-1')))).toBe(
      ErrorCode.AuditNotApproved,
    );
    expect(refusalsFor('org4')).toEqual([
      expect.objectContaining({ chunk: 0, code: ErrorCode.AuditNotApproved, group: escrowGroup }),
    ]);
    // A member that is not the audit's auditor, naming its request id.
    expect(await codeOf(() => holder.get(get(member, 'm-audit', 0, 'audit-1')))).toBe(ErrorCode.Forbidden);
    expect(refusalsFor('org3')).toEqual([expect.objectContaining({ chunk: 0, code: ErrorCode.Forbidden })]);
    // An audit request id that does not exist.
    expect(await codeOf(() => holder.get(get(auditorContext, 'm-audit', 0, 'audit-none')))).toBe(
      ErrorCode.Forbidden,
    );
  });

  it('refuses the chunk while its node claims an approval or an auditor that no evidence proves', async () => {
    // The node's view says APPROVED, with org3's approval, which is not on the chain.
    shown = {
      view: (record) => ({
        ...record,
        audits: record.audits.map((audit) => ({
          ...audit,
          state: 'APPROVED' as const,
          approvals: [{ organization: 'org3', height: audit.height, transactionIndex: 0 }],
        })),
      }),
    };
    try {
      expect(await codeOf(() => holder.get(get(auditorContext, 'm-audit', 0, 'audit-1')))).toBe(
        ErrorCode.AuditNotApproved,
      );
      expect(warnings.at(-2)).toMatchObject({
        requestId: 'audit-1',
        unproven: [expect.stringContaining('approvals[org3]'), expect.stringContaining('state')],
      });
      // And that org3 is the auditor: the proven request says org4.
      shown = {
        view: (record) => ({
          ...record,
          audits: record.audits.map((audit) => ({ ...audit, auditor: 'org3' })),
        }),
      };
      expect(await codeOf(() => holder.get(get(member, 'm-audit', 0, 'audit-1')))).toBe(ErrorCode.Forbidden);
      // Approved on the chain now, but the node withholds the approval's evidence.
      const approved = chain.act(member, { kind: 'auditApprove', requestId: 'audit-1' });
      expect(approved).toMatchObject({ status: 'OK', audit: { state: 'APPROVED' } });
      const approval = chain.blocks.length;
      shown = { hide: (position) => position.height === approval };
      expect(await codeOf(() => holder.get(get(auditorContext, 'm-audit', 0, 'audit-1')))).toBe(
        ErrorCode.AuditNotApproved,
      );
      // A node that cannot even prove the request gets nothing either.
      shown = { hide: () => true };
      expect(await codeOf(() => holder.get(get(auditorContext, 'm-audit', 0, 'audit-1')))).toBe(
        ErrorCode.BadProof,
      );
    } finally {
      shown = {};
    }
  });

  it('answers the chunk to the auditor once the audit is approved, and only chunks held here', async () => {
    const answer = await holder.get(get(auditorContext, 'm-audit', 0, 'audit-1'));
    expect(answer.chunk).toEqual(message.chunks[0]);
    // Still refused to everyone else, approved or not.
    expect(await codeOf(() => holder.get(get(member, 'm-audit', 0, 'audit-1')))).toBe(ErrorCode.Forbidden);
    // Chunk 1 is placed on org3 and org4, not here.
    expect(await codeOf(() => holder.get(get(auditorContext, 'm-audit', 1, 'audit-1')))).toBe(
      ErrorCode.PayloadNotFound,
    );
    // A get is single-use too.
    const body = get(auditorContext, 'm-audit', 0, 'audit-1');
    await holder.get(body);
    expect(await codeOf(() => holder.get(body))).toBe(ErrorCode.Replay);
    // Only the placement the master table names: another hash for the same place is not served.
    expect(
      await codeOf(() => holder.get(get(auditorContext, 'm-audit', 0, 'audit-1', new Uint8Array(32)))),
    ).toBe(ErrorCode.PayloadNotFound);
  });
});
