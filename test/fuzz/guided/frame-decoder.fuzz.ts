/**
 * Coverage-guided fuzz target (Jazzer.js) for the wire path a peer controls end to end: a byte
 * stream, split into chunks however TCP likes, reassembled by FrameDecoder, each frame decoded as an
 * RPC message (canonical CBOR, then the message schema). See README.md here for how to run it.
 *
 * Input layout, so that the fuzzer's mutations choose the limit and the chunking too:
 *   byte 0        frameBytesMax, one of `frameLimits` (index = byte % length)
 *   byte 1        n = byte % 16: how many chunk lengths follow
 *   bytes 2..2+n  chunk lengths (0..255; a zero pushes an empty chunk)
 *   the rest      the stream; whatever the lengths leave over is pushed as one final chunk
 *
 * Properties (any other outcome throws an Error, which Jazzer.js reports as a finding):
 *   - only LedgerbusError escapes FrameDecoder.push and decodeRpcMessage, and push throws exactly
 *     when the stream announces a frame above the limit, with code Oversize, and keeps throwing;
 *   - no frame is longer than frameBytesMax;
 *   - encodeFrame of the frames, in order, reproduces the stream prefix they were read from, and
 *     the decoder holds precisely the rest (see pendingBytes below), never a complete frame;
 *   - a frame that decodes re-encodes (encodeRpcMessage) to exactly the same bytes: canonical CBOR
 *     admits one encoding per message.
 * The fast-check suite in ../decoders.test.ts checks FrameDecoder against a reference reader for
 * random streams; this target adds coverage guidance and the RPC decode behind the frames.
 */
import { Buffer } from 'node:buffer';
import { ErrorCode, isLedgerbusError } from '../../../src/errors.js';
import { FrameDecoder, encodeFrame, frameHeaderBytes } from '../../../src/net/frames.js';
import { decodeRpcMessage, encodeRpcMessage } from '../../../src/net/rpc-messages.js';
import type { RpcMessage } from '../../../src/net/rpc-messages.js';

/** Small limits, so that oversize headers and frames exactly at the limit are easy to reach. */
export const frameLimits: readonly number[] = [0, 1, 4, 7, 16, 64, 255, 1024, 4096];
const chunkCountMax = 16;

/** How one input is read: the limit, the chunks pushed in order, and their concatenation. */
export interface FrameFuzzPlan {
  readonly frameBytesMax: number;
  readonly chunks: readonly Buffer[];
  readonly stream: Buffer;
}

export function planFrameInput(data: Uint8Array): FrameFuzzPlan {
  const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const frameBytesMax = frameLimits[(input[0] ?? 0) % frameLimits.length]!;
  const lengthCount = (input[1] ?? 0) % chunkCountMax;
  const lengths = [...input.subarray(2, 2 + lengthCount)];
  // Copy: the decoder may return views of the chunks, and Jazzer.js reuses its input buffer.
  const stream = Buffer.from(input.subarray(Math.min(input.length, 2 + lengthCount)));
  const chunks: Buffer[] = [];
  let at = 0;
  for (const length of lengths) {
    const end = Math.min(stream.length, at + length);
    chunks.push(stream.subarray(at, end));
    at = end;
  }
  if (at < stream.length || chunks.length === 0) chunks.push(stream.subarray(at));
  return { frameBytesMax, chunks, stream };
}

/** Thrown for anything but a LedgerbusError, and whenever a property fails. */
function violated(plan: FrameFuzzPlan, message: string, cause?: unknown): never {
  throw new Error(
    `frame fuzz property violated (frameBytesMax ${plan.frameBytesMax}, ` +
      `chunks ${plan.chunks.map((chunk) => chunk.length).join('+')}): ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

/** What the decoder must do with the bytes it has not returned: hold a partial frame, or refuse it. */
function expectedTail(tail: Buffer, frameBytesMax: number): 'partial' | 'oversize' | 'complete' {
  if (tail.length < frameHeaderBytes) return 'partial';
  const length = tail.readUInt32BE(0);
  if (length > frameBytesMax) return 'oversize';
  return frameHeaderBytes + length <= tail.length ? 'complete' : 'partial';
}

/** Decodes one frame as RpcPeer does (rpc.ts `receive`, CBOR messages) and checks the round trip. */
function checkRpcFrame(plan: FrameFuzzPlan, frame: Buffer): void {
  let message: RpcMessage;
  try {
    message = decodeRpcMessage(frame, plan.frameBytesMax);
  } catch (error) {
    if (isLedgerbusError(error)) return;
    violated(plan, `decodeRpcMessage threw a non-LedgerbusError on ${frame.toString('hex')}`, error);
  }
  let again: Uint8Array;
  try {
    again = encodeRpcMessage(message);
  } catch (error) {
    violated(plan, `a decoded message does not re-encode: ${frame.toString('hex')}`, error);
  }
  if (!Buffer.from(again.buffer, again.byteOffset, again.byteLength).equals(frame)) {
    violated(plan, `message ${frame.toString('hex')} re-encodes as ${Buffer.from(again).toString('hex')}`);
  }
}

/** After an oversize header the stream has no framing left: every later push throws Oversize. */
function checkStaysFailed(plan: FrameFuzzPlan, decoder: FrameDecoder): void {
  try {
    decoder.push(Buffer.alloc(0));
  } catch (again) {
    if (isLedgerbusError(again, ErrorCode.Oversize)) return;
    violated(plan, 'a failed decoder threw something other than its Oversize error', again);
  }
  violated(plan, 'a failed decoder accepted another push');
}

/** Runs one input through the properties above; returns normally when they all hold. */
export function checkFrameInput(data: Uint8Array): void {
  const plan = planFrameInput(data);
  const decoder = new FrameDecoder({ frameBytesMax: plan.frameBytesMax });
  const frames: Buffer[] = [];
  let pushed = 0;
  let consumed = 0;
  pushing: for (const chunk of plan.chunks) {
    pushed += chunk.length;
    let completed: Buffer[];
    try {
      completed = decoder.push(chunk);
    } catch (error) {
      if (!isLedgerbusError(error)) violated(plan, 'FrameDecoder.push threw a non-LedgerbusError', error);
      if (error.code !== ErrorCode.Oversize) {
        violated(plan, `FrameDecoder.push threw ${error.code}, not ${ErrorCode.Oversize}`, error);
      }
      // A push throws only when it completed no frame before the bad header (frames it did complete
      // are returned, with `failed` set; below), so the oversize header is the first unreturned one.
      if (expectedTail(plan.stream.subarray(consumed, pushed), plan.frameBytesMax) !== 'oversize') {
        violated(plan, 'Oversize thrown, but the first unreturned header is not above the limit');
      }
      checkStaysFailed(plan, decoder);
      break pushing;
    }
    for (const frame of completed) {
      if (frame.length > plan.frameBytesMax) {
        violated(plan, `a ${frame.length}-byte frame exceeds the ${plan.frameBytesMax}-byte limit`);
      }
      const encoded = encodeFrame(frame);
      if (!encoded.equals(plan.stream.subarray(consumed, consumed + encoded.length))) {
        violated(plan, `frame ${frames.length} does not re-encode to the stream bytes at ${consumed}`);
      }
      consumed += encoded.length;
      frames.push(frame);
    }
    if (decoder.failed !== undefined) {
      if (!isLedgerbusError(decoder.failed, ErrorCode.Oversize)) {
        violated(plan, 'a decoder failed with something other than Oversize', decoder.failed);
      }
      if (expectedTail(plan.stream.subarray(consumed, pushed), plan.frameBytesMax) !== 'oversize') {
        violated(
          plan,
          'push returned frames and failed, but the next unreturned header is not above the limit',
        );
      }
      checkStaysFailed(plan, decoder);
      break pushing;
    }
    // pendingBytes leaves out the header of a frame whose payload is still incomplete (it is parsed
    // as soon as it arrives), although its doc says "bytes received but not yet returned".
    const unreturned = pushed - consumed;
    const pending = unreturned >= frameHeaderBytes ? unreturned - frameHeaderBytes : unreturned;
    if (consumed > pushed || decoder.pendingBytes !== pending) {
      violated(plan, `pendingBytes ${decoder.pendingBytes}, expected ${pending} (${unreturned} unreturned)`);
    }
    const verdict = expectedTail(plan.stream.subarray(consumed, pushed), plan.frameBytesMax);
    if (verdict !== 'partial')
      violated(plan, `push returned, but the unreturned bytes hold a ${verdict} frame`);
  }
  for (const frame of frames) checkRpcFrame(plan, frame);
}

/** The Jazzer.js entry point (its default name, `fuzz`). */
export function fuzz(data: Buffer): void {
  checkFrameInput(data);
}
