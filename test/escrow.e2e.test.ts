// Auditor availability (issue 14, DESIGN §7) as operators run it: four organizations, each a node and
// a connector in its own process, over TLS. org1 sends a 50 MB file on an escrow topic; its chunks and
// key shares land on org2..org4; then org1's node AND connector and org2's connector are stopped, and
// org4 (the dev network's auditor) still gets the file back byte for byte after org3 approves. The
// bad-input cases run on the same network: a non-auditor's request, a fetch before approval, a holder
// serving a corrupted chunk, a forged share release, a chunk request by a non-auditor, and a sender
// whose shares do not match its commitments.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  createReadStream,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConnectorConfig } from '../src/connector/config.js';
import { encodeClientRequest } from '../src/consensus/pbft/messages.js';
import { encodeChunkGetRequest } from '../src/contracts/escrow/chunk-requests.js';
import { encodeEscrowTransaction } from '../src/contracts/escrow/transactions.js';
import type { EscrowMetadata } from '../src/contracts/escrow/transactions.js';
import { decodeTransactionResult } from '../src/contracts/results.js';
import { encodePublish } from '../src/contracts/transactions.js';
import { sealShare, sealMasterTable, splitSecret } from '../src/crypto/escrow/index.js';
import { SigningDomain, loadSigningKey } from '../src/crypto/index.js';
import type { SigningKeyPair } from '../src/crypto/index.js';
import { RpcPeer, connectFramed } from '../src/net/index.js';
import { loadGenesisRegistry } from '../src/node/config.js';
import { blockEvidenceSchema } from '../src/proofs/index.js';
import { ProcessNetwork, writeDeterministicFile } from './support/process-network.js';
import { cliNodeArgs, waitFor } from './support/processes.js';

const basePort = 25900;
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-escrow-'));
const net = new ProcessNetwork(dir, basePort);
const networkFile = join(dir, 'network.json');
const topic = 'audited';
const group = `${topic}/0`;
const fileBytes = 50 * 1024 * 1024;

function ledgerbus(...args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [...cliNodeArgs(), ...args], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 300_000,
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}
const as = (organization: string): string[] => ['--network', networkFile, '--as', organization];

async function json<T>(response: Response, what: string): Promise<T> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${what}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

/** The error code of a refused REST call. */
async function refusal(response: Response): Promise<string> {
  expect(response.ok).toBe(false);
  const body = (await response.json()) as { error?: { code?: string } };
  return body.error?.code ?? `(no code, status ${response.status})`;
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

interface AuditStatus {
  status: 'PENDING' | 'VERIFIED' | 'INVALID';
  placement: { chunks: number; replicas: number; perChunk: string[][]; allDistinct: boolean };
  retrievable: boolean;
}

const auditStatus = async (organization: string, id: string): Promise<AuditStatus> =>
  json<AuditStatus>(
    await net.api(organization, `/v1/audits/messages/${encodeURIComponent(id)}`),
    'audit status',
  );

/** As organization `orgN`'s connector would: its key, its network's signer, a connection to its node. */
async function actAs(organizationNumber: number): Promise<{
  key: SigningKeyPair;
  signer: ReturnType<SigningDomain['signer']>;
  peer: RpcPeer;
  submit: (operation: Uint8Array) => Promise<ReturnType<typeof decodeTransactionResult>>;
}> {
  const config = loadConnectorConfig(net.layout.connectorConfigs[organizationNumber - 1] as string);
  const key = loadSigningKey(config.keyFile);
  const node = loadGenesisRegistry(config.genesis).node(
    `node${organizationNumber === 1 ? 2 : organizationNumber}`,
  )!;
  const connection = await connectFramed({
    host: node.host,
    port: node.port,
    identity: key,
    expectedPublicKey: node.publicKey,
  });
  const peer = new RpcPeer(connection);
  const signer = SigningDomain.of(net.layout.network.genesis.network).signer(key);
  let seq = Date.now() * 1000;
  const submit = async (operation: Uint8Array): Promise<ReturnType<typeof decodeTransactionResult>> => {
    const request = encodeClientRequest(
      { group, client: signer.publicKey, seq: seq++, operation },
      signer.sign,
    );
    const answer = (await peer.request('publish', { group, request })) as Record<string, unknown>;
    return decodeTransactionResult(blockEvidenceSchema.parse(answer['evidence'], 'evidence').result);
  };
  return { key, signer, peer, submit };
}

beforeAll(async () => {
  await net.startAll();
  const created = ledgerbus(
    'topic',
    'create',
    topic,
    '--partitions',
    '1',
    '--escrow',
    '--chunk-bytes',
    String(256 * 1024),
    '--message-bytes-max',
    String(64 * 1024 * 1024),
    ...as('org1'),
    '--json',
  );
  expect(created.status, created.stderr).toBe(0);
  const described = ledgerbus('topic', 'describe', topic, ...as('org2'), '--json');
  expect(described.status, described.stderr).toBe(0);
  expect(JSON.parse(described.stdout)).toMatchObject({
    policy: {
      availability: 'escrow',
      escrow: { replicas: 3, threshold: 2, shares: 3, chunkBytes: 256 * 1024, auditApprovals: 1 },
    },
  });
}, 180_000);

afterAll(async () => {
  await net.stopAll();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('escrow topics with real processes', () => {
  let id = '';
  let original = '';
  let originalSha256 = '';
  let requestId = '';

  it('places every chunk of a 50 MB file on 3 distinct holders other than the owner, with verified shares', async () => {
    original = join(dir, 'fifty.bin');
    originalSha256 = writeDeterministicFile(original, fileBytes, 'escrow');
    id = `fifty-${randomBytes(4).toString('hex')}`;
    const sent = await json<{ id: string }>(
      await net.api('org1', `/v1/topics/${topic}/messages?to=org2&id=${id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: Readable.toWeb(createReadStream(original)) as ReadableStream,
        duplex: 'half',
      } as RequestInit),
      'send',
    );
    expect(sent.id).toBe(id);
    // Every share holder checks its share against the commitments and says so on-chain.
    const status = await waitFor(
      'the share holders to attest',
      async () => {
        const current = await auditStatus('org4', id);
        return current.status === 'PENDING' ? undefined : current;
      },
      120_000,
      500,
    );
    expect(status.status).toBe('VERIFIED');
    expect(status.retrievable).toBe(true);
    // The escrowed blob is the envelope header and the ciphertext (50 MiB plus a tag per MiB).
    expect(status.placement.chunks).toBeGreaterThanOrEqual(fileBytes / (256 * 1024));
    expect(status.placement.perChunk).toHaveLength(status.placement.chunks);
    for (const holders of status.placement.perChunk) {
      expect(new Set(holders).size).toBe(3);
      expect(holders).not.toContain('org1');
    }
    expect(status.placement.allDistinct).toBe(true);
  }, 300_000);

  it('refuses an audit request by a non-auditor (FORBIDDEN) and a fetch before approval (AUDIT_NOT_APPROVED)', async () => {
    const byMember = await net.api('org2', '/v1/audits', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id, reason: 'curious' }),
    });
    expect(await refusal(byMember)).toBe('FORBIDDEN');

    const requested = ledgerbus(
      'audit',
      'request',
      id,
      '--reason',
      'quarterly inspection',
      ...as('org4'),
      '--json',
    );
    expect(requested.status, requested.stderr).toBe(0);
    requestId = (JSON.parse(requested.stdout) as { requestId: string }).requestId;
    expect(requestId).not.toBe('');

    const early = ledgerbus('audit', 'fetch', id, '--out', join(dir, 'early.bin'), ...as('org4'));
    expect(early.status).not.toBe(0);
    expect(early.stderr).toMatch(/AUDIT_NOT_APPROVED/);
  }, 120_000);

  it('refuses a chunk request from anyone but the auditor of an approved request', async () => {
    const org2 = await actAs(2);
    try {
      const request = encodeChunkGetRequest(
        {
          requester: 'org2',
          holder: 'org3',
          group,
          id,
          requestId,
          chunkIndex: 0,
          chunkHash: new Uint8Array(32),
          nonce: randomBytes(16),
          timestamp: Date.now(),
        },
        org2.signer,
      );
      await expect(
        org2.peer.request('connectorCall', {
          organization: 'org3',
          method: 'escrowChunkGet',
          body: { request },
        }),
      ).rejects.toMatchObject({ code: expect.stringMatching(/FORBIDDEN|AUDIT_NOT_APPROVED/) });
    } finally {
      org2.peer.close();
    }
    await waitFor(
      'org3 to log the refusal',
      () => (/refused/i.test(net.log('connector-org3')) ? true : undefined),
      10_000,
    );
  }, 60_000);

  it('rebuilds the file for the auditor with the owner node and connector and one holder stopped, despite a corrupted chunk and a forged share', async () => {
    // org1 (the owner) is gone entirely; org2's connector too.
    await net.kill('connector-org1', 'SIGKILL');
    await net.kill('node1', 'SIGKILL');
    await net.kill('connector-org2', 'SIGKILL');

    // org3 approves (org2's approval would count too; the owner's would not, and is not needed).
    const approved = ledgerbus('audit', 'approve', requestId, ...as('org3'), '--json');
    expect(approved.status, approved.stderr).toBe(0);
    // A forged share "released" in org2's name (its key, not its connector, which is down): the
    // commitments expose it, and the auditor names it.
    const org2 = await actAs(2);
    try {
      const garbage = await sealShare(randomScalar(), encryptionKeyOf('org4'), {
        network: net.layout.network.genesis.network,
        sender: 'org1',
        id,
        holder: 'org2',
        purpose: 'release',
        requestId,
      });
      const forged = await org2.submit(
        encodeEscrowTransaction(
          {
            organization: 'org2',
            nonce: randomBytes(16),
            timestamp: Date.now(),
            action: { kind: 'shareRelease', requestId, share: garbage },
          },
          org2.signer,
        ),
      );
      expect(forged.status).toBe('OK');
    } finally {
      org2.peer.close();
    }

    // Every full chunk in org3's storage is corrupted: org3 serves them, the auditor takes each from
    // the next holder (org4; org2 is down) and records org3.
    corruptStoredChunks('org3');

    const out = join(dir, 'rebuilt.bin');
    const fetched = ledgerbus('audit', 'fetch', id, '--out', out, ...as('org4'), '--json');
    expect(fetched.status, fetched.stderr).toBe(0);
    const summary = JSON.parse(fetched.stdout) as {
      badShares: string[];
      badHolders: string[];
      sha256: string;
    };
    expect(sha256File(out)).toBe(originalSha256);
    expect(summary.sha256).toBe(originalSha256);
    expect(statSync(out).size).toBe(fileBytes);
    expect(summary.badShares).toEqual(['org2']);
    expect(summary.badHolders).toContain('org3');

    const listed = ledgerbus('audit', 'list', ...as('org4'), '--json');
    expect(listed.status, listed.stderr).toBe(0);
    const audits = JSON.parse(listed.stdout) as {
      requestId: string;
      state: string;
      outcome: { outcome: string } | null;
    }[];
    expect(audits.find((audit) => audit.requestId === requestId)).toMatchObject({
      state: 'CLOSED',
      outcome: { outcome: 'RETRIEVED' },
    });
  }, 600_000);

  it('marks a message ESCROW_INVALID when the sender commits to shares that do not match', async () => {
    // org3 sends (org1 is down): shares of one polynomial, commitments of another.
    const org3 = await actAs(3);
    try {
      const honest = splitSecret(2, 3);
      const other = splitSecret(2, 3);
      const network = net.layout.network.genesis.network;
      const badId = `bad-${randomBytes(4).toString('hex')}`;
      const holders = ['org1', 'org2', 'org4'];
      const shares = await Promise.all(
        holders.map(async (holder, index) => ({
          holder,
          share: await sealShare(other.shares[index]!.value, encryptionKeyOf(holder), {
            network,
            sender: 'org3',
            id: badId,
            holder,
            purpose: 'escrow',
          }),
        })),
      );
      const table = sealMasterTable(
        { chunks: [{ hash: new Uint8Array(32), size: 1, receipts: [] }] },
        new Uint8Array(32),
      );
      const escrow: EscrowMetadata = {
        chunkBytes: 256 * 1024,
        blobBytes: 100,
        chunkCount: 1,
        commitments: honest.commitments,
        shares,
        holders,
        placement: Uint8Array.from([0, 1, 2]),
        masterTableHash: table.hash,
        masterTable: table.ciphertext,
      };
      const published = await org3.submit(
        encodePublish(
          {
            sender: 'org3',
            nonce: randomBytes(16),
            timestamp: Date.now(),
            messages: [
              {
                id: badId,
                topic,
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
          org3.signer,
        ),
      );
      expect(published).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });
      // org4 (a running share holder) complains; one complaint makes the message ESCROW_INVALID.
      const status = await waitFor(
        'a complaint',
        async () => {
          const current = await auditStatus('org4', badId);
          return current.status === 'INVALID' ? current : undefined;
        },
        60_000,
        500,
      );
      expect(status.retrievable).toBe(false);
    } finally {
      org3.peer.close();
    }
  }, 120_000);
});

/** The registered encryption key of `organization`. */
function encryptionKeyOf(organization: string): Uint8Array {
  const config = loadConnectorConfig(net.layout.connectorConfigs[0] as string);
  const key = loadGenesisRegistry(config.genesis).encryptionKey(organization);
  if (key === undefined) throw new Error(`no encryption key for ${organization}`);
  return key;
}

/** A random scalar below the group order (its top byte cleared). */
function randomScalar(): Uint8Array {
  const bytes = new Uint8Array(randomBytes(32));
  bytes[31] = 0;
  return bytes;
}

/** Flips one byte in every full-size chunk object of `organization`'s connector storage. */
function corruptStoredChunks(organization: string): void {
  const config = loadConnectorConfig(
    net.layout.connectorConfigs[Number(organization.slice(3)) - 1] as string,
  );
  const storage = config.storage as { kind: string; directory?: string };
  expect(storage.kind).toBe('filesystem');
  const files: string[] = [];
  const walk = (path: string): void => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (/^[0-9a-f]{64}$/.test(entry.name)) files.push(child);
    }
  };
  walk(storage.directory as string);
  const victims = files.filter((file) => statSync(file).size === 256 * 1024);
  expect(victims.length).toBeGreaterThan(100);
  for (const victim of victims) {
    const bytes = readFileSync(victim);
    bytes[1000] = (bytes[1000] ?? 0) ^ 0xff;
    writeFileSync(victim, bytes);
  }
}
