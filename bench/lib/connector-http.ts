/**
 * The few calls of a connector's REST API (src/connector/http-api.ts) the data-path benchmark makes,
 * with no SDK in between: a streamed send, the received list (long-poll), the latest sequence.
 */
import { request } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReceivedMessage, SendResult } from '../../src/connector/api-types.js';

export interface ConnectorTarget {
  readonly url: string;
  readonly token: string;
}

export interface StreamedSend {
  readonly result: SendResult;
  /** performance.now() when the last body byte was handed to the socket. */
  readonly uploadedAt: number;
  /** performance.now() when the acknowledgement (the response) arrived. */
  readonly acknowledgedAt: number;
}

function readBody(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => (text += chunk));
    response.on('end', () => resolve(text));
    response.on('error', reject);
  });
}

/**
 * POST /v1/topics/:topic/messages?to=…&id=… with `source` streamed as the body (Content-Length
 * `bytes`, so no chunked encoding), at the pace the connector reads it.
 */
export function postStreamed(
  target: ConnectorTarget,
  options: { topic: string; to: string; id: string; source: Readable; bytes: number },
): Promise<StreamedSend> {
  const url = new URL(
    `/v1/topics/${encodeURIComponent(options.topic)}/messages?to=${encodeURIComponent(options.to)}&id=${encodeURIComponent(options.id)}`,
    target.url,
  );
  return new Promise<StreamedSend>((resolve, reject) => {
    let uploadedAt: number | undefined;
    let uploadError: Error | undefined;
    const outgoing = request(url, {
      method: 'POST',
      agent: false,
      headers: {
        authorization: `Bearer ${target.token}`,
        'content-type': 'application/octet-stream',
        'content-length': String(options.bytes),
      },
    });
    outgoing.once('response', (response) => {
      readBody(response).then((text) => {
        const acknowledgedAt = performance.now();
        if (response.statusCode !== 200) {
          reject(new Error(`send refused: HTTP ${response.statusCode} ${text}`));
          return;
        }
        resolve({
          result: JSON.parse(text) as SendResult,
          uploadedAt: uploadedAt ?? acknowledgedAt,
          acknowledgedAt,
        });
      }, reject);
    });
    pipeline(options.source, outgoing).then(
      () => {
        uploadedAt = performance.now();
      },
      (error: Error) => {
        uploadError = error;
        // An early error answer explains more than the broken pipe it causes: give it a moment.
        setTimeout(
          () => reject(new Error(`send failed while uploading: ${uploadError?.message}`)),
          2000,
        ).unref();
      },
    );
  });
}

async function getJson<T>(target: ConnectorTarget, path: string, signal?: AbortSignal): Promise<T> {
  const response = await fetch(new URL(path, target.url), {
    headers: { authorization: `Bearer ${target.token}` },
    ...(signal === undefined ? {} : { signal }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

export async function latestSequence(target: ConnectorTarget): Promise<number> {
  return (await getJson<{ sequence: number }>(target, '/v1/latest-sequence')).sequence;
}

/**
 * Long-polls GET /v1/received until message `id` is listed (stored, verified and decrypted), and
 * resolves with it and the performance.now() at which the answer arrived. `check` runs between polls
 * and may throw to give up (a process died, the send failed).
 */
export async function waitForReceived(
  target: ConnectorTarget,
  options: { topic: string; id: string; after: number; timeoutMs: number; check?: () => void },
): Promise<{ message: ReceivedMessage; at: number }> {
  const deadline = performance.now() + options.timeoutMs;
  let after = options.after;
  for (;;) {
    options.check?.();
    const remaining = deadline - performance.now();
    if (remaining <= 0) throw new Error(`message ${options.id} not received within ${options.timeoutMs} ms`);
    const waitMs = Math.max(1, Math.min(5_000, Math.floor(remaining)));
    const { messages } = await getJson<{ messages: ReceivedMessage[] }>(
      target,
      `/v1/received?topic=${encodeURIComponent(options.topic)}&after=${after}&limit=100&waitMs=${waitMs}`,
      AbortSignal.timeout(waitMs + 30_000),
    );
    const at = performance.now();
    const found = messages.find((message) => message.id === options.id);
    if (found !== undefined) return { message: found, at };
    const last = messages.at(-1);
    if (last !== undefined) after = last.sequence;
  }
}
