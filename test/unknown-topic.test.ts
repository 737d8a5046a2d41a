// Issue 13 item 3: a publish to a topic that does not exist is TOPIC_NOT_FOUND, which the REST
// API answers with the error table's 404 — on both send routes, through the real connector on a
// real four-node network (the REST mapping alone is covered by src/connector/http-api.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, errorInfo } from '../src/errors.js';
import { SecurityNetwork } from './security/support.js';
import type { ApiClient } from './security/support.js';

const net = new SecurityNetwork({ name: 'unknown-topic', basePort: 25600 });
let api: ApiClient;

beforeAll(async () => {
  await net.startNodes();
  await net.startConnector('org1');
  api = await net.startApi('org1');
}, 60_000);

afterAll(async () => {
  await net.stop();
}, 60_000);

describe('publishing to a topic that does not exist', () => {
  it('is TOPIC_NOT_FOUND with HTTP 404, as a batch and as a streamed message', async () => {
    expect(errorInfo(ErrorCode.TopicNotFound).httpStatus).toBe(404);
    const batch = await api.call('POST', '/v1/topics/no-such-topic/batch', {
      json: { messages: [{ value: Buffer.from('x').toString('base64'), to: ['org2'] }] },
    });
    expect({ status: batch.status, body: batch.json() }).toMatchObject({
      status: 404,
      body: { error: { code: 'TOPIC_NOT_FOUND', retriable: false } },
    });
    const streamed = await api.call('POST', '/v1/topics/no-such-topic/messages?to=org2', {
      body: 'x',
      headers: { 'content-type': 'text/plain' },
    });
    expect({ status: streamed.status, body: streamed.json() }).toMatchObject({
      status: 404,
      body: { error: { code: 'TOPIC_NOT_FOUND' } },
    });
    // The topic that exists is still served, so the 404 is about the name, not the network.
    const known = await api.call('POST', '/v1/topics/demo/batch', {
      json: { messages: [{ value: Buffer.from('x').toString('base64'), to: ['org2'] }] },
    });
    expect(known.status).toBe(200);
  }, 60_000);
});
