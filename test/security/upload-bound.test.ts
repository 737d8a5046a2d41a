// Security issue 11, item 12: an application's upload must be bounded by the topic's size policy
// before it costs the connector anything. The connector encrypted and stored every upload first and
// learnt from the ledger's refusal (MESSAGE_TOO_LARGE) that it was too big — then kept the
// ciphertext forever; nothing bounded a chunked upload, and with no request timeout a client could
// hold a request open without ever finishing its body.
//
// Shows, on a 4-node network over real TLS with org1's REST API (topic policy 1 MiB): a declared
// Content-Length over the policy is refused (422 MESSAGE_REJECTED, MESSAGE_TOO_LARGE) before the
// body is read; a chunked upload is cut as soon as it passes the bound; a batch message over it is
// refused before it is encrypted; a message the ledger refuses for any reason leaves nothing in
// storage; a stalled upload and a JSON body that never completes are cut after their timeouts; a
// JSON body over the small-route limit is OVERSIZE. Storage and the ledger are unchanged after each.
import { once } from 'node:events';
import { request } from 'node:http';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { generatedStream } from '../../src/client/testing/memory-connector.js';
import { SecurityNetwork, codeOf, waitFor } from './support.js';
import type { ApiClient } from './support.js';

const MiB = 1024 * 1024;
const net = new SecurityNetwork({ name: 'upload-bound', basePort: 24900, messageBytesMax: MiB });
let org1: ApiClient;

beforeAll(async () => {
  await net.startNodes();
  await net.startConnector('org1');
  org1 = await net.startApi('org1', { bodyReceiveTimeoutMs: 1_000, uploadIdleTimeoutMs: 1_000 });
}, 60_000);

afterAll(async () => {
  await net.stop();
}, 60_000);

/** What org1's connector holds, and the demo partition's next offset: an upload refused changes neither. */
async function snapshot(): Promise<{ files: string[]; offset: number }> {
  return {
    files: net.storageFiles('org1').map((file) => `${file.path} ${file.bytes}`),
    offset: await net.demoNextOffset(),
  };
}

/**
 * Waits (briefly) for org1's storage and the ledger to be as `before`: a refused upload's temporary
 * file goes once its stream is torn down, a moment after the answer.
 */
async function expectUnchanged(before: { files: string[]; offset: number }): Promise<void> {
  let now = await snapshot();
  for (
    const deadline = Date.now() + 5_000;
    JSON.stringify(now) !== JSON.stringify(before) && Date.now() < deadline;
  ) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    now = await snapshot();
  }
  expect(now).toEqual(before);
}

/** A raw HTTP request to org1's API, for what fetch will not do (stall, lie about the length). */
function rawRequest(method: string, path: string, headers: Record<string, string>): ClientRequest {
  const url = new URL(org1.url);
  const outgoing = request({
    host: url.hostname,
    port: url.port,
    method,
    path,
    headers: { authorization: `Bearer ${org1.token}`, ...headers },
  });
  outgoing.on('error', () => {});
  return outgoing;
}

/** The response, or 'closed' if the server hung up without one, or 'pending' after `ms`. */
async function answerWithin(
  outgoing: ClientRequest,
  ms: number,
): Promise<{ status: number; body: { error?: { code: string; message: string } } } | 'closed' | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const answered = new Promise<IncomingMessage | 'closed'>((resolve) => {
    outgoing.once('response', resolve);
    outgoing.once('close', () => resolve('closed'));
  });
  const result = await Promise.race([
    answered,
    new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms))),
  ]);
  clearTimeout(timer);
  if (typeof result === 'string') return result;
  const chunks: Buffer[] = [];
  for await (const chunk of result) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString();
  return { status: result.statusCode ?? 0, body: text.length === 0 ? {} : (JSON.parse(text) as never) };
}

describe('uploads over the topic policy', () => {
  it('refuses a declared Content-Length over the policy before reading the body', async () => {
    const before = await snapshot();
    const upload = rawRequest('POST', '/v1/topics/demo/messages?to=org2', {
      'content-type': 'application/octet-stream',
      'content-length': String(64 * MiB),
    });
    upload.write(Buffer.alloc(64 * 1024));
    // The rest of the 64 MiB never comes: the answer must not wait for it.
    const answer = await answerWithin(upload, 5_000);
    upload.destroy();
    expect(answer).toMatchObject({ status: 422, body: { error: { code: 'MESSAGE_REJECTED' } } });
    expect(typeof answer === 'object' && answer.body.error?.message).toMatch(/MESSAGE_TOO_LARGE/);
    await expectUnchanged(before);
  });

  it('cuts a chunked upload as soon as it passes the bound, storing nothing', async () => {
    const before = await snapshot();
    const upload = rawRequest('POST', '/v1/topics/demo/messages?to=org2', {
      'content-type': 'application/octet-stream',
    });
    const answered = answerWithin(upload, 30_000);
    const offered = 32 * MiB;
    let written = 0;
    let cut = false;
    upload.once('close', () => (cut = true));
    upload.once('response', () => (cut = true));
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    while (written < offered && !cut) {
      written += chunk.length;
      if (!upload.write(chunk)) {
        // The server may hang up instead (EPIPE): that, too, is the end of the upload.
        await Promise.race([once(upload, 'drain'), once(upload, 'close')]).catch(() => (cut = true));
      }
    }
    if (!cut) upload.end();
    const answer = await answered;
    upload.destroy();
    console.log(
      `upload-bound: a chunked upload was answered (${typeof answer === 'object' ? answer.status : answer}) ` +
        `after ${(written / MiB).toFixed(1)} MiB written`,
    );
    if (answer !== 'closed') {
      expect(answer).toMatchObject({ status: 422, body: { error: { code: 'MESSAGE_REJECTED' } } });
    }
    // The client's socket buffers take a few MiB more than the server read; never the whole offer.
    expect(written).toBeLessThan(offered / 2);
    await expectUnchanged(before);
  });

  it('refuses a batch message over the policy before it is encrypted or stored', async () => {
    const before = await snapshot();
    const answer = await org1.call('POST', '/v1/topics/demo/batch', {
      json: {
        messages: [
          { value: Buffer.from('small').toString('base64'), to: ['org2'] },
          { value: Buffer.alloc(MiB + 1).toString('base64'), to: ['org2'] },
        ],
      },
    });
    expect(answer.status).toBe(422);
    const { error } = answer.json() as { error: { code: string; message: string } };
    expect(error.code).toBe('MESSAGE_REJECTED');
    expect(error.message).toMatch(/MESSAGE_TOO_LARGE/);
    await expectUnchanged(before);
  });

  it('deletes the payloads a send stored before another of its payloads passed the bound', async () => {
    const before = await snapshot();
    const failed = await codeOf(
      net.connector('org1').send('demo', [
        { value: Readable.from([Buffer.alloc(1000, 1)]), to: ['org2'] },
        // No declared size: this one is refused only once it passes the bound, after the first is stored.
        { value: generatedStream(4 * MiB, 3), to: ['org2'] },
      ]),
    );
    expect(failed).toBe('MESSAGE_REJECTED');
    await expectUnchanged(before);
  });

  it('deletes what it stored when the ledger refuses the message for any reason', async () => {
    await waitFor('org1 to create a topic only org2 may receive on', async () => {
      const created = await org1.call('POST', '/v1/admin', {
        json: {
          kind: 'createTopic',
          name: 'narrow',
          partitions: 1,
          producers: ['org1'],
          consumers: ['org2'],
        },
      });
      if (created.status === 200) return true;
      if ((created.json() as { error: { retriable: boolean } }).error.retriable) return undefined;
      throw new Error(`createTopic: ${created.body.toString()}`);
    });
    const before = net.storageFiles('org1').map((file) => file.path);
    const refused = await waitFor('the ledger to refuse org3 as a recipient on narrow', async () => {
      const answer = await org1.call('POST', '/v1/topics/narrow/messages?to=org3', {
        body: Buffer.alloc(4096, 1),
        headers: { 'content-type': 'application/octet-stream' },
      });
      return answer.status === 422 || answer.status === 400 ? answer : undefined;
    });
    expect((refused.json() as { error: { message: string } }).error.message).toMatch(/RECIPIENT_NOT_ALLOWED/);
    expect(net.storageFiles('org1').map((file) => file.path)).toEqual(before);
  });
});

describe('request timeouts and body limits', () => {
  it('cuts an upload that stalls, and stores nothing', async () => {
    const before = await snapshot();
    const upload = rawRequest('POST', '/v1/topics/demo/messages?to=org2', {
      'content-type': 'application/octet-stream',
      'content-length': '100000',
    });
    upload.write(Buffer.alloc(1000));
    const answer = await answerWithin(upload, 5_000);
    upload.destroy();
    expect(answer).not.toBe('pending');
    await expectUnchanged(before);
  });

  it('cuts a JSON body that never completes', async () => {
    const stalled = rawRequest('POST', '/v1/admin', {
      'content-type': 'application/json',
      'content-length': '1000',
    });
    stalled.write('{"kind":');
    const answer = await answerWithin(stalled, 5_000);
    stalled.destroy();
    expect(answer).not.toBe('pending');
  });

  it('refuses a JSON body over the small-route limit with OVERSIZE', async () => {
    const padding = 'x'.repeat(2 * MiB);
    for (const [method, path] of [
      ['POST', '/v1/admin'],
      ['PUT', '/v1/consumer-groups/g/topics/demo'],
    ] as const) {
      const answer = await org1.call(method, path, { json: { padding } });
      expect(answer.status, path).toBe(400);
      expect((answer.json() as { error: { code: string } }).error.code).toBe('OVERSIZE');
    }
  });
});
