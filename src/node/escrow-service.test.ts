// The node's side of escrow (DESIGN §7) on a real in-process network: four nodes over real TLS, and
// connectors' node sessions. Connector calls go from org1's connector to org2's through the nodes —
// on the node where org2's connector serves, and relayed from another node over a bulk connection —
// and the escrow log and records are shown only to whom they concern.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDevnetLayout } from '../cli/devnet-layout.js';
import type { DevnetLayout } from '../cli/devnet-layout.js';
import type { CborValue } from '../codec/index.js';
import { Lifecycle } from '../connector/lifecycle.js';
import { NodeSession, homeNode } from '../connector/session/node-session.js';
import type { ServingHandlers } from '../connector/session/node-session.js';
import { encodeClientRequest } from '../consensus/pbft/messages.js';
import {
  chunkRequestSignatureValid,
  decodeChunkGetRequest,
  decodeChunkPutRequest,
  encodeChunkGetRequest,
  encodeChunkPutRequest,
} from '../contracts/escrow/chunk-requests.js';
import {
  CHUNK_RECEIPT_SIGNING_TYPE,
  chunkReceiptPayload,
  encodeEscrowTransaction,
} from '../contracts/escrow/transactions.js';
import type { EscrowAction, EscrowMetadata } from '../contracts/escrow/transactions.js';
import { escrowRecordViewSchema } from '../contracts/escrow/views.js';
import type { EscrowLogEntry } from '../contracts/escrow/views.js';
import { decodeTransactionResult } from '../contracts/results.js';
import { encodePublish } from '../contracts/transactions.js';
import { sealMasterTable, sealShare, splitSecret } from '../crypto/escrow/index.js';
import { SigningDomain, loadSigningKey } from '../crypto/index.js';
import type { Signer } from '../crypto/index.js';
import { loadEncryptionKey } from '../crypto/envelope/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import { RpcPeer, connectFramed } from '../net/index.js';
import {
  acceptanceProofSchema,
  blockEvidenceSchema,
  verifyAcceptance,
  verifyAuditEvidence,
} from '../proofs/index.js';
import { proofTrustOf } from '../registry/trust.js';
import { liveRegistryFromGenesis } from '../registry/live-registry.js';
import type { LiveRegistry } from '../registry/live-registry.js';
import type { Genesis } from '../registry/genesis-schema.js';
import { createLogger } from '../runtime/logger.js';
import { refusal } from '../testing/refusal.js';
import { loadConnectorConfig } from '../connector/config.js';
import { loadGenesisRegistry, loadNodeConfig } from './config.js';
import { openRpcPair } from '../net/testing/rpc-pair.js';
import { ClientService } from './client-service.js';
import { ConnectorRelay } from './connector-relay.js';
import type { PeerMesh } from './peer-mesh.js';
import type { RegistryHost } from './registry-host.js';
import { LedgerbusNode } from './node.js';

const basePort = 25640;
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-escrow-service-'));
const vault = 'vault/0';
let layout: DevnetLayout;
let genesis: Genesis;
let registry: LiveRegistry;
const nodes: LedgerbusNode[] = [];
const sessions: NodeSession[] = [];
const warnings: string[] = [];
/** Chunks org2's connector keeps, by "sender/id/index". */
const held = new Map<string, Uint8Array>();

function signerOf(organizationNumber: number): Signer {
  const config = loadConnectorConfig(layout.connectorConfigs[organizationNumber - 1] as string);
  return SigningDomain.of(genesis.network).signer(loadSigningKey(config.keyFile));
}

function encryptionKeyOf(organizationNumber: number): Uint8Array {
  const config = loadConnectorConfig(layout.connectorConfigs[organizationNumber - 1] as string);
  return loadEncryptionKey(config.encryptionKeyFile).publicKey;
}

/** A node session of `orgN`'s connector to `nodeId`, serving with `handlers` if given. */
function sessionOf(organizationNumber: number, nodeId: string, handlers?: ServingHandlers): NodeSession {
  const config = loadConnectorConfig(layout.connectorConfigs[organizationNumber - 1] as string);
  const session = new NodeSession({
    registry,
    logger: createLogger({ name: config.organization, level: 'silent' }),
    lifecycle: new Lifecycle(),
    node: homeNode(registry, config.organization, nodeId),
    identity: loadSigningKey(config.keyFile),
    servingConnections: handlers === undefined ? 0 : 2,
  });
  if (handlers !== undefined) session.startServing(handlers);
  sessions.push(session);
  return session;
}

/**
 * What org2's connector answers, as a chunk holder would: a put is checked (signature by a key of
 * its requester, the chunk's hash) and acknowledged with a signed receipt; a get returns the chunk.
 */
function holderHandlers(): ServingHandlers {
  const signer = signerOf(2);
  const signing = SigningDomain.of(genesis.network);
  const signedByRequester = (request: { requester: string; signerKey: Uint8Array }): boolean =>
    (registry.organization(request.requester)?.signingKeys ?? []).some((key) =>
      Buffer.from(key).equals(request.signerKey),
    );
  return {
    servePayload: () => {
      throw new LedgerbusError(ErrorCode.UnknownMethod, 'no payloads here');
    },
    jobResultGet: () => {
      throw new LedgerbusError(ErrorCode.UnknownMethod, 'no job results here');
    },
    escrowChunkPut: ({ request: bytes, chunk }) => {
      const request = decodeChunkPutRequest(bytes);
      if (!signedByRequester(request) || !chunkRequestSignatureValid(request, signing))
        throw new LedgerbusError(ErrorCode.BadSignature, 'chunk put request not signed by its requester');
      const chunkHash = createHash('sha256').update(chunk).digest();
      if (!chunkHash.equals(request.chunkHash))
        throw new LedgerbusError(ErrorCode.HashMismatch, 'chunk does not match its hash');
      held.set(`${request.requester}/${request.id}/${request.chunkIndex}`, chunk);
      const payload = chunkReceiptPayload({
        holder: 'org2',
        sender: request.requester,
        id: request.id,
        chunkIndex: request.chunkIndex,
        chunkHash: request.chunkHash,
      });
      return {
        holder: 'org2',
        signerKey: signer.publicKey,
        signature: signer.sign(CHUNK_RECEIPT_SIGNING_TYPE, payload),
      };
    },
    escrowChunkGet: ({ request: bytes }) => {
      const request = decodeChunkGetRequest(bytes);
      const chunk = held.get(`org1/${request.id}/${request.chunkIndex}`);
      if (chunk === undefined)
        throw new LedgerbusError(
          ErrorCode.PayloadNotFound,
          `no chunk ${request.chunkIndex} of ${request.id}`,
        );
      return { chunk };
    },
  };
}

function chunkPut(
  signer: Signer,
  fields: { requester?: string; holder?: string; id: string; chunk: Uint8Array },
): { request: Uint8Array; chunk: Uint8Array } {
  const request = encodeChunkPutRequest(
    {
      requester: fields.requester ?? 'org1',
      holder: fields.holder ?? 'org2',
      group: vault,
      id: fields.id,
      chunkIndex: 0,
      chunkHash: createHash('sha256').update(fields.chunk).digest(),
      chunkSize: fields.chunk.length,
      nonce: randomBytes(16),
      timestamp: Date.now(),
    },
    signer,
  );
  return { request, chunk: fields.chunk };
}

function chunkGet(signer: Signer, id: string): { request: Uint8Array } {
  const request = encodeChunkGetRequest(
    {
      requester: 'org1',
      holder: 'org2',
      group: vault,
      id,
      chunkIndex: 0,
      requestId: 'audit-of-test',
      chunkHash: new Uint8Array(32),
      nonce: randomBytes(16),
      timestamp: Date.now(),
    },
    signer,
  );
  return { request };
}

/** True if org2's connector signed `receipt` for chunk 0 of `id` with hash `chunk`'s. */
function receiptValid(
  receipt: { holder: string; signerKey: Uint8Array; signature: Uint8Array },
  id: string,
  chunk: Uint8Array,
): boolean {
  const chunkHash = createHash('sha256').update(chunk).digest();
  const payload = chunkReceiptPayload({
    holder: receipt.holder,
    sender: 'org1',
    id,
    chunkIndex: 0,
    chunkHash,
  });
  return (
    Buffer.from(receipt.signerKey).equals(signerOf(2).publicKey) &&
    SigningDomain.of(genesis.network).verify(
      receipt.signerKey,
      CHUNK_RECEIPT_SIGNING_TYPE,
      payload,
      receipt.signature,
    )
  );
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Submits `operation` signed by `orgN` on `group` through `session`, retrying while the partition starts. */
async function submit(
  session: NodeSession,
  organizationNumber: number,
  operation: Uint8Array,
  group = vault,
): Promise<ReturnType<typeof decodeTransactionResult>> {
  const signer = signerOf(organizationNumber);
  const answer = await until('a committed publish', async () => {
    const request = encodeClientRequest(
      {
        group,
        client: signer.publicKey,
        seq: Date.now() * 1000 + Math.floor(Math.random() * 1000),
        operation,
      },
      signer.sign,
    );
    try {
      return await session.call('publish', { group, request });
    } catch (error) {
      if (isLedgerbusError(error) && error.retriable) return undefined;
      throw error;
    }
  });
  return decodeTransactionResult(blockEvidenceSchema.parse(answer.evidence, 'evidence').result);
}

function escrowAction(organizationNumber: number, action: EscrowAction): Uint8Array {
  return encodeEscrowTransaction(
    { organization: `org${organizationNumber}`, nonce: randomBytes(16), timestamp: Date.now(), action },
    signerOf(organizationNumber),
  );
}

/** org1 escrows message `id` on the vault: key shares and chunks with org2 and org3. */
async function publishEscrowed(session: NodeSession, id: string): Promise<void> {
  const sharing = splitSecret(2, 2);
  const holders = ['org2', 'org3'];
  const shares = await Promise.all(
    holders.map(async (holder, index) => ({
      holder,
      share: await sealShare(sharing.shares[index]!.value, encryptionKeyOf(index + 2), {
        network: genesis.network,
        sender: 'org1',
        id,
        holder,
        purpose: 'escrow',
      }),
    })),
  );
  const table = sealMasterTable(
    { chunks: [{ hash: new Uint8Array(32), size: 100, receipts: [] }] },
    randomBytes(32),
  );
  const escrow: EscrowMetadata = {
    chunkBytes: 4096,
    blobBytes: 100,
    chunkCount: 1,
    commitments: sharing.commitments,
    shares,
    holders,
    placement: Uint8Array.from([0, 1]),
    masterTableHash: table.hash,
    masterTable: table.ciphertext,
  };
  const published = await submit(
    session,
    1,
    encodePublish(
      {
        sender: 'org1',
        nonce: randomBytes(16),
        timestamp: Date.now(),
        messages: [
          {
            id,
            topic: 'vault',
            partition: 0,
            key: null,
            recipients: ['org2'],
            size: 60,
            contentRoot: new Uint8Array(32),
            contentType: 'application/octet-stream',
            headers: {},
            escrow,
          },
        ],
      },
      signerOf(1),
    ),
  );
  expect(published).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });
}

/**
 * Six organizations and four nodes: org1 sends, org2 and org3 hold, org4 is a member with no part in
 * it, org5 an auditor and org6 the supervisor; org5 and org6 have no node and use node1.
 */
beforeAll(async () => {
  layout = ensureDevnetLayout({ directory: dir, organizations: 6, basePort, messageBytesMax: 1024 * 1024 });
  const path = join(dir, 'genesis.json');
  const written = JSON.parse(readFileSync(path, 'utf8')) as Genesis;
  const demo = written.topics[0]!;
  genesis = {
    ...written,
    organizations: written.organizations.map((organization) =>
      organization.id === 'org5' ? { ...organization, roles: ['member', 'auditor'] } : organization,
    ),
    nodes: written.nodes.slice(0, 4),
    topics: [
      demo,
      {
        ...demo,
        name: 'vault',
        policy: {
          ...demo.policy,
          availability: 'escrow',
          escrow: { chunkBytes: 4096, replicas: 2, threshold: 2, shares: 2, auditApprovals: 1 },
        },
      },
    ],
  };
  writeFileSync(path, JSON.stringify(genesis));
  registry = liveRegistryFromGenesis(loadGenesisRegistry(path).genesis);
  for (let index = 0; index < 4; index++) {
    const config = loadNodeConfig(layout.nodeConfigs[index] as string);
    const logger = createLogger({ name: config.nodeId, level: 'error' });
    // Refusals must be logged: keep the warnings to assert on them.
    logger.warn = ((object: Record<string, unknown>, message?: string) => {
      warnings.push(JSON.stringify({ node: config.nodeId, ...object, msg: message }));
    }) as typeof logger.warn;
    const node = new LedgerbusNode({
      nodeId: config.nodeId,
      key: loadSigningKey(config.keyFile),
      registry: loadGenesisRegistry(config.genesis),
      dataDirectory: config.dataDirectory,
      logger,
    });
    await node.start();
    nodes.push(node);
  }
  // org2's connector serves on its own node, node2.
  const holder = sessionOf(2, 'node2', holderHandlers());
  await until('org2 serving', () => (holder.servingCount === 2 ? true : undefined));
}, 60_000);

afterAll(async () => {
  for (const session of sessions) session.close();
  for (const node of nodes) await node.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('connectorCall between connectors through the nodes', () => {
  it('reaches the holder’s connector on the node where it serves, and through a relay from another node', async () => {
    const signer = signerOf(1);
    for (const nodeId of ['node2', 'node1']) {
      const sender = sessionOf(1, nodeId);
      const id = `chunked-${nodeId}`;
      const chunk = randomBytes(nodeId === 'node1' ? 1024 * 1024 : 4096);
      const receipt = await sender.connectorCall('org2', 'escrowChunkPut', chunkPut(signer, { id, chunk }));
      expect(receipt.holder).toBe('org2');
      expect(receiptValid(receipt, id, chunk)).toBe(true);
      const got = await sender.connectorCall('org2', 'escrowChunkGet', chunkGet(signer, id));
      expect(Buffer.from(got.chunk).equals(chunk)).toBe(true);
      // The holder's own refusal comes back with its code, through the relay too.
      const missing = await refusal(
        sender.connectorCall('org2', 'escrowChunkGet', chunkGet(signer, 'never-put')),
      );
      expect(missing.code).toBe(ErrorCode.PayloadNotFound);
      const tampered = chunkPut(signer, { id, chunk });
      tampered.chunk = randomBytes(chunk.length);
      expect((await refusal(sender.connectorCall('org2', 'escrowChunkPut', tampered))).code).toBe(
        ErrorCode.HashMismatch,
      );
    }
  }, 30_000);

  it('refuses a request whose requester is not the calling connector’s organization, or whose holder is not the one called', async () => {
    const sender = sessionOf(1, 'node1');
    const signer = signerOf(1);
    const chunk = randomBytes(64);
    const otherHolder = await refusal(
      sender.connectorCall('org2', 'escrowChunkPut', chunkPut(signer, { id: 'x', chunk, holder: 'org3' })),
    );
    expect(otherHolder.code).toBe(ErrorCode.PeerNotAuthorized);
    // Signed with org1's key in org3's name: the node refuses before any connector sees it.
    const otherRequester = await refusal(
      sender.connectorCall('org2', 'escrowChunkPut', chunkPut(signer, { id: 'x', chunk, requester: 'org3' })),
    );
    expect(otherRequester.code).toBe(ErrorCode.PeerNotAuthorized);
    expect(
      warnings.some((line) => line.includes('another organization’s name') && line.includes('"node1"')),
    ).toBe(true);
    expect(held.has('org3/x/0') || held.has('org1/x/0')).toBe(false);
  });

  it('answers CONNECTION_CLOSED, retriable, when no connector of the holder serves', async () => {
    const sender = sessionOf(1, 'node1');
    const put = chunkPut(signerOf(1), { id: 'y', chunk: randomBytes(64), holder: 'org3' });
    const error = await refusal(sender.connectorCall('org3', 'escrowChunkPut', put));
    expect(error.code).toBe(ErrorCode.ConnectionClosed);
    expect(error.retriable).toBe(true);
    expect(error.message).toContain('no connector of org3 is serving now');
  });

  it('a node relays only requests for the holder it names, and only while that holder serves there', async () => {
    const nodeKey = loadSigningKey(loadNodeConfig(layout.nodeConfigs[0] as string).keyFile);
    const node2 = registry.node('node2')!;
    const bulk = new RpcPeer(
      await connectFramed({
        host: node2.host,
        port: node2.port,
        identity: nodeKey,
        expectedPublicKey: node2.publicKey,
      }),
    );
    try {
      const forOrg3 = chunkPut(signerOf(1), { id: 'z', chunk: randomBytes(64), holder: 'org3' });
      const mismatch = await refusal(
        bulk.request('relayConnectorCall', { organization: 'org2', method: 'escrowChunkPut', body: forOrg3 }),
      );
      expect(mismatch.code).toBe(ErrorCode.PeerNotAuthorized);
      const absent = await refusal(
        bulk.request('relayConnectorCall', { organization: 'org3', method: 'escrowChunkPut', body: forOrg3 }),
      );
      expect(absent.code).toBe(ErrorCode.ConnectionClosed);
      expect(absent.retriable).toBe(true);
    } finally {
      bulk.close();
    }
  });

  it('keeps a few bulk connections per node for relays, reused, and closes them once idle', async () => {
    const nodeKey = loadSigningKey(loadNodeConfig(layout.nodeConfigs[0] as string).keyFile);
    const relay = new ConnectorRelay({
      nodeId: 'node1',
      registry,
      mesh: { addressOf: (node) => ({ host: node.host, port: node.port }), identity: nodeKey },
      logger: createLogger({ name: 'relay', level: 'silent' }),
      servingConnections: () => [],
      admitRelayed: () => undefined,
      bulkIdleMs: 300,
    });
    try {
      const signer = signerOf(1);
      const call = (id: string): Promise<CborValue> =>
        relay.call('org1', {
          organization: 'org2',
          method: 'escrowChunkPut',
          body: chunkPut(signer, { id, chunk: randomBytes(256) }),
        });
      for (let round = 0; round < 4; round++) await call(`sequential-${round}`);
      expect(relay.bulkConnections).toBe(1);
      await Promise.all([0, 1, 2, 3, 4, 5].map((round) => call(`concurrent-${round}`)));
      expect(relay.bulkConnections).toBe(2);
      await until('idle bulk connections closed', () => (relay.bulkConnections === 0 ? true : undefined));
    } finally {
      relay.close();
    }
  });
});

describe('escrowLog and escrowRecord', () => {
  const id = `escrowed-${randomBytes(4).toString('hex')}`;
  const requestId = `audit-${randomBytes(4).toString('hex')}`;
  let org1: NodeSession;

  const logOf = async (
    organizationNumber: number,
    fromSeq = 0,
  ): Promise<{
    readonly entries: readonly EscrowLogEntry[];
    readonly nextSeq: number;
    readonly endSeq: number;
  }> =>
    sessionOf(organizationNumber, organizationNumber <= 4 ? `node${organizationNumber}` : 'node1').call(
      'escrowLog',
      {
        group: vault,
        fromSeq,
      },
    );
  const kinds = (entries: readonly EscrowLogEntry[]): string[] => entries.map((entry) => entry.kind);

  beforeAll(async () => {
    org1 = sessionOf(1, 'node1');
    await publishEscrowed(org1, id);
    const attested = await submit(
      sessionOf(3, 'node3'),
      3,
      escrowAction(3, { kind: 'attest', attestations: [{ id, share: 'VERIFIED', chunksHeld: 1 }] }),
    );
    expect(attested.status).toBe('OK');
    const requested = await submit(
      sessionOf(5, 'node1'),
      5,
      escrowAction(5, { kind: 'auditRequest', requestId, id, reason: 'test' }),
    );
    expect(requested.status).toBe('OK');
  }, 60_000);

  it('shows a message’s registration to its parties and overseers only, and audits to every member', async () => {
    // Every node answers from its own committed state: wait until each has all three entries.
    for (const organizationNumber of [1, 2, 3, 4, 5, 6]) {
      await until(`org${organizationNumber}'s log`, async () =>
        (await logOf(organizationNumber)).endSeq >= 3 ? true : undefined,
      );
    }
    for (const organizationNumber of [1, 2, 3, 5, 6]) {
      expect(kinds((await logOf(organizationNumber)).entries)).toEqual([
        'registered',
        'attested',
        'auditRequested',
      ]);
    }
    const outsider = await logOf(4);
    expect(kinds(outsider.entries)).toEqual(['auditRequested']);
    expect(outsider.entries[0]).toMatchObject({ id, requestId, seq: 2 });
    // Past the filtered entry: the outsider never asks for it again.
    expect(outsider.nextSeq).toBe(outsider.endSeq);
    expect(outsider.nextSeq).toBe(3);
  });

  it('waits for the next entry when asked to', async () => {
    const org4 = sessionOf(4, 'node4');
    const { endSeq } = await logOf(4);
    const started = Date.now();
    const waiting = org4.call('escrowLog', { group: vault, fromSeq: endSeq, waitMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const approved = await submit(
      sessionOf(3, 'node3'),
      3,
      escrowAction(3, { kind: 'auditApprove', requestId }),
    );
    expect(approved.status).toBe('OK');
    const page = await waiting;
    expect(kinds(page.entries)).toEqual(['auditApproved']);
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 30_000);

  it('gives the record with its proofs to parties and overseers, FORBIDDEN to anyone else', async () => {
    const released = await submit(
      sessionOf(2, 'node2'),
      2,
      escrowAction(2, {
        kind: 'shareRelease',
        requestId,
        share: await sealShare(randomBytes(32), encryptionKeyOf(5), {
          network: genesis.network,
          sender: 'org1',
          id,
          holder: 'org5',
          purpose: 'release',
          requestId,
        }),
      }),
    );
    expect(released.status).toBe('OK');
    for (const organizationNumber of [2, 5, 6]) {
      const session = sessionOf(
        organizationNumber,
        organizationNumber <= 4 ? `node${organizationNumber}` : 'node1',
      );
      const answer = await until('the release on the node', async () => {
        const record = await session.call('escrowRecord', { group: vault, id });
        const view = escrowRecordViewSchema.parse(record.record, 'record');
        return view.audits[0]?.releases.length === 1 ? record : undefined;
      });
      const record = escrowRecordViewSchema.parse(answer.record, 'record');
      expect(record).toMatchObject({
        id,
        sender: 'org1',
        shareHolders: ['org2', 'org3'],
        chunkHolders: ['org2', 'org3'],
      });
      expect(record.attestations).toMatchObject([{ organization: 'org3', share: 'VERIFIED', chunksHeld: 1 }]);
      const audit = record.audits[0]!;
      const release = audit.releases[0]!;
      expect(release.holder).toBe('org2');
      // Every transaction of the audit, newest audit first, then the attestation: each at its position.
      const positions = [audit, audit.approvals[0]!, release, record.attestations[0]!];
      expect(answer.evidences.map(({ height, transactionIndex }) => ({ height, transactionIndex }))).toEqual(
        positions.map(({ height, transactionIndex }) => ({ height, transactionIndex })),
      );
      const evidence = blockEvidenceSchema.parse(answer.evidences[2]!.evidence, 'evidence');
      expect(evidence.header.height).toBe(release.height);
      const acceptance = acceptanceProofSchema.parse(answer.acceptance, 'acceptance');
      const acceptedAt = 'block' in acceptance ? acceptance.block.header : acceptance.header;
      expect(acceptedAt.height).toBeLessThan(release.height);
      // What a holder's connector does with them: the whole audit is proven, offline, nothing dropped.
      const trust = proofTrustOf(registry);
      const proven = verifyAuditEvidence(verifyAcceptance(acceptance, trust), audit, answer.evidences, trust);
      expect(proven.dropped).toEqual([]);
      expect(proven.audit).toMatchObject({
        requestId,
        auditor: 'org5',
        state: 'APPROVED',
        approvals: [{ organization: 'org3' }],
        releases: [{ holder: 'org2' }],
        outcome: null,
      });
    }
    const outsider = await refusal(sessionOf(4, 'node4').call('escrowRecord', { group: vault, id }));
    expect(outsider.code).toBe(ErrorCode.Forbidden);
    expect(warnings.some((line) => line.includes('no party of it') && line.includes('"org4"'))).toBe(true);
  }, 30_000);

  it('tells a message not committed yet from one that is not escrowed', async () => {
    const unknown = await refusal(org1.call('escrowRecord', { group: vault, id: 'no-such-message' }));
    expect(unknown.code).toBe(ErrorCode.MessageNotFound);
    expect(unknown.retriable).toBe(true);
    const plainId = `plain-${randomBytes(4).toString('hex')}`;
    const published = await submit(
      org1,
      1,
      encodePublish(
        {
          sender: 'org1',
          nonce: randomBytes(16),
          timestamp: Date.now(),
          messages: [
            {
              id: plainId,
              topic: 'demo',
              partition: 0,
              key: null,
              recipients: ['org2'],
              size: 60,
              contentRoot: new Uint8Array(32),
              contentType: 'application/octet-stream',
              headers: {},
            },
          ],
        },
        signerOf(1),
      ),
      'demo/0',
    );
    expect(published.status).toBe('OK');
    const plain = await refusal(org1.call('escrowRecord', { group: 'demo/0', id: plainId }));
    expect(plain.code).toBe(ErrorCode.MessageNotFound);
    expect(plain.retriable).toBe(false);
    expect(plain.message).toContain('not an escrowed message');
  });
});

describe('escrow reads forwarded between nodes', () => {
  /** node `nodeId`'s client service hosting no partition; what it forwards is recorded, not sent. */
  function clientService(nodeId: string, forwardedTo: CborValue[] = []): ClientService {
    const mesh: Pick<PeerMesh, 'request'> = {
      request: (_target, _method, body) => {
        forwardedTo.push(body);
        return Promise.resolve({ entries: [], nextSeq: 0, endSeq: 0 });
      },
    };
    return new ClientService({
      nodeId,
      registry,
      registryHost: {} as RegistryHost,
      replicas: new Map(),
      mesh: mesh as PeerMesh,
      logger: createLogger({ name: nodeId, level: 'silent' }),
    });
  }

  it('forwards a connector’s escrowLog with its long poll capped, and answers it for the calling node’s organization only', async () => {
    const forwardedTo: CborValue[] = [];
    const node1 = clientService('node1', forwardedTo);
    const pair = await openRpcPair();
    try {
      node1.serveConnector('org1', pair.server);
      await pair.client.request('escrowLog', { group: vault, fromSeq: 3, waitMs: 60_000 });
      expect(forwardedTo).toEqual([
        { method: 'escrowLog', organization: 'org1', body: { group: vault, fromSeq: 3, waitMs: 3_000 } },
      ]);
    } finally {
      await pair.close();
      node1.close();
    }
    const node2 = clientService('node2');
    const forOrg2 = { method: 'escrowRecord', organization: 'org2', body: { group: vault, id: 'm' } };
    expect((await refusal(() => node2.forwarded('node1', forOrg2))).code).toBe(ErrorCode.PeerNotAuthorized);
    // For node1's own organization it gets past that check, to find it hosts no vault/0.
    const forOrg1 = { ...forOrg2, organization: 'org1' };
    expect((await refusal(() => node2.forwarded('node1', forOrg1))).code).toBe(ErrorCode.WrongGroup);
    const malformed = { method: 'escrowLog', organization: 'org1', body: { group: vault } };
    const mismatch = await refusal(() => node2.forwarded('node1', malformed));
    expect(mismatch.message).toContain('escrowLog request: fromSeq');
    node2.close();
  });
});
