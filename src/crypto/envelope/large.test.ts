import { Buffer } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../keys.js';
import { SigningDomain } from '../sign.js';
import { decryptPayload, encryptPayload } from './envelope.js';
import { generateEncryptionKey } from './keys.js';

const network = SigningDomain.of('envelope-testnet');

/*
 * A 64 MiB payload streamed through a file, with memory sampled all along: the envelope must hold
 * about a chunk at a time, never the payload. Throughput is measured by `npm run bench:envelope`
 * (bench/envelope.ts), not here.
 */

const payloadBytes = 64 * 1024 * 1024;
const pieceBytes = 64 * 1024;
const mib = 1024 * 1024;
const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-envelope-large-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

/** Deterministic, incompressible-looking plaintext produced lazily in 64 KiB pieces. */
function plaintextSource(onPiece: (piece?: Buffer) => void): Readable {
  const block = randomBytes(mib + pieceBytes);
  let produced = 0;
  return new Readable({
    highWaterMark: pieceBytes,
    read() {
      if (produced >= payloadBytes) {
        onPiece();
        this.push(null);
        return;
      }
      const offset = (produced / pieceBytes) % (mib / pieceBytes);
      // A fresh copy per piece, so the source allocates as a real file reader would.
      const piece = Buffer.from(block.subarray(offset * 1024, offset * 1024 + pieceBytes));
      onPiece(piece);
      this.push(piece);
      produced += pieceBytes;
    },
  });
}

function memoryInUse(): number {
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

// V8 collects dead Buffers lazily (tens of MiB may wait for a GC), which says nothing about what
// the envelope keeps alive. Collecting before some samples measures live memory; other samples are
// taken as they come and only logged.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

describe('a 64 MiB payload', () => {
  it('round-trips through a file with memory growth far below the payload size', async () => {
    const sender = network.signer(generateSigningKey());
    const recipient = generateEncryptionKey();
    const path = join(directory, 'payload.bin');
    collectGarbage();
    const baseline = memoryInUse();
    let peakLive = baseline;
    let peakLazy = baseline;
    let sampledBytes = 0;
    const sample = (bytes: number): void => {
      peakLazy = Math.max(peakLazy, memoryInUse());
      // Every 2 MiB of payload on either side. A second full GC first waits for the concurrent
      // sweeping of the first, which is what releases dead Buffers' memory.
      sampledBytes += bytes;
      if (sampledBytes >= 2 * mib) {
        sampledBytes = 0;
        collectGarbage();
        collectGarbage();
        peakLive = Math.max(peakLive, memoryInUse());
      }
    };

    const inputHash = createHash('sha256');
    const source = plaintextSource((piece) => {
      if (piece !== undefined) inputHash.update(piece);
      sample(piece?.length ?? 0);
    });
    const { header, ciphertextBytes } = await encryptPayload({
      source,
      sink: createWriteStream(path),
      signer: sender,
      senderOrgId: 'sender',
      recipients: [{ orgId: 'receiver', publicKey: recipient.publicKey }],
      payloadId: 'large',
      contentType: 'application/octet-stream',
    });
    expect(statSync(path).size).toBe(ciphertextBytes);
    expect(header.chunkCount).toBe(64);

    const outputHash = createHash('sha256');
    let outputBytes = 0;
    await new Promise<void>((resolve, reject) => {
      decryptPayload({
        header,
        ciphertext: createReadStream(path, { highWaterMark: pieceBytes }),
        recipientOrgId: 'receiver',
        recipientKey: recipient,
        senderPublicKey: sender.publicKey,
        signing: network,
        expectedRoot: header.merkleRoot,
      })
        .on('error', reject)
        .pipe(
          new Writable({
            write(piece: Buffer, _encoding, callback) {
              sample(piece.length);
              outputHash.update(piece);
              outputBytes += piece.length;
              callback();
            },
          }),
        )
        .on('finish', resolve)
        .on('error', reject);
    });

    expect(outputBytes).toBe(payloadBytes);
    expect(outputHash.digest('hex')).toBe(inputHash.digest('hex'));
    const live = peakLive - baseline;
    const lazy = peakLazy - baseline;
    console.log(
      `envelope 64 MiB via file: peak heap+arrayBuffers growth: live ${(live / mib).toFixed(1)} MiB, ` +
        `without forcing GC ${(lazy / mib).toFixed(1)} MiB`,
    );
    // Holding the payload would take 64 MiB; streaming holds a few 1 MiB chunks.
    expect(live).toBeLessThan(12 * mib);
    expect(lazy).toBeLessThan(payloadBytes);
  });
});
