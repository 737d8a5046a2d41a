// `ledgerbus audit ...` as a user runs it against connectors' REST APIs: the audit routes
// (escrow/http-routes.ts) with the API's own error mapping, in front of real Auditors on a real
// partition (see escrow/testing/audit-network.ts); the CLI parsed and run in this process, its
// output and exit status captured.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fastify } from 'fastify';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCode, errorInfo } from '../errors.js';
import { toWireError } from '../connector/http-api.js';
import { registerAuditRoutes } from '../connector/escrow/http-routes.js';
import { AuditNetwork } from '../connector/escrow/testing/audit-network.js';
import type { Auditor } from '../connector/escrow/auditor.js';
import type { AgentDatabase } from '../connector/escrow/agent-database.js';
import { main } from './main.js';

const token = 'audit-cli-test-token';
let net: AuditNetwork;
const servers: FastifyInstance[] = [];
let inspector: { auditor: Auditor; agent: AgentDatabase; url: string };
let bob: { auditor: Auditor; agent: AgentDatabase; url: string };

/** The audit routes of `auditor`'s connector, answering errors as the REST API does. */
async function serve(auditor: Auditor): Promise<string> {
  const app = fastify({ logger: false, ajv: { customOptions: { removeAdditional: false } } });
  app.setErrorHandler((error: unknown, _request, reply) => {
    const { status, ...body } = toWireError(error);
    return reply.status(status).send({ error: body });
  });
  registerAuditRoutes(app, auditor);
  await app.listen({ host: '127.0.0.1', port: 0 });
  servers.push(app);
  const address = app.server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
}

beforeAll(async () => {
  net = new AuditNetwork();
  await net.start();
  const inspectorParts = await net.auditor('inspector');
  const bobParts = await net.auditor('bob');
  inspector = { ...inspectorParts, url: await serve(inspectorParts.auditor) };
  bob = { ...bobParts, url: await serve(bobParts.auditor) };
}, 60_000);

afterAll(async () => {
  for (const server of servers) await server.close();
  await net?.close();
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

const as = (party: { url: string }): string[] => ['--connector', party.url, '--token', token];

describe('ledgerbus audit', () => {
  it('requests, refuses an early fetch with the code and what to do, approves, fetches to --out atomically, lists', async () => {
    const sent = await net.send('cli-1', randomBytes(20_000));
    net.follow(inspector.agent, sent.id);

    const requested = await ledgerbus(
      'audit',
      'request',
      sent.id,
      '--reason',
      'inspection',
      ...as(inspector),
      '--json',
    );
    expect(requested.status, requested.stderr).toBe(0);
    const { requestId } = JSON.parse(requested.stdout) as { requestId: string };
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);

    const out = join(net.directory, 'rebuilt.bin');
    const early = await ledgerbus('audit', 'fetch', sent.id, '--out', out, ...as(inspector));
    expect(early.status).toBe(2);
    expect(early.stderr).toContain(`error ${ErrorCode.AuditNotApproved}: `);
    expect(early.stderr).toContain(`what to do: ${errorInfo(ErrorCode.AuditNotApproved).remedy}`);
    expect(existsSync(out)).toBe(false);

    net.follow(bob.agent, sent.id);
    const approved = await ledgerbus('audit', 'approve', requestId, ...as(bob));
    expect(approved.status, approved.stderr).toBe(0);
    expect(approved.stdout).toBe(`approved ${requestId}: 1 of 1 approvals, APPROVED\n`);

    await net.release(sent, 'h1', requestId);
    await net.release(sent, 'h2', requestId, { forged: true });
    await net.release(sent, 'h3', requestId);
    const fetched = await ledgerbus('audit', 'fetch', sent.id, '--out', out, ...as(inspector), '--json');
    expect(fetched.status, fetched.stderr).toBe(0);
    const summary = JSON.parse(fetched.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({
      id: sent.id,
      requestId,
      size: sent.plaintext.length,
      sha256: createHash('sha256').update(sent.plaintext).digest('hex'),
      badShares: ['h2'],
      badHolders: [],
      file: out,
    });
    expect(readFileSync(out).equals(Buffer.from(sent.plaintext))).toBe(true);
    // Written through a temporary file that is gone once renamed into place.
    expect(readdirSync(net.directory).filter((name) => name.includes('.partial'))).toEqual([]);

    const text = await ledgerbus('audit', 'fetch', sent.id, '--out', out, ...as(inspector));
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^rebuilt cli-1 \(audit .*\): 20000 bytes, sha256 [0-9a-f]{64}, written to /);
    expect(text.stdout).toContain('bad shares: h2; bad holders: none');

    net.follow(inspector.agent, sent.id);
    const listed = await ledgerbus('audit', 'list', ...as(inspector), '--json');
    expect(listed.status, listed.stderr).toBe(0);
    expect(
      (JSON.parse(listed.stdout) as { requestId: string }[]).find((audit) => audit.requestId === requestId),
    ).toMatchObject({
      state: 'CLOSED',
      outcome: { outcome: 'RETRIEVED' },
    });
    const table = await ledgerbus('audit', 'list', ...as(inspector));
    expect(table.stdout.split('\n')[0]).toMatch(
      /^REQUEST\s+MESSAGE\s+GROUP\s+AUDITOR\s+STATE\s+APPROVALS\s+RELEASES\s+OUTCOME$/,
    );

    const status = await ledgerbus('audit', 'status', sent.id, ...as(inspector), '--json');
    expect(status.status, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ id: sent.id, placement: { allDistinct: true } });
  });

  it('refuses bad usage and a non-auditor with a code, exit status 2 and no output file', async () => {
    const sent = await net.send('cli-2', randomBytes(4_000));
    net.follow(bob.agent, sent.id);
    const forbidden = await ledgerbus('audit', 'request', sent.id, '--reason', 'curious', ...as(bob));
    expect(forbidden.status).toBe(2);
    expect(forbidden.stderr).toMatch(/^error FORBIDDEN: bob is not an approved auditor/);

    const half = await ledgerbus('audit', 'status', sent.id, '--topic', 'vault', ...as(inspector));
    expect(half.status).toBe(2);
    expect(half.stderr).toMatch(/^error SCHEMA_MISMATCH: --topic and --partition go together/);

    const missing = await ledgerbus('audit', 'fetch', sent.id, ...as(inspector));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^error SCHEMA_MISMATCH: .*--out.*see `ledgerbus audit fetch --help`/);

    const nobody = await ledgerbus('audit', 'list', '--network', join(net.directory, 'none.json'));
    expect(nobody.status).toBe(2);
    expect(nobody.stderr).toMatch(/^error BAD_CONFIG: name the acting organization with --as/);
  });
});
