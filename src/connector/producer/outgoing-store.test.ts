import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { ConnectorContext } from '../context.js';
import { partsFixture } from '../testing/parts-fixture.js';
import type { PartsFixture } from '../testing/parts-fixture.js';
import { OutgoingStore } from './outgoing-store.js';

let fixture: PartsFixture;
let context: ConnectorContext;
let store: OutgoingStore;

beforeAll(async () => {
  fixture = partsFixture();
  context = await fixture.context(0);
  store = new OutgoingStore(context);
});

afterAll(async () => {
  await fixture.close();
});

const limit = { label: 'm', plaintextMax: 1024, declared: undefined, bytesMax: 4096 };

function message(id: string, value: string): { id: string; to: string[]; value: Readable } {
  return {
    id,
    to: [fixture.layout.network.organizations[1]!.id],
    value: Readable.from([Buffer.from(value)]),
  };
}

async function exists(key: string): Promise<boolean> {
  return (await context.storage.stat(key)) !== undefined;
}

describe('OutgoingStore', () => {
  it('stores a payload once: a second attempt of the same id reuses the first one’s ciphertext and partition', async () => {
    const first = await store.store('demo', 0, message('a', 'hello'), limit);
    expect(first.created).toBe(true);
    expect(first.metadata).toMatchObject({ id: 'a', topic: 'demo', partition: 0 });
    expect(await exists(first.storageKey)).toBe(true);
    const retry = message('a', 'hello');
    const again = await store.store('demo', 1, retry, limit);
    expect(again).toMatchObject({ created: false, storageKey: first.storageKey });
    expect(again.metadata.partition).toBe(0);
    expect(again.metadata.contentRoot).toEqual(first.metadata.contentRoot);
    expect(retry.value.readableEnded).toBe(true);
  });

  it('discards what a refused message stored: its row and its ciphertext', async () => {
    const stored = await store.store('demo', 0, message('b', 'refused'), limit);
    await store.discardUnpublished([stored]);
    expect(context.database.sent('demo', 'b')).toBeUndefined();
    expect(await exists(stored.storageKey)).toBe(false);
  });

  it('packs a small payload in the database to travel inline, and with inlinePayloads false stores it as a file', async () => {
    const packed = await store.store('demo', 0, message('small-packed', 'tiny'), limit);
    expect(packed.inline?.ciphertext.length).toBe(packed.metadata.size);
    expect(context.database.packed(packed.storageKey)).toEqual(Buffer.from(packed.inline!.ciphertext));
    const offChain = new OutgoingStore({ ...context, inlinePayloads: false });
    const filed = await offChain.store('demo', 0, message('small-filed', 'tiny'), limit);
    expect(filed.inline).toBeUndefined();
    expect(context.database.packed(filed.storageKey)).toBeUndefined();
    expect(await exists(filed.storageKey)).toBe(true);
    // Discarding a refused small message takes its packed payload with its row.
    await store.discardUnpublished([packed]);
    expect(context.database.packed(packed.storageKey)).toBeUndefined();
    expect(context.database.sent('demo', 'small-packed')).toBeUndefined();
  });

  it('refuses a value shorter than declared, leaving nothing behind', async () => {
    const error = await store
      .store('demo', 0, message('c', 'short'), { ...limit, plaintextMax: 10, declared: 10 })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LedgerbusError);
    expect((error as LedgerbusError).code).toBe(ErrorCode.SchemaMismatch);
    expect(context.database.sent('demo', 'c')).toBeUndefined();
  });
});
