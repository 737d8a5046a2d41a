/**
 * The connector REST calls bench:escrow makes beyond lib/connector-http.ts, with no SDK in between:
 * creating a topic (`POST /v1/admin`), a small send, the audit routes (docs/escrow.md), and the
 * placer's timing line read from the sender connector's log.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { EscrowPolicyDescription } from '../../src/connector/api-types.js';
import type {
  AuditFetchResult,
  AuditRequestResult,
  AuditSummary,
  EscrowStatus,
} from '../../src/connector/escrow/audit-types.js';
import { sleep } from '../../test/support/processes.js';
import type { ConnectorTarget } from './connector-http.js';

/** A refusal from the connector, with its error code (the REST error body's `error.code`). */
export class ConnectorRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** One JSON request to a connector; throws ConnectorRefusal on a non-2xx answer. */
export async function call<T>(
  target: ConnectorTarget,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  timeoutMs = 300_000,
): Promise<T> {
  const response = await fetch(new URL(path, target.url), {
    method,
    headers: {
      authorization: `Bearer ${target.token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  if (!response.ok) {
    let code: string | undefined;
    try {
      code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
    } catch {
      code = undefined;
    }
    throw new ConnectorRefusal(response.status, code, `${method} ${path}: HTTP ${response.status} ${text}`);
  }
  return JSON.parse(text) as T;
}

/** Creates a one-partition topic; an escrow one when `escrow` is given. */
export async function createTopic(
  target: ConnectorTarget,
  options: {
    readonly name: string;
    readonly organizations: readonly string[];
    readonly messageBytesMax: number;
    readonly escrow?: EscrowPolicyDescription;
  },
): Promise<void> {
  await call(target, 'POST', '/v1/admin', {
    kind: 'createTopic',
    name: options.name,
    partitions: 1,
    producers: options.organizations,
    consumers: options.organizations,
    policy: {
      messageBytesMax: options.messageBytesMax,
      ...(options.escrow === undefined ? {} : { availability: 'escrow', escrow: options.escrow }),
    },
  });
}

/**
 * POST /v1/topics/T/messages with a small in-memory body; resolves with the milliseconds until the
 * answer (the send's acknowledgement: stored, escrowed if the topic says so, and committed).
 */
export async function sendSmall(
  target: ConnectorTarget,
  options: { readonly topic: string; readonly to: string; readonly id: string; readonly body: Uint8Array },
): Promise<number> {
  const started = performance.now();
  const path = `/v1/topics/${encodeURIComponent(options.topic)}/messages?to=${encodeURIComponent(options.to)}&id=${encodeURIComponent(options.id)}`;
  const response = await fetch(new URL(path, target.url), {
    method: 'POST',
    headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/octet-stream' },
    body: options.body,
    signal: AbortSignal.timeout(120_000),
  });
  const text = await response.text();
  if (!response.ok)
    throw new Error(`send ${options.id} to ${options.topic}: HTTP ${response.status} ${text}`);
  return performance.now() - started;
}

/**
 * Retries `attempt` every 500 ms while it throws, for up to `timeoutMs` (a topic just created may
 * not have its partition running on every replica yet); rethrows the last error after that.
 */
export async function retrying<T>(what: string, timeoutMs: number, attempt: () => Promise<T>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (performance.now() > deadline) {
        throw new Error(`${what}: still failing after ${timeoutMs} ms: ${(error as Error).message}`, {
          cause: error,
        });
      }
      await sleep(500);
    }
  }
}

/**
 * Polls `probe` every `intervalMs` until it returns a value; a probe that throws counts as "not yet"
 * (a connector answers MESSAGE_NOT_FOUND until it has seen a message). Throws after `timeoutMs`,
 * with the last answer it got, or at once when `check` throws (a process died).
 */
export async function pollFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  intervalMs = 200,
  check?: () => void,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: string;
  for (;;) {
    check?.();
    try {
      const value = await probe();
      if (value !== undefined) return value;
      last = 'not there yet';
    } catch (error) {
      last = (error as Error).message;
    }
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last}`);
    }
    await sleep(intervalMs);
  }
}

// ---- audits ----

export const auditStatus = (auditor: ConnectorTarget, id: string): Promise<EscrowStatus> =>
  call<EscrowStatus>(auditor, 'GET', `/v1/audits/messages/${encodeURIComponent(id)}`, undefined, 30_000);

export const requestAudit = (
  auditor: ConnectorTarget,
  id: string,
  reason: string,
): Promise<AuditRequestResult> => call<AuditRequestResult>(auditor, 'POST', '/v1/audits', { id, reason });

export const approveAudit = (approver: ConnectorTarget, requestId: string): Promise<unknown> =>
  call(approver, 'POST', `/v1/audits/${encodeURIComponent(requestId)}/approve`);

export async function listAudits(auditor: ConnectorTarget): Promise<AuditSummary[]> {
  return (await call<{ audits: AuditSummary[] }>(auditor, 'GET', '/v1/audits')).audits;
}

export const fetchAudited = (
  auditor: ConnectorTarget,
  id: string,
  requestId: string,
): Promise<AuditFetchResult> =>
  call<AuditFetchResult>(
    auditor,
    'POST',
    `/v1/audits/messages/${encodeURIComponent(id)}/fetch?requestId=${encodeURIComponent(requestId)}`,
  );

// ---- the placer's log line ----

export interface PlacementTiming {
  readonly chunks: number;
  readonly splitMs: number;
  readonly distributeMs: number;
  readonly sealMs: number;
}

const placedMessage = 'escrowed chunks and key shares placed';

/**
 * The placer's "escrowed chunks and key shares placed" line for message `id` in the sender
 * connector's pino log, polled until it shows up (pino writes asynchronously, so the line may
 * follow the send's answer by a few milliseconds).
 */
export async function placementTiming(
  logFile: string,
  id: string,
  timeoutMs = 10_000,
): Promise<PlacementTiming> {
  return pollFor(`the "${placedMessage}" line for ${id} in ${logFile}`, timeoutMs, async () => {
    const text = readFileSync(logFile, 'utf8');
    const needle = `"id":${JSON.stringify(id)}`;
    for (let end = text.length; end > 0;) {
      const start = text.lastIndexOf('\n', end - 1) + 1;
      const line = text.slice(start, end);
      end = start - 1;
      if (!line.includes(needle) || !line.includes(placedMessage)) continue;
      const entry = JSON.parse(line) as Record<string, unknown>;
      const number = (key: string): number => {
        const value = entry[key];
        if (typeof value !== 'number') throw new Error(`log line for ${id} has no number ${key}: ${line}`);
        return value;
      };
      return {
        chunks: number('chunks'),
        splitMs: number('splitMs'),
        distributeMs: number('distributeMs'),
        sealMs: number('sealMs'),
      };
    }
    return undefined;
  });
}
