/**
 * Writes the seed corpus of frame-decoder.fuzz.ts to corpus/frames/seed-*: valid RPC messages of
 * every type as frames, split several ways, plus oversize and truncated headers. Run it with
 * `npx tsx test/fuzz/guided/make-seed-corpus.ts` after changing the message schema.
 */
import { Buffer } from 'node:buffer';
import { mkdirSync, writeFileSync } from 'node:fs';
import { encodeFrame } from '../../../src/net/frames.js';
import { encodeRpcMessage } from '../../../src/net/rpc-messages.js';
import type { RpcMessage } from '../../../src/net/rpc-messages.js';
import { frameLimits } from './frame-decoder.fuzz.js';

const directory = new URL('./corpus/frames/', import.meta.url);

/** One fuzz input: the limit index, the chunk lengths, then the stream (see the target's layout). */
function input(frameBytesMax: number, chunkLengths: readonly number[], stream: Uint8Array): Buffer {
  const limit = frameLimits.indexOf(frameBytesMax);
  if (limit < 0) throw new Error(`${frameBytesMax} is not one of the target's limits`);
  return Buffer.from([limit, chunkLengths.length, ...chunkLengths, ...stream]);
}

const text = (value: string): Uint8Array => new TextEncoder().encode(value);

const messages: RpcMessage[] = [
  {
    type: 'request',
    id: 1,
    method: 'ledger.append',
    body: { topic: 'orders', keys: ['a', 'b'] },
    stream: false,
  },
  { type: 'request', id: 2, method: 'fetch', body: null, stream: true },
  { type: 'response', id: 1, body: [1, -2, 'three', text('four')] },
  { type: 'error', id: 3, code: 'TIMEOUT', message: 'no answer within 10 ms', retriable: true },
  { type: 'notify', channel: 'blocks', body: { height: 7 } },
  { type: 'stream-head', id: 2, head: { size: 3 } },
  { type: 'stream-data', id: 2, bytes: text('abc') },
  { type: 'stream-end', id: 2 },
  { type: 'cancel', id: 4 },
];
const frames = messages.map((message) => encodeFrame(encodeRpcMessage(message)));
const all = Buffer.concat(frames);

const seeds: Record<string, Buffer> = {
  'seed-empty-stream': input(1024, [], new Uint8Array(0)),
  'seed-empty-frame': input(0, [], encodeFrame(new Uint8Array(0))),
  'seed-all-messages-one-chunk': input(1024, [], all),
  'seed-all-messages-split': input(1024, [1, 3, 0, 5, 40, 2, 17, 255, 9], all),
  'seed-byte-at-a-time': input(
    64,
    Array.from({ length: 15 }, () => 1),
    frames[7]!,
  ),
  'seed-at-limit': input(16, [], encodeFrame(new Uint8Array(16).fill(0xa0))),
  'seed-oversize-header': input(16, [], Buffer.from([0, 0, 0, 17, 1, 2, 3])),
  'seed-oversize-max-header': input(4096, [2, 2], Buffer.from([0xff, 0xff, 0xff, 0xff])),
  'seed-oversize-after-frames': input(
    64,
    [6, 6],
    Buffer.concat([frames[7]!, frames[8]!, Buffer.from([0, 0, 1, 0])]),
  ),
  'seed-truncated-frame': input(1024, [3], frames[0]!.subarray(0, frames[0]!.length - 1)),
  'seed-binary-stream-data-tag': input(64, [], encodeFrame(Buffer.from([0xff, 0, 0, 0, 0, 0, 2, 9, 9]))),
};

mkdirSync(directory, { recursive: true });
for (const [name, bytes] of Object.entries(seeds)) writeFileSync(new URL(name, directory), bytes);
console.log(`wrote ${Object.keys(seeds).length} seeds to ${directory.pathname}`);
