/**
 * Counting bytes as they stream, to stop a stream the moment it passes what it may carry: a payload
 * a peer serves, a body an application uploads. Refusing at the crossing byte (not after the whole
 * stream was read, buffered or stored) is what keeps an oversize stream from costing more than the
 * bound plus what was in flight.
 */
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { assert } from '../errors.js';

export class ByteLimit extends Transform {
  private seen = 0;

  /**
   * Passes at most `limit` bytes; the chunk that crosses it fails the stream with `refusal(total)`
   * (`total` counts that chunk too) and passes nothing of itself.
   */
  constructor(
    readonly limit: number,
    private readonly refusal: (total: number) => Error,
  ) {
    super();
    assert(Number.isSafeInteger(limit) && limit >= 0, 'a byte limit is a non-negative integer');
  }

  /** Bytes passed so far. */
  get bytes(): number {
    return this.seen;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) {
      callback(this.refusal(this.seen));
      return;
    }
    callback(null, chunk);
  }
}
