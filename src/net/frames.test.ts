import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isLedgerbusError } from '../errors.js';
import { FrameDecoder, encodeFrame, frameHeader } from './frames.js';

describe('FrameDecoder', () => {
  it('decodes any sequence of frames however the stream is split', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (payloads, cutSeeds) => {
          const stream = Buffer.concat(payloads.map((payload) => encodeFrame(payload)));
          const cuts = [...new Set(cutSeeds.map((seed) => (stream.length === 0 ? 0 : seed % stream.length)))];
          cuts.sort((a, b) => a - b);
          const decoder = new FrameDecoder();
          const decoded: Buffer[] = [];
          let start = 0;
          for (const cut of [...cuts, stream.length]) {
            decoded.push(...decoder.push(stream.subarray(start, cut)));
            start = cut;
          }
          expect(decoded.map((frame) => Buffer.from(frame).toString('hex'))).toEqual(
            payloads.map((payload) => Buffer.from(payload).toString('hex')),
          );
          expect(decoder.pendingBytes).toBe(0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('returns many frames from one chunk, including empty ones', () => {
    const stream = Buffer.concat([
      encodeFrame(Buffer.from('a')),
      encodeFrame(Buffer.alloc(0)),
      encodeFrame(Buffer.from('bc')),
    ]);
    expect(new FrameDecoder().push(stream).map(String)).toEqual(['a', '', 'bc']);
  });

  it('rejects an oversize frame as soon as its header arrives', () => {
    const decoder = new FrameDecoder({ frameBytesMax: 10 });
    expect(decoder.push(encodeFrame(Buffer.alloc(10)))).toHaveLength(1);
    let thrown: unknown;
    try {
      decoder.push(frameHeader(11));
    } catch (error) {
      thrown = error;
    }
    expect(isLedgerbusError(thrown, ErrorCode.Oversize)).toBe(true);
    // The stream has lost its framing, so the decoder stays failed.
    expect(() => decoder.push(Buffer.alloc(1))).toThrow(/limit/);
  });

  it('hands over the whole frames read before an oversize header, then stays failed', () => {
    const decoder = new FrameDecoder({ frameBytesMax: 10 });
    const chunk = Buffer.concat([
      encodeFrame(Buffer.from('one')),
      encodeFrame(Buffer.from('two')),
      frameHeader(11),
    ]);
    expect(decoder.push(chunk).map(String)).toEqual(['one', 'two']);
    expect(isLedgerbusError(decoder.failed, ErrorCode.Oversize)).toBe(true);
    expect(() => decoder.push(encodeFrame(Buffer.from('three')))).toThrow(/limit/);
  });

  it('decodes a stream split into single bytes in linear time', () => {
    const payload = Buffer.alloc(1 << 20, 7);
    const stream = encodeFrame(payload);
    const decoder = new FrameDecoder();
    const frames: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) frames.push(...decoder.push(stream.subarray(i, i + 1)));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.equals(payload)).toBe(true);
  });
});
