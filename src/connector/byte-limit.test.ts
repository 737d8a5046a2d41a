import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { ByteLimit } from './byte-limit.js';

async function run(chunks: number[], limit: number): Promise<{ passed: number; error?: unknown }> {
  let passed = 0;
  const limiter = new ByteLimit(limit, (total) => new LedgerbusError(ErrorCode.Oversize, `${total}`));
  try {
    await pipeline(
      Readable.from(chunks.map((size) => Buffer.alloc(size))),
      limiter,
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) passed += chunk.length;
      },
    );
    return { passed };
  } catch (error) {
    return { passed, error };
  }
}

describe('ByteLimit', () => {
  it('passes a stream of exactly the limit', async () => {
    expect(await run([3, 4, 3], 10)).toEqual({ passed: 10 });
    expect(await run([], 0)).toEqual({ passed: 0 });
  });

  it('fails on the chunk that crosses the limit and passes none of it', async () => {
    const { passed, error } = await run([4, 4, 4, 4], 10);
    // The consumer may see the first two chunks or, when the failure overtakes them, none.
    expect(passed).toBeLessThanOrEqual(8);
    expect(error).toMatchObject({ code: 'OVERSIZE', message: '12' });
  });
});
