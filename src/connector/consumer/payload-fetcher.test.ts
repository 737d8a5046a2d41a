import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InlinePayload } from '../../contracts/transactions.js';
import { chunkTagBytes } from '../../crypto/envelope/header.js';
import type { EnvelopeHeader } from '../../crypto/envelope/index.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { AcceptedMessage } from '../../proofs/index.js';
import type { ConnectorContext } from '../context.js';
import { OutgoingStore } from '../producer/outgoing-store.js';
import { partsFixture, startNodeStandIn } from '../testing/parts-fixture.js';
import type { PartsFixture } from '../testing/parts-fixture.js';
import { BulkConnectionPool, PayloadFetcher } from './payload-fetcher.js';

let fixture: PartsFixture;
let fetcher: PayloadFetcher;
let sender: ConnectorContext;

beforeAll(async () => {
  fixture = partsFixture();
  sender = await fixture.context(0);
  const context = await fixture.context(1);
  const node = context.registry.nodes()[0]!;
  const session = fixture.session(context, 1, node);
  fetcher = new PayloadFetcher({ ...context, session });
});

afterAll(async () => {
  await fixture.close();
});

/** What checkServedSize reads of a message the ledger accepted with `size` ciphertext bytes. */
function accepted(size: number): AcceptedMessage {
  return { id: 'm1', topic: 'demo', sender: 'org1', size } as AcceptedMessage;
}

/** What it reads of a served envelope header. */
function header(plaintextBytes: number, chunkCount: number): EnvelopeHeader {
  return { plaintextBytes, chunkCount } as EnvelopeHeader;
}

function codeOf(check: () => unknown): string {
  try {
    check();
  } catch (error) {
    expect(error).toBeInstanceOf(LedgerbusError);
    return (error as LedgerbusError).code;
  }
  return 'accepted';
}

describe('PayloadFetcher.checkServedSize', () => {
  it('returns the ciphertext length when the header implies exactly the size accepted on-chain', () => {
    const size = 1_000 + 2 * chunkTagBytes;
    expect(fetcher.checkServedSize(accepted(size), header(1_000, 2))).toBe(size);
  });

  it('refuses more than declared as OVERSIZE and less as PAYLOAD_CORRUPT, neither retriable', () => {
    const size = 1_000 + 2 * chunkTagBytes;
    expect(codeOf(() => fetcher.checkServedSize(accepted(size), header(1_001, 2)))).toBe(ErrorCode.Oversize);
    expect(codeOf(() => fetcher.checkServedSize(accepted(size), header(999, 2)))).toBe(
      ErrorCode.PayloadCorrupt,
    );
  });

  it('refuses a size past the topic’s messageBytesMax even when declared so on-chain', () => {
    const size = 2 * 1024 * 1024;
    expect(codeOf(() => fetcher.checkServedSize(accepted(size), header(size - chunkTagBytes, 1)))).toBe(
      ErrorCode.Oversize,
    );
  });
});

describe('PayloadFetcher.openInline', () => {
  /** A small message org1 sealed for org2, as its publish carries it, and what the ledger accepted of it. */
  async function sealed(
    id: string,
    value: Buffer,
  ): Promise<{ accepted: AcceptedMessage; inline: InlinePayload }> {
    const to = [fixture.layout.network.organizations[1]!.id];
    const limit = { label: id, plaintextMax: 4096, declared: undefined, bytesMax: 8192 };
    const stored = await new OutgoingStore(sender).store(
      'demo',
      0,
      { id, to, value: Readable.from([value]) },
      limit,
    );
    if (stored.inline === undefined) throw new Error('a small payload is sealed inline');
    const { metadata } = stored;
    const accepted = {
      ...metadata,
      partitionId: 'demo/0',
      offset: 0,
      sender: sender.organization,
      signerKey: sender.signer.publicKey,
      height: 1,
      acceptedAt: 0,
      metadata,
    } as AcceptedMessage;
    return { accepted, inline: stored.inline };
  }

  it('opens a payload carried in its publish, checked as a fetched one', async () => {
    const value = Buffer.from('carried along');
    const { accepted, inline } = await sealed('inline-ok', value);
    expect(await fetcher.openInline(accepted, inline)).toEqual(value);
  });

  it('refuses a changed byte, a cut ciphertext and another message’s payload as PAYLOAD_CORRUPT', async () => {
    const { accepted, inline } = await sealed('inline-a', Buffer.alloc(300, 1));
    const other = await sealed('inline-b', Buffer.alloc(300, 1));
    const flipped = Buffer.from(inline.ciphertext);
    flipped[5] = (flipped[5] ?? 0) ^ 1;
    const cases: InlinePayload[] = [
      { header: inline.header, ciphertext: flipped },
      { header: inline.header, ciphertext: inline.ciphertext.subarray(0, inline.ciphertext.length - 1) },
      other.inline,
    ];
    for (const each of cases) {
      const error = await fetcher.openInline(accepted, each).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(LedgerbusError);
      expect((error as LedgerbusError).code).toBe(ErrorCode.PayloadCorrupt);
    }
  });
});

describe('bulk connections', () => {
  it('are handed from one page’s workers to the next instead of opened per page (one TLS handshake, not one per payload)', async () => {
    const standIn = await startNodeStandIn('org3', {});
    const context = await fixture.context(2);
    const session = fixture.session(context, 2, standIn.node);
    const pages = new PayloadFetcher({ ...context, session });
    try {
      const firstPage = pages.connections();
      const used = await firstPage.for('org1', 'demo/0');
      firstPage.close();
      expect(used.closed).toBe(false);
      const secondPage = pages.connections();
      expect(await secondPage.for('org1', 'demo/0')).toBe(used);
      // Two workers at once never share a socket.
      const otherWorker = pages.connections();
      const other = await otherWorker.for('org1', 'demo/0');
      expect(other).not.toBe(used);
      secondPage.close();
      otherWorker.close();
      // A discarded connection (a cancelled stream may still be on it) is closed, never handed on.
      const third = pages.connections();
      const reused = await third.for('org1', 'demo/0');
      third.discard('org1', 'demo/0');
      expect(reused.closed).toBe(true);
      third.close();
      pages.close();
      expect(used.closed && other.closed).toBe(true);
    } finally {
      session.close();
      await standIn.close();
    }
  });

  /** A pool of organization `index`'s connector over a node stand-in, on a clock the test moves. */
  async function withPool(
    index: number,
    body: (pool: BulkConnectionPool, clock: { now: number }) => Promise<void>,
  ): Promise<void> {
    const standIn = await startNodeStandIn('org3', {});
    const context = await fixture.context(index);
    const session = fixture.session(context, index, standIn.node);
    const clock = { now: 0 };
    try {
      await body(new BulkConnectionPool(session, () => clock.now), clock);
    } finally {
      session.close();
      await standIn.close();
    }
  }

  it('are kept per sender and partition, and every idle one is closed once unused for 30 s', () =>
    withPool(0, async (pool, clock) => {
      const forA = await pool.acquire('org1', 'demo/0');
      pool.release('org1', 'demo/0', forA);
      const forB = await pool.acquire('org1', 'demo/1');
      expect(forB).not.toBe(forA);
      clock.now += 30_000;
      // Any later use of the pool closes what idled too long, for every sender and partition.
      pool.release('org1', 'demo/1', forB);
      expect(forA.closed).toBe(true);
      expect(forB.closed).toBe(false);
      pool.close();
    }));

  it('are not reused once idle past 30 s, nor kept past 32 per sender, nor after the pool closed', () =>
    withPool(3, async (pool, clock) => {
      const stale = await pool.acquire('org1', 'demo/0');
      pool.release('org1', 'demo/0', stale);
      clock.now += 30_000;
      const fresh = await pool.acquire('org1', 'demo/0');
      expect(fresh).not.toBe(stale);
      expect(stale.closed).toBe(true);
      const many = await Promise.all(Array.from({ length: 33 }, () => pool.acquire('org1', 'demo/0')));
      for (const peer of many) pool.release('org1', 'demo/0', peer);
      expect(many.filter((peer) => peer.closed)).toHaveLength(1);
      pool.close();
      expect(many.every((peer) => peer.closed)).toBe(true);
      pool.release('org1', 'demo/0', fresh);
      expect(fresh.closed).toBe(true);
    }));
});
