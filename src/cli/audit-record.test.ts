// `ledgerbus audit record` and `ledgerbus verify` on an audit record, as a user runs them: a real
// Auditor behind the REST audit routes builds the record from a node's escrow record (a stand-in
// answering from a real partition, see escrow/testing/audit-network.ts, with every evidence as the
// node's escrow service sends them), the CLI writes it to a file, and `verify` checks that file
// offline against network.json alone. The CLI is parsed and run in this process.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fastify } from 'fastify';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { toHex } from '../codec/index.js';
import { messageById } from '../contracts/queries.js';
import { escrowParties } from '../contracts/escrow/queries.js';
import { Auditor } from '../connector/escrow/auditor.js';
import type { AgentDatabase } from '../connector/escrow/agent-database.js';
import { registerAuditRoutes } from '../connector/escrow/http-routes.js';
import { AuditNetwork, group } from '../connector/escrow/testing/audit-network.js';
import type { SentEscrow } from '../connector/escrow/testing/audit-network.js';
import { escrowRecordAnswer } from '../connector/escrow/testing/record-answer.js';
import { toWireError } from '../connector/http-api.js';
import { Lifecycle } from '../connector/lifecycle.js';
import { NodeSession } from '../connector/session/node-session.js';
import { startNodeStandIn } from '../connector/testing/parts-fixture.js';
import type { NodeStandIn } from '../connector/testing/parts-fixture.js';
import { nodeMethods } from '../protocol/client-methods.js';
import { parseAs } from '../protocol/typed-rpc.js';
import type { AuditRecordBundle } from '../proofs/index.js';
import { createLogger } from '../runtime/logger.js';
import { main } from './main.js';

const token = 'audit-record-test-token';
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-audit-record-'));
let net: AuditNetwork;
let standIn: NodeStandIn;
let session: NodeSession;
let server: FastifyInstance;
let url: string;
let agent: AgentDatabase;
let networkFile: string;

beforeAll(async () => {
  net = new AuditNetwork();
  await net.start();
  // The inspector's connector, reading escrow records from a node that sends every evidence.
  standIn = await startNodeStandIn('stand-in', {
    escrowRecord: (body) => {
      const { group: partition, id } = parseAs(nodeMethods.escrowRecord.request, body, 'escrowRecord');
      return escrowRecordAnswer(net.chain, partition, id);
    },
  });
  const lifecycle = new Lifecycle();
  session = new NodeSession({
    registry: net.registry,
    logger: createLogger({ name: 'inspector', level: 'silent' }),
    lifecycle,
    node: standIn.node,
    identity: net.organizations.inspector.key,
    servingConnections: 0,
  });
  const parts = await net.auditor('inspector');
  agent = parts.agent;
  server = fastify({ logger: false });
  server.setErrorHandler((error: unknown, _request, reply) => {
    const { status, ...body } = toWireError(error);
    return reply.status(status).send({ error: body });
  });
  registerAuditRoutes(server, new Auditor({ ...parts.options, session }));
  await server.listen({ host: '127.0.0.1', port: 0 });
  const address = server.server.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  networkFile = join(dir, 'network.json');
  writeFileSync(
    networkFile,
    JSON.stringify({
      format: 'ledgerbus-network/v1',
      network: net.genesis.network,
      organizations: net.genesis.organizations.map((organization) => ({
        id: organization.id,
        roles: organization.roles,
        connector: { url, token },
      })),
      nodes: net.genesis.nodes.map((node) => ({
        id: node.id,
        organization: node.organization,
        address: node.address,
      })),
      genesis: net.genesis,
    }),
  );
}, 60_000);

afterAll(async () => {
  await server?.close();
  session?.close();
  await standIn?.close();
  await net?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `ledgerbus ...args` in this process; its stdout, stderr and exit status. */
async function ledgerbus(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  const before = process.exitCode;
  try {
    await main(['node', 'ledgerbus', ...args]);
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  const status = Number(process.exitCode ?? 0);
  process.exitCode = before;
  return { status, stdout, stderr };
}

const connection = (): string[] => ['--connector', url, '--token', token];
const verify = (file: string): Promise<{ status: number; stdout: string }> =>
  ledgerbus('verify', file, '--network', networkFile, '--json');

describe('ledgerbus audit record and verify', () => {
  const requestId = 'audit-record-1';
  let sent: SentEscrow;

  beforeAll(async () => {
    sent = await net.send('m-recorded', randomBytes(9_000));
    expect(
      net.escrowAction('inspector', {
        kind: 'auditRequest',
        requestId,
        id: sent.id,
        reason: 'annual review',
      }),
    ).toMatchObject({ status: 'OK' });
    net.follow(agent, sent.id);
  });

  it('writes the record of a pending audit, which verifies offline as PENDING', async () => {
    const file = join(dir, 'pending.json');
    const written = await ledgerbus('audit', 'record', requestId, '--out', file, ...connection());
    expect(written.status).toBe(0);
    expect(written.stdout).toContain(`audit ${requestId} of m-recorded (vault/0) by inspector: PENDING`);
    const verified = await verify(file);
    expect(verified.status).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({
      valid: true,
      id: 'm-recorded',
      requestId,
      auditor: 'inspector',
      reason: 'annual review',
      state: 'PENDING',
      approvals: [],
      releases: [],
      outcome: null,
    });
  });

  it('writes the record of a closed audit (by its message id too); verify proves every step and names what a tampered copy changed', async () => {
    expect(net.escrowAction('bob', { kind: 'auditApprove', requestId })).toMatchObject({ status: 'OK' });
    expect(await net.release(sent, 'h1', requestId)).toMatchObject({ status: 'OK' });
    expect(await net.release(sent, 'h2', requestId)).toMatchObject({ status: 'OK' });
    const contentRoot = messageById(net.chain.state, group, sent.id)?.metadata.contentRoot as Uint8Array;
    // Placement ranks holders by the (random) content, so the holder accused is one the record names.
    const badHolder = escrowParties(net.chain.state, group, sent.id)!.chunkHolders.at(-1)!;
    const outcome = {
      kind: 'auditOutcome',
      requestId,
      outcome: 'RETRIEVED',
      contentRoot,
      badShares: [],
      badHolders: [badHolder],
      detail: '',
    } as const;
    expect(net.escrowAction('inspector', outcome)).toMatchObject({ status: 'OK' });
    net.follow(agent, sent.id);

    const file = join(dir, 'closed.json');
    const written = await ledgerbus('audit', 'record', requestId, '--out', file, '--json', ...connection());
    expect(written.status).toBe(0);
    const expected = {
      id: 'm-recorded',
      topic: 'vault',
      partition: 0,
      sender: 'alice',
      contentRoot: toHex(contentRoot),
      requestId,
      auditor: 'inspector',
      reason: 'annual review',
      approvals: ['bob'],
      state: 'CLOSED',
      releases: ['h1', 'h2'],
      outcome: {
        outcome: 'RETRIEVED',
        contentRoot: toHex(contentRoot),
        badShares: [],
        badHolders: [badHolder],
        detail: '',
      },
    };
    expect(JSON.parse(written.stdout)).toEqual({ ...expected, file });
    const verified = await verify(file);
    expect(verified.status).toBe(0);
    expect(JSON.parse(verified.stdout)).toEqual({ valid: true, ...expected });
    const text = await ledgerbus('verify', file, '--network', networkFile);
    expect(text.stdout).toContain('approved by bob; key shares released by h1, h2');
    expect(text.stdout).toContain('outcome RETRIEVED');
    // The same record, asked for by the message's id: its newest audit.
    const byMessage = await ledgerbus(
      'audit',
      'record',
      'm-recorded',
      '--out',
      join(dir, 'by-id.json'),
      ...connection(),
    );
    expect(byMessage.status).toBe(0);
    expect(readFileSync(join(dir, 'by-id.json'), 'utf8')).toBe(readFileSync(file, 'utf8'));

    const bundle = JSON.parse(readFileSync(file, 'utf8')) as AuditRecordBundle;
    const tampered = async (name: string, change: (copy: AuditRecordBundle) => unknown): Promise<unknown> => {
      writeFileSync(join(dir, name), JSON.stringify(change(structuredClone(bundle))));
      const result = await verify(join(dir, name));
      expect(result.status, name).toBe(1);
      return JSON.parse(result.stdout);
    };
    expect(
      await tampered('failed.json', (copy) => ({
        ...copy,
        audit: { ...copy.audit, outcome: { ...copy.audit.outcome, outcome: 'FAILED' } },
      })),
    ).toMatchObject({
      valid: false,
      code: 'BAD_PROOF',
      reason: expect.stringContaining("summary's outcome"),
    });
    expect(
      await tampered('approvals.json', (copy) => ({
        ...copy,
        audit: { ...copy.audit, approvals: ['bob', 'h3'] },
      })),
    ).toMatchObject({ code: 'BAD_PROOF', reason: expect.stringContaining("summary's approvals") });
    // A proof whose bytes were changed: the record no longer decodes or no longer verifies.
    const flipped = Buffer.from(bundle.proof, 'base64');
    flipped[flipped.length - 100] = (flipped[flipped.length - 100] as number) ^ 1;
    expect(
      await tampered('flipped.json', (copy) => ({ ...copy, proof: flipped.toString('base64') })),
    ).toMatchObject({
      valid: false,
      remedy: expect.any(String),
    });
    expect(await tampered('foreign.json', (copy) => ({ ...copy, network: 'elsewhere' }))).toMatchObject({
      code: 'WRONG_GROUP',
    });
  });

  it('answers MESSAGE_NOT_FOUND, saying what to do, for a request or message it has not seen', async () => {
    const missing = await ledgerbus(
      'audit',
      'record',
      'no-such-audit',
      '--out',
      join(dir, 'none.json'),
      ...connection(),
    );
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('MESSAGE_NOT_FOUND');
    expect(missing.stderr).toContain('neither an audit request nor an escrowed message no-such-audit');
  });
});
