import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkTagBytes } from '../../crypto/envelope/header.js';
import type { EnvelopeHeader } from '../../crypto/envelope/index.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import type { AcceptedMessage } from '../../proofs/index.js';
import { partsFixture } from '../testing/parts-fixture.js';
import type { PartsFixture } from '../testing/parts-fixture.js';
import { PayloadFetcher } from './payload-fetcher.js';

let fixture: PartsFixture;
let fetcher: PayloadFetcher;

beforeAll(async () => {
  fixture = partsFixture();
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
