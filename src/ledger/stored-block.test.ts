import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodedBlockFromStored, storedBlockBytes } from './stored-block.js';

describe('storedBlockBytes / encodedBlockFromStored', () => {
  const repetitive = new TextEncoder().encode('{"contentType":"application/octet-stream"}'.repeat(40));

  it('deflates repetitive bytes behind the 0x00 marker and inflates them back exactly', () => {
    const stored = storedBlockBytes(repetitive);
    expect(stored[0]).toBe(0x00);
    expect(stored.length).toBeLessThan(repetitive.length / 4);
    expect(encodedBlockFromStored(stored)).toEqual(repetitive);
  });

  it('keeps small and incompressible encodings as they are', () => {
    const small = repetitive.subarray(0, 200);
    expect(storedBlockBytes(small)).toBe(small);
    const random = new Uint8Array(randomBytes(4096));
    random[0] = 0xa4; // a canonical block starts with a CBOR map
    expect(storedBlockBytes(random)).toBe(random);
    expect(encodedBlockFromStored(random)).toBe(random);
  });

  it('throws on a damaged deflated blob', () => {
    expect(() => encodedBlockFromStored(new Uint8Array([0x00, 0xff, 0xff, 0xff]))).toThrow();
  });
});
