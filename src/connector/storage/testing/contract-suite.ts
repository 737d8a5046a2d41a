/**
 * The PayloadStorage contract, run unchanged against every adapter (filesystem.test.ts,
 * postgres.test.ts), so the connector can switch backends without a change in behaviour.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, isLedgerbusError } from '../../../errors.js';
import type { PayloadStorage } from '../types.js';
import { digestOf, generated, generatedDigest } from './generated.js';

export interface StorageHarness {
  open(): Promise<PayloadStorage>;
  /** Traces of unfinished puts the adapter left behind: temporary files, orphan chunk rows. */
  leftovers(): Promise<number>;
}

const MiB = 1024 * 1024;
const memoryPayloadBytes = 256 * MiB;
const memoryGrowthMaxBytes = 100 * 1000 * 1000;

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error: unknown = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(isLedgerbusError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
}

/** Runs `operation`, sampling RSS every few ms; the growth is the peak over the value at the start. */
async function measurePeakGrowth<T>(operation: () => Promise<T>): Promise<{ result: T; growth: number }> {
  const before = process.memoryUsage.rss();
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 2);
  try {
    const result = await operation();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, growth: peak - before };
  } finally {
    clearInterval(timer);
  }
}

export function describeStorageContract(name: string, harness: StorageHarness): void {
  describe(`PayloadStorage contract: ${name}`, () => {
    let storage: PayloadStorage;
    beforeAll(async () => {
      storage = await harness.open();
    });
    afterAll(async () => {
      await storage.close();
    });

    async function putGenerated(size: number, seed: number): Promise<string> {
      const payload = generated(size, seed);
      const stored = await storage.put(payload.stream);
      expect(stored).toEqual({ key: payload.sha256(), size });
      return stored.key;
    }

    // First, so that no earlier test's freed memory hides growth. A small put warms up code paths.
    // Put and get are measured from their own baselines: each must be bounded on its own.
    it('puts and reads back 256 MiB with bounded memory', { timeout: 300_000 }, async () => {
      await storage.delete(await putGenerated(MiB, 9_000));
      const payload = generated(memoryPayloadBytes, 9_001);
      const put = await measurePeakGrowth(() => storage.put(payload.stream));
      expect(put.result).toEqual({ key: payload.sha256(), size: memoryPayloadBytes });
      const key = put.result.key;
      const get = await measurePeakGrowth(async () => digestOf(await storage.get(key)));
      expect(get.result).toEqual({ sha256: key, size: memoryPayloadBytes });
      console.log(
        `${name}: 256 MiB peak RSS growth: put ${(put.growth / MiB).toFixed(1)} MiB, ` +
          `get ${(get.growth / MiB).toFixed(1)} MiB`,
      );
      await storage.delete(key);
      expect(put.growth).toBeLessThan(memoryGrowthMaxBytes);
      expect(get.growth).toBeLessThan(memoryGrowthMaxBytes);
    });

    it.each([
      ['0 B', 0],
      ['1 B', 1],
      ['1 MiB + 1', MiB + 1],
      ['64 MiB', 64 * MiB],
    ])('round-trips %s', { timeout: 120_000 }, async (_label, size) => {
      const key = await putGenerated(size, size);
      expect(await storage.stat(key)).toEqual({ key, size });
      expect(await digestOf(await storage.get(key))).toEqual({ sha256: key, size });
    });

    it('stores the same content once, returning the same key', async () => {
      const first = await putGenerated(3 * MiB + 5, 11);
      const second = await putGenerated(3 * MiB + 5, 11);
      expect(second).toBe(first);
      const concurrent = await Promise.all([putGenerated(2 * MiB, 12), putGenerated(2 * MiB, 12)]);
      expect(concurrent[0]).toBe(concurrent[1]);
      expect(await harness.leftovers()).toBe(0);
      expect(await digestOf(await storage.get(first))).toEqual({ sha256: first, size: 3 * MiB + 5 });
    });

    it('stores nothing when the content does not match expectedSha256', async () => {
      const actual = await generatedDigest(2 * MiB + 3, 21);
      const wrong = 'ab'.repeat(32);
      await expectCode(
        storage.put(generated(2 * MiB + 3, 21).stream, { expectedSha256: wrong }),
        ErrorCode.HashMismatch,
      );
      expect(await storage.stat(actual.sha256)).toBeUndefined();
      expect(await storage.stat(wrong)).toBeUndefined();
      expect(await harness.leftovers()).toBe(0);
      const stored = await storage.put(generated(2 * MiB + 3, 21).stream, { expectedSha256: actual.sha256 });
      expect(stored.key).toBe(actual.sha256);
      await expectCode(
        storage.put(generated(1, 22).stream, { expectedSha256: actual.sha256.toUpperCase() }),
        ErrorCode.InvalidKey,
      );
    });

    it('refuses more than sizeMax bytes and stores nothing', async () => {
      const payload = await generatedDigest(2 * MiB, 31);
      await expectCode(storage.put(generated(2 * MiB, 31).stream, { sizeMax: MiB }), ErrorCode.Oversize);
      await expectCode(
        storage.put(generated(2 * MiB, 31).stream, { sizeMax: 2 * MiB - 1 }),
        ErrorCode.Oversize,
      );
      expect(await storage.stat(payload.sha256)).toBeUndefined();
      expect(await harness.leftovers()).toBe(0);
      const stored = await storage.put(generated(2 * MiB, 31).stream, { sizeMax: 2 * MiB });
      expect(stored).toEqual({ key: payload.sha256, size: 2 * MiB });
    });

    it('stores nothing and passes the error on when the source fails mid-stream', async () => {
      const whole = await generatedDigest(3 * MiB, 41);
      for (const failAt of [0, 1, MiB, Math.floor(1.5 * MiB)]) {
        const failure = new Error(`source broke at ${failAt}`);
        const payload = generated(3 * MiB, 41, { failAfter: { bytes: failAt, error: failure } });
        const caught = await storage.put(payload.stream).then(
          () => undefined,
          (error: unknown) => error,
        );
        expect(caught).toBe(failure);
        expect(await harness.leftovers()).toBe(0);
        const prefix = await generatedDigest(failAt, 41);
        if (failAt > 0) expect(await storage.stat(prefix.sha256)).toBeUndefined();
      }
      expect(await storage.stat(whole.sha256)).toBeUndefined();
    });

    it('streams from a byte offset, for resuming', async () => {
      const size = 2 * MiB + MiB / 2 + 7;
      const key = await putGenerated(size, 51);
      for (const start of [0, 1, MiB - 1, MiB, MiB + 3, 2 * MiB, size - 1, size]) {
        expect(await digestOf(await storage.get(key, { start })), `start ${start}`).toEqual(
          await generatedDigest(size, 51, start),
        );
      }
      for (const start of [size + 1, -1, 0.5, Number.NaN]) {
        await expectCode(storage.get(key, { start }), ErrorCode.InvalidRange);
      }
    });

    it('deletes', async () => {
      const key = await putGenerated(MiB + 9, 61);
      expect(await storage.delete(key)).toBe(true);
      expect(await storage.stat(key)).toBeUndefined();
      await expectCode(storage.get(key), ErrorCode.PayloadNotFound);
      expect(await storage.delete(key)).toBe(false);
      expect(await putGenerated(MiB + 9, 61)).toBe(key);
      expect(await digestOf(await storage.get(key))).toEqual({ sha256: key, size: MiB + 9 });
    });

    it('reports absent objects', async () => {
      const absent = 'cd'.repeat(32);
      expect(await storage.stat(absent)).toBeUndefined();
      await expectCode(storage.get(absent), ErrorCode.PayloadNotFound);
      expect(await storage.delete(absent)).toBe(false);
    });

    it('rejects keys that are not 64 lowercase hex characters', async () => {
      const valid = await putGenerated(10, 71);
      const invalid = [
        '',
        '../../../../etc/passwd',
        `../${valid.slice(3)}`,
        valid.toUpperCase(),
        valid.slice(1),
        `${valid}0`,
        `${valid.slice(0, 63)}g`,
        `${valid.slice(0, 2)}/${valid.slice(3)}`,
        `tmp:${valid.slice(4)}`,
      ];
      for (const key of invalid) {
        await expectCode(storage.get(key), ErrorCode.InvalidKey);
        await expectCode(storage.stat(key), ErrorCode.InvalidKey);
        await expectCode(storage.delete(key), ErrorCode.InvalidKey);
      }
      expect(await storage.stat(valid)).toEqual({ key: valid, size: 10 });
    });

    it('keeps what was stored across a reopen', async () => {
      const key = await putGenerated(MiB + 77, 81);
      const reopened = await harness.open();
      try {
        expect(await reopened.stat(key)).toEqual({ key, size: MiB + 77 });
        expect(await digestOf(await reopened.get(key))).toEqual({ sha256: key, size: MiB + 77 });
      } finally {
        await reopened.close();
      }
    });

    it('refuses work once closed', async () => {
      const closed = await harness.open();
      await closed.close();
      await expectCode(closed.stat('ef'.repeat(32)), ErrorCode.StorageUnavailable);
    });
  });
}
