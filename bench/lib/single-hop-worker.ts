/**
 * One end of the single-hop reference transfer of bench/datapath.ts (see lib/single-hop.ts, which
 * starts two of these as separate processes):
 *
 *   receive --bytes N --segment-bytes S [--tls]
 *       listens on 127.0.0.1 (a free port), prints {"event":"ready","port","encryptionKey"}, takes ONE
 *       connection, runs `decryptPayload` over what arrives and sha256-hashes the plaintext (which is
 *       then discarded), prints {"event":"done",...} and exits.
 *   send --port P --recipient-key HEX --bytes N --segment-bytes S [--tls]
 *       prints {"event":"ready"}, waits for a line on stdin, then connects and streams the benchmark
 *       payload (lib/payload.ts) through `encryptPayload` into the socket; prints {"event":"done"}.
 *
 * Why segments: an envelope header signs the hashes of all of its chunks, so it exists only after
 * the last chunk is encrypted, while `decryptPayload` checks the header before reading a byte. A
 * receiver of one 4 GiB envelope would have to keep 4 GiB of ciphertext somewhere before decrypting
 * any of it. So the payload goes as consecutive envelopes of S bytes (default 16 MiB): S bytes of
 * ciphertext, then that envelope's header, then the next. The receiver keeps about two segments of
 * ciphertext, and decrypts one while the next arrives. Per segment this adds one HPKE wrap/unwrap and
 * one Ed25519 sign/verify, well under 1% of the work of encrypting 16 MiB.
 *
 * Wire format (A → B): 32-byte Ed25519 public key of the sender, then per segment: ciphertext
 * (its length follows from the segment's plaintext length, 1 MiB chunks and 16-byte tags), uint32-BE
 * header length, canonical CBOR header. Plain TCP, or TLS 1.3 with --tls (ledgerbus's own links are
 * TLS 1.3; the receiver's certificate is a throwaway self-signed one the sender does not check).
 */
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { createConnection, createServer } from 'node:net';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Readable, Writable } from 'node:stream';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { connect as connectTls, createServer as createTlsServer } from 'node:tls';
import { parseArgs } from 'node:util';
import { SigningDomain, generateSigningKey } from '../../src/crypto/index.js';

import {
  decodeEnvelopeHeader,
  decryptPayload,
  defaultChunkBytes,
  encodeEnvelopeHeader,
  encryptPayload,
  generateEncryptionKey,
} from '../../src/crypto/envelope/index.js';
import { tlsIdentityFor } from '../../src/net/tls-identity.js';
import { readProcessCpuSeconds, readProcessMemory } from '../../test/support/process-memory.js';
import { payloadStream } from './payload.js';

/** Both ends of the single hop are in one network; which one does not change the cost. */
const benchNetwork = SigningDomain.of('ledgerbus-bench');

const senderOrgId = 'org1';
const recipientOrgId = 'org2';
const tagBytes = 16;

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function selfStats(): Record<string, number | undefined> {
  const memory = readProcessMemory(process.pid);
  return {
    pid: process.pid,
    rssBytes: memory?.rssBytes,
    hwmBytes: memory?.hwmBytes,
    cpuSeconds: readProcessCpuSeconds(process.pid),
  };
}

/** Plaintext byte ranges of the segments. */
function segments(bytes: number, segmentBytes: number): { start: number; end: number }[] {
  const list: { start: number; end: number }[] = [];
  for (let start = 0; start < bytes; start += segmentBytes) {
    list.push({ start, end: Math.min(bytes, start + segmentBytes) });
  }
  return list;
}

function ciphertextBytes(plaintextBytes: number): number {
  return plaintextBytes + tagBytes * Math.max(1, Math.ceil(plaintextBytes / defaultChunkBytes));
}

// ---- receiving ----

/** Reads exact byte counts from a socket, buffering at most about `highWaterBytes` before pausing it. */
class SocketReader {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private failure: Error | undefined;
  private waiter: { bytes: number; resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly highWaterBytes: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.buffered >= this.highWaterBytes) socket.pause();
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', (error) => {
      this.failure = error;
      this.wake();
    });
  }

  /** The next `bytes` bytes, as the received pieces (no copy unless a piece is split). */
  async read(bytes: number): Promise<Buffer[]> {
    if (this.buffered < bytes) {
      // Never wait paused for more than the high-water mark allows.
      this.socket.resume();
      await new Promise<void>((resolve, reject) => {
        this.waiter = { bytes, resolve, reject };
        this.wake();
      });
    }
    const pieces: Buffer[] = [];
    let wanted = bytes;
    while (wanted > 0) {
      const head = this.chunks[0]!;
      if (head.length <= wanted) {
        pieces.push(head);
        this.chunks.shift();
        wanted -= head.length;
      } else {
        pieces.push(head.subarray(0, wanted));
        this.chunks[0] = head.subarray(wanted);
        wanted = 0;
      }
    }
    this.buffered -= bytes;
    if (this.buffered < this.highWaterBytes) this.socket.resume();
    return pieces;
  }

  async readBuffer(bytes: number): Promise<Buffer> {
    return Buffer.concat(await this.read(bytes));
  }

  private wake(): void {
    const waiter = this.waiter;
    if (waiter === undefined) return;
    if (this.buffered >= waiter.bytes) {
      this.waiter = undefined;
      waiter.resolve();
    } else if (this.failure !== undefined || this.ended) {
      this.waiter = undefined;
      waiter.reject(
        this.failure ?? new Error(`connection ended ${waiter.bytes - this.buffered} bytes short`),
      );
    }
  }
}

async function receive(options: { bytes: number; segmentBytes: number; tls: boolean }): Promise<void> {
  const encryptionKey = generateEncryptionKey();
  const connection = new Promise<Socket>((resolve) => {
    const server = options.tls
      ? createTlsServer({ ...tlsOptions(), minVersion: 'TLSv1.3' }, (socket) => {
          server.close();
          resolve(socket);
        })
      : createServer((socket) => {
          server.close();
          resolve(socket);
        });
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      emit({
        event: 'ready',
        port: typeof address === 'object' && address !== null ? address.port : 0,
        encryptionKey: Buffer.from(encryptionKey.publicKey).toString('hex'),
      });
    });
  });
  const socket = await connection;
  const cpuBefore = readProcessCpuSeconds(process.pid) ?? 0;
  const started = performance.now();
  const reader = new SocketReader(socket, 2 * ciphertextBytes(options.segmentBytes));
  const senderPublicKey = new Uint8Array(await reader.readBuffer(32));
  const hash = createHash('sha256');
  let plaintextBytes = 0;
  const list = segments(options.bytes, options.segmentBytes);
  for (const [index, segment] of list.entries()) {
    const ciphertext = await reader.read(ciphertextBytes(segment.end - segment.start));
    const headerLength = (await reader.readBuffer(4)).readUInt32BE(0);
    const header = decodeEnvelopeHeader(await reader.readBuffer(headerLength));
    const plaintext = decryptPayload({
      header,
      ciphertext: Readable.from(ciphertext, { objectMode: false }),
      recipientOrgId,
      recipientKey: encryptionKey,
      senderPublicKey,
      signing: benchNetwork,
      expectedPayloadId: `segment-${index}`,
      expectedSenderOrgId: senderOrgId,
    });
    for await (const piece of plaintext) {
      hash.update(piece as Buffer);
      plaintextBytes += (piece as Buffer).length;
      // Let the socket be read while this segment is decrypted: receiving and decrypting overlap.
      await yieldToEventLoop();
    }
  }
  const seconds = (performance.now() - started) / 1000;
  socket.destroy();
  emit({
    event: 'done',
    bytes: plaintextBytes,
    sha256: hash.digest('hex'),
    segments: list.length,
    seconds,
    cpuSecondsDuring: (readProcessCpuSeconds(process.pid) ?? 0) - cpuBefore,
    ...selfStats(),
  });
}

let identity: { cert: string; key: string } | undefined;
function tlsOptions(): { cert: string; key: string } {
  if (identity === undefined) throw new Error('TLS identity not made yet');
  return identity;
}

// ---- sending ----

/** A per-segment sink: writes into the socket with its backpressure, and does not end it. */
function socketSink(socket: Socket): Writable {
  return new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      if (socket.write(chunk)) {
        callback();
        return;
      }
      const onDrain = (): void => {
        socket.off('close', onClose);
        callback();
      };
      const onClose = (): void => {
        socket.off('drain', onDrain);
        callback(new Error('the receiver closed the connection'));
      };
      socket.once('drain', onDrain);
      socket.once('close', onClose);
    },
    final(callback) {
      callback();
    },
  });
}

async function send(options: {
  port: number;
  recipientKey: Uint8Array;
  bytes: number;
  segmentBytes: number;
  tls: boolean;
}): Promise<void> {
  const signingKey = generateSigningKey();
  emit({ event: 'ready' });
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
  process.stdin.destroy();
  const cpuBefore = readProcessCpuSeconds(process.pid) ?? 0;
  const started = performance.now();
  const socket = await new Promise<Socket>((resolve, reject) => {
    const socket = options.tls
      ? connectTls(
          {
            host: '127.0.0.1',
            port: options.port,
            minVersion: 'TLSv1.3',
            rejectUnauthorized: false,
          },
          () => resolve(socket),
        )
      : createConnection({ host: '127.0.0.1', port: options.port }, () => resolve(socket));
    socket.once('error', reject);
  });
  socket.write(Buffer.from(signingKey.publicKey));
  for (const [index, segment] of segments(options.bytes, options.segmentBytes).entries()) {
    const { header } = await encryptPayload({
      source: payloadStream(segment.start, segment.end),
      sink: socketSink(socket),
      signer: benchNetwork.signer(signingKey),
      senderOrgId,
      recipients: [{ orgId: recipientOrgId, publicKey: options.recipientKey }],
      payloadId: `segment-${index}`,
      contentType: 'application/octet-stream',
    });
    const encoded = encodeEnvelopeHeader(header);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(encoded.length);
    socket.write(length);
    socket.write(encoded);
  }
  await new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    socket.end();
  });
  emit({
    event: 'done',
    seconds: (performance.now() - started) / 1000,
    cpuSecondsDuring: (readProcessCpuSeconds(process.pid) ?? 0) - cpuBefore,
    ...selfStats(),
  });
}

// ---- main ----

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      'recipient-key': { type: 'string' },
      bytes: { type: 'string' },
      'segment-bytes': { type: 'string' },
      tls: { type: 'boolean', default: false },
    },
  });
  const role = positionals[0];
  const bytes = Number(values.bytes);
  const segmentBytes = Number(values['segment-bytes']);
  if (!Number.isSafeInteger(bytes) || bytes < 1 || !Number.isSafeInteger(segmentBytes) || segmentBytes < 1) {
    throw new Error('--bytes and --segment-bytes must be positive integers');
  }
  if (values.tls) {
    const { certPem, keyPem } = await tlsIdentityFor(generateSigningKey(), 'ledgerbus-bench');
    identity = { cert: certPem, key: keyPem };
  }
  if (role === 'receive') {
    await receive({ bytes, segmentBytes, tls: values.tls });
  } else if (role === 'send') {
    const recipientKey = Buffer.from(values['recipient-key'] ?? '', 'hex');
    if (recipientKey.length !== 32) throw new Error('--recipient-key must be 32 bytes of hex');
    await send({ port: Number(values.port), recipientKey, bytes, segmentBytes, tls: values.tls });
  } else {
    throw new Error('usage: single-hop-worker.ts receive|send ...');
  }
}

await main();
