// Security issue 11, item 9: the content type of a message is the sender's to choose, and its
// recipients' connectors serve it back to their own applications (browsers included). A content type
// carrying CR/LF or another control character made the recipient's download fail (500) instead of the
// sender's publish (400); one such as text/html was served as-is, to be rendered or sniffed.
//
// Shows, on a 4-node network over real TLS with the REST APIs of org1 (an honest sender) and org2 (a
// recipient), and org3 played by hand (its registered key, its own `servePayload` answers): a
// content type that is not a syntactically valid media type — control characters above all — is
// refused at publish with 400 SCHEMA_MISMATCH before anything is stored or published; payloads are
// served as downloads browsers do not sniff (`Content-Disposition: attachment`,
// `X-Content-Type-Options: nosniff`); and a content type that reached the ledger anyway (a sender
// that bypasses its connector: the contract does not check it) is served as application/octet-stream.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedMessage } from '../../src/connector/api-types.js';
import { HostileSender, SecurityNetwork, metadataOf, randomId, waitFor } from './support.js';
import type { ApiClient } from './support.js';

const net = new SecurityNetwork({ name: 'content-type', basePort: 24880 });
let org1: ApiClient;
let org2: ApiClient;
let org3: HostileSender;

beforeAll(async () => {
  await net.startNodes();
  await net.startConnector('org1');
  await net.startConnector('org2');
  org1 = await net.startApi('org1');
  org2 = await net.startApi('org2');
  org3 = await HostileSender.connect(net, 'org3', 'node3');
}, 60_000);

afterAll(async () => {
  org3?.close();
  await net.stop();
}, 60_000);

async function receivedAtOrg2(id: string): Promise<ReceivedMessage> {
  return waitFor(`org2 to store ${id}`, async () => {
    const answer = await org2.call('GET', `/v1/received/demo/0/${id}`);
    return answer.status === 200 ? (answer.json() as ReceivedMessage) : undefined;
  });
}

describe('content types at publish', () => {
  const refused = [
    'text/html\r\nSet-Cookie: session=stolen',
    'text/plain\n',
    'text/plain\u0000',
    'text/plain\u007f',
    'text/plain\tx',
    'html',
    'text/',
    '/plain',
    'text/plain; charset',
    'text/plain; charset="unterminated',
    'tëxt/plain',
    ' text/plain',
    `application/${'x'.repeat(130)}`,
  ];

  it('refuses one that is not a valid media type with 400 SCHEMA_MISMATCH, storing and publishing nothing', async () => {
    const offsetBefore = await net.demoNextOffset();
    const payloadsBefore = net.storedPayloads('org1');
    for (const contentType of refused) {
      const answer = await org1.call('POST', '/v1/topics/demo/batch', {
        json: { messages: [{ value: Buffer.from('hello').toString('base64'), to: ['org2'], contentType }] },
      });
      expect(answer.status, JSON.stringify(contentType)).toBe(400);
      const { error } = answer.json() as { error: { code: string; message: string } };
      expect(error.code).toBe('SCHEMA_MISMATCH');
      expect(error.message).toMatch(/contentType/);
    }
    // A streamed upload: its Content-Type header is the message's content type. HTTP itself cannot
    // carry a CR/LF there; what it can carry must still be a media type the ledger will take.
    for (const contentType of ['not a media type', 'text/plain; charset', `application/${'x'.repeat(130)}`]) {
      const streamed = await fetch(`${org1.url}/v1/topics/demo/messages?to=org2`, {
        method: 'POST',
        headers: { authorization: `Bearer ${org1.token}`, 'content-type': contentType },
        body: Readable.toWeb(Readable.from([Buffer.alloc(64 * 1024)])) as ReadableStream,
        duplex: 'half',
      } as RequestInit);
      expect(streamed.status, contentType).toBe(400);
      expect(((await streamed.json()) as { error: { code: string } }).error.code).toBe('SCHEMA_MISMATCH');
    }
    expect(await net.demoNextOffset()).toBe(offsetBefore);
    expect(net.storedPayloads('org1')).toBe(payloadsBefore);
  });

  it('accepts the media types applications use', async () => {
    for (const contentType of [
      'application/json',
      'text/plain; charset=utf-8',
      'multipart/form-data; boundary="a b;c"',
      'application/vnd.api+json',
      'IMAGE/PNG',
    ]) {
      const answer = await org1.call('POST', '/v1/topics/demo/batch', {
        json: { messages: [{ value: Buffer.from('ok').toString('base64'), to: ['org2'], contentType }] },
      });
      expect(answer.status, `${contentType}: ${answer.body.toString()}`).toBe(200);
    }
  });
});

describe('content types at download', () => {
  it('serves a payload as an attachment browsers do not sniff, with the type the sender gave', async () => {
    const id = randomId('html');
    const sent = await org1.call('POST', `/v1/topics/demo/messages?to=org2&id=${id}`, {
      body: '<script>alert(document.cookie)</script>',
      headers: { 'content-type': 'text/html; charset=utf-8' },
    });
    expect(sent.status).toBe(200);
    await receivedAtOrg2(id);
    for (const path of [`/v1/received/demo/0/${id}/payload`, `/v1/received/${id}/payload`]) {
      const payload = await org2.call('GET', path);
      expect(payload.status).toBe(200);
      expect(payload.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(payload.headers.get('x-content-type-options')).toBe('nosniff');
      expect(payload.headers.get('content-disposition')).toBe('attachment');
      expect(payload.body.toString()).toBe('<script>alert(document.cookie)</script>');
    }
  });

  it('serves a content type that reached the ledger unchecked as application/octet-stream, not a 500', async () => {
    const id = randomId('crlf');
    const hostile = 'text/html\r\nSet-Cookie: session=stolen';
    const sealed = await org3.seal({
      id,
      plaintext: Readable.from([Buffer.from('<b>hi</b>')]),
      recipients: ['org2'],
      contentType: hostile,
    });
    org3.offerSealed(id, sealed);
    const result = await org3.publish(
      metadataOf(id, {
        size: sealed.ciphertextBytes,
        contentRoot: sealed.header.merkleRoot,
        contentType: hostile,
      }),
    );
    expect(result).toMatchObject({ status: 'OK', messages: [{ status: 'ACCEPTED' }] });
    const message = await receivedAtOrg2(id);
    // The JSON view says what the ledger says (JSON escapes it); the download does not trust it.
    expect(message.contentType).toBe(hostile);
    const payload = await org2.call('GET', `/v1/received/demo/0/${id}/payload`);
    expect(payload.status).toBe(200);
    expect(payload.headers.get('content-type')).toBe('application/octet-stream');
    expect(payload.headers.get('set-cookie')).toBeNull();
    expect(payload.headers.get('x-content-type-options')).toBe('nosniff');
    expect(payload.headers.get('content-disposition')).toBe('attachment');
    expect(payload.body.toString()).toBe('<b>hi</b>');
  });
});
