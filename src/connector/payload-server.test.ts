import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFetchRequest } from '../contracts/fetch.js';
import { nonceBytes } from '../contracts/transactions.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { RpcStreamReply } from '../net/index.js';
import type { ConnectorContext } from './context.js';
import { PayloadServer } from './payload-server.js';
import { partsFixture } from './testing/parts-fixture.js';
import type { PartsFixture } from './testing/parts-fixture.js';

let fixture: PartsFixture;
let sender: ConnectorContext;
let recipient: ConnectorContext;
let outsider: ConnectorContext;
let server: PayloadServer;

beforeAll(async () => {
  fixture = partsFixture();
  [sender, recipient, outsider] = await Promise.all([
    fixture.context(0),
    fixture.context(1),
    fixture.context(2),
  ]);
  server = new PayloadServer(sender);
  const stored = await sender.storage.put(Readable.from([Buffer.from('ciphertext')]));
  sender.database.insertSent({
    id: 'm1',
    topic: 'demo',
    partition: 0,
    group_id: 'demo/0',
    header: new Uint8Array([7]),
    storage_key: stored.key,
    size: stored.size,
    recipients: JSON.stringify([recipient.organization]),
    created_at: 1,
  });
});

afterAll(async () => {
  await fixture.close();
});

/** A fetch request for `id`, signed by `by` in the name of `requester` (by default, itself). */
function fetchRequest(by: ConnectorContext, id = 'm1', requester = by.organization): Uint8Array {
  return encodeFetchRequest(
    { requester, partitionId: 'demo/0', id, nonce: randomBytes(nonceBytes), timestamp: fixture.clock.now() },
    by.signer,
  );
}

async function codeOf(serve: () => unknown): Promise<string> {
  try {
    await serve();
  } catch (error) {
    expect(error).toBeInstanceOf(LedgerbusError);
    return (error as LedgerbusError).code;
  }
  throw new Error('expected a refusal');
}

describe('PayloadServer', () => {
  it('streams the stored ciphertext, headed by its envelope header, to a recipient', async () => {
    const reply = await server.serve({ group: 'demo/0', fetchRequest: fetchRequest(recipient) });
    expect(reply).toBeInstanceOf(RpcStreamReply);
    expect([...(reply.head as { header: Uint8Array }).header]).toEqual([7]);
    expect(await text(reply.source)).toBe('ciphertext');
  });

  it('serves one fetch request once', async () => {
    const request = fetchRequest(recipient);
    (await server.serve({ group: 'demo/0', fetchRequest: request })).source.destroy();
    expect(await codeOf(() => server.serve({ group: 'demo/0', fetchRequest: request }))).toBe(
      ErrorCode.Replay,
    );
  });

  it('refuses a forged requester, a non-recipient, an unknown message', async () => {
    expect(
      await codeOf(() =>
        server.serve({ group: 'demo/0', fetchRequest: fetchRequest(outsider, 'm1', recipient.organization) }),
      ),
    ).toBe(ErrorCode.BadSignature);
    expect(await codeOf(() => server.serve({ group: 'demo/0', fetchRequest: fetchRequest(outsider) }))).toBe(
      ErrorCode.NotRecipient,
    );
    expect(
      await codeOf(() => server.serve({ group: 'demo/0', fetchRequest: fetchRequest(recipient, 'm2') })),
    ).toBe(ErrorCode.PayloadNotFound);
  });
});
