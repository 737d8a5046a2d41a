/**
 * `npm run bench:envelope`: encrypt and decrypt throughput of the payload envelope (src/crypto/
 * envelope), in memory, against the cryptographic primitives it is made of, timed in the same run.
 *
 * The envelope seals a payload in chunks (1 MiB by default): AES-256-GCM per chunk with the chunk's
 * index and a context hash as AAD, and SHA-256 of each ciphertext chunk for the signed chunk list;
 * per payload it also wraps the data key for each recipient and signs the header. Opening hashes each
 * chunk, checks it against the signed list, then decrypts and checks the tag. The reference does the
 * same per-chunk primitives directly with node:crypto over the same bytes (cipher + SHA-256 for
 * encryption, SHA-256 + decipher for decryption), with no streams, no copying and no per-payload work:
 * what this machine can do at best. ratio = envelope ÷ reference; what is missing is the envelope's
 * own overhead (streams, chunk reassembly, the header).
 *
 * The plaintext is bench/lib/payload.ts's deterministic payload, made in memory before any clock
 * starts, and the ciphertext is kept in memory too, so no disk is timed (src/crypto/envelope/
 * large.test.ts streams a payload through a file and checks the memory the envelope holds). Each run
 * times reference and envelope back to back, encryption then decryption, and each figure reported is
 * the best of the runs: on a shared machine other processes only ever take time away, so the fastest
 * run is the closest to what the code itself costs, for the envelope and the reference alike (every
 * run is in the JSON details). Decryption must give back the plaintext's sha256 (else the bench
 * throws).
 *
 * value = envelope encryption MiB/s (MiB = 2^20 bytes), best run; referenceValue = primitives' encryption MiB/s;
 * decryption's pair is in the summary.
 *
 * This used to run inside the unit suite (large.test.ts, "informative, not asserted"); it is a
 * benchmark, so it lives here.
 *
 * Options: --bytes N (default 64MiB; suffixes as bench/lib/payload.ts reads them), --chunk-bytes N
 * (default the envelope's 1 MiB), --runs N (default 5).
 */
import { Buffer } from 'node:buffer';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Readable, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { generateSigningKey } from '../src/crypto/keys.js';
import { SigningDomain } from '../src/crypto/sign.js';
import {
  decryptPayload,
  defaultChunkBytes,
  encryptPayload,
  generateEncryptionKey,
} from '../src/crypto/envelope/index.js';
import { formatBytes, parseByteSize, payloadStream } from './lib/payload.js';
import { round, writeBenchResult } from './lib/results.js';
import { showHelpIfAsked } from './lib/help.js';

const mib = 1024 * 1024;
const tagBytes = 16;
/** Context hash (32) || uint64-BE chunk index (8) || last-chunk flag (1), as the envelope's AAD. */
const aadBytes = 41;

interface Options {
  readonly bytes: number;
  readonly chunkBytes: number;
  readonly runs: number;
}

function parseOptions(): Options {
  showHelpIfAsked(import.meta.url);
  const { values } = parseArgs({
    options: {
      bytes: { type: 'string', default: '64MiB' },
      'chunk-bytes': { type: 'string' },
      runs: { type: 'string', default: '5' },
    },
    strict: true,
  });
  const runs = Number(values.runs);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  return {
    bytes: parseByteSize(values.bytes),
    chunkBytes:
      values['chunk-bytes'] === undefined ? defaultChunkBytes : parseByteSize(values['chunk-bytes']),
    runs,
  };
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

async function plaintextOf(bytes: number): Promise<{ plaintext: Buffer; sha256: string }> {
  const pieces: Buffer[] = [];
  for await (const piece of payloadStream(0, bytes)) pieces.push(piece as Buffer);
  const plaintext = Buffer.concat(pieces);
  return { plaintext, sha256: createHash('sha256').update(plaintext).digest('hex') };
}

function chunkNonce(index: number): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64BE(BigInt(index), 4);
  return nonce;
}

function chunkAad(binding: Buffer, index: number, last: boolean): Buffer {
  const aad = Buffer.alloc(aadBytes);
  binding.copy(aad, 0);
  aad.writeBigUInt64BE(BigInt(index), 32);
  aad[40] = last ? 1 : 0;
  return aad;
}

/** The reference: the envelope's per-chunk primitives, called directly. */
class Primitives {
  private readonly key = randomBytes(32);
  private readonly binding = randomBytes(32);
  private sealed: { body: Buffer; tag: Buffer; hash: Buffer }[] = [];

  constructor(
    private readonly plaintext: Buffer,
    private readonly chunkBytes: number,
  ) {}

  private get chunkCount(): number {
    return Math.max(1, Math.ceil(this.plaintext.length / this.chunkBytes));
  }

  encrypt(): number {
    const started = performance.now();
    const sealed: { body: Buffer; tag: Buffer; hash: Buffer }[] = [];
    const count = this.chunkCount;
    for (let index = 0; index < count; index++) {
      const chunk = this.plaintext.subarray(index * this.chunkBytes, (index + 1) * this.chunkBytes);
      const cipher = createCipheriv('aes-256-gcm', this.key, chunkNonce(index));
      cipher.setAAD(chunkAad(this.binding, index, index === count - 1));
      const body = cipher.update(chunk);
      cipher.final();
      const tag = cipher.getAuthTag();
      sealed.push({ body, tag, hash: createHash('sha256').update(body).update(tag).digest() });
    }
    const seconds = (performance.now() - started) / 1000;
    this.sealed = sealed;
    return seconds;
  }

  decrypt(): { seconds: number; sha256: string } {
    const output = createHash('sha256');
    let seconds = 0;
    const count = this.sealed.length;
    for (let index = 0; index < count; index++) {
      const { body, tag, hash } = this.sealed[index]!;
      const started = performance.now();
      if (!createHash('sha256').update(body).update(tag).digest().equals(hash))
        throw new Error(`reference: chunk ${index} does not match its hash`);
      const decipher = createDecipheriv('aes-256-gcm', this.key, chunkNonce(index));
      decipher.setAAD(chunkAad(this.binding, index, index === count - 1));
      decipher.setAuthTag(tag);
      const plaintext = decipher.update(body);
      decipher.final();
      seconds += (performance.now() - started) / 1000;
      // Hashing the output checks the round trip; it is not part of what is timed.
      output.update(plaintext);
    }
    return { seconds, sha256: output.digest('hex') };
  }
}

interface EnvelopeRun {
  readonly encryptSeconds: number;
  readonly decryptSeconds: number;
  readonly sha256: string;
  readonly ciphertextBytes: number;
}

const network = SigningDomain.of('bench-envelope');

async function envelopeRun(plaintext: Buffer, chunkBytes: number): Promise<EnvelopeRun> {
  const sender = network.signer(generateSigningKey());
  const recipient = generateEncryptionKey();
  // The source hands over 256 KiB views of the plaintext, as a file reader would hand over pieces.
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < plaintext.length; offset += 256 * 1024)
    pieces.push(plaintext.subarray(offset, offset + 256 * 1024));
  const ciphertext: Buffer[] = [];
  const encryptStarted = performance.now();
  const { header, ciphertextBytes } = await encryptPayload({
    source: Readable.from(pieces, { objectMode: false }),
    sink: new Writable({
      write(piece: Buffer, _encoding, callback) {
        ciphertext.push(piece);
        callback();
      },
    }),
    signer: sender,
    senderOrgId: 'sender',
    recipients: [{ orgId: 'receiver', publicKey: recipient.publicKey }],
    payloadId: 'bench',
    contentType: 'application/octet-stream',
    chunkBytes,
  });
  const encryptSeconds = (performance.now() - encryptStarted) / 1000;

  const output = createHash('sha256');
  let outputBytes = 0;
  let hashSeconds = 0;
  const decryptStarted = performance.now();
  for await (const piece of decryptPayload({
    header,
    ciphertext: Readable.from(ciphertext, { objectMode: false }),
    recipientOrgId: 'receiver',
    recipientKey: recipient,
    senderPublicKey: sender.publicKey,
    signing: network,
    expectedRoot: header.merkleRoot,
  })) {
    // As in the reference, hashing the output checks the round trip and is not timed.
    const hashStarted = performance.now();
    output.update(piece as Buffer);
    outputBytes += (piece as Buffer).length;
    hashSeconds += (performance.now() - hashStarted) / 1000;
  }
  const decryptSeconds = (performance.now() - decryptStarted) / 1000 - hashSeconds;
  if (outputBytes !== plaintext.length)
    throw new Error(`envelope: decrypted ${outputBytes} bytes, expected ${plaintext.length}`);
  return { encryptSeconds, decryptSeconds, sha256: output.digest('hex'), ciphertextBytes };
}

async function main(): Promise<void> {
  const options = parseOptions();
  progress(`making a ${formatBytes(options.bytes)} plaintext in memory (not timed)`);
  const { plaintext, sha256 } = await plaintextOf(options.bytes);
  const primitives = new Primitives(plaintext, options.chunkBytes);
  // Warm-up, not counted: JIT, the cipher and hash implementations, the key wrapping's first use.
  primitives.encrypt();
  primitives.decrypt();
  await envelopeRun(
    plaintext.subarray(0, Math.min(plaintext.length, 4 * options.chunkBytes)),
    options.chunkBytes,
  );

  const runs: {
    reference: { encryptSeconds: number; decryptSeconds: number };
    envelope: EnvelopeRun;
  }[] = [];
  for (let run = 1; run <= options.runs; run++) {
    const referenceEncrypt = primitives.encrypt();
    const referenceDecrypt = primitives.decrypt();
    if (referenceDecrypt.sha256 !== sha256) throw new Error('reference: the round trip changed the bytes');
    const envelope = await envelopeRun(plaintext, options.chunkBytes);
    if (envelope.sha256 !== sha256) throw new Error('envelope: the round trip changed the bytes');
    runs.push({
      reference: { encryptSeconds: referenceEncrypt, decryptSeconds: referenceDecrypt.seconds },
      envelope,
    });
    const rate = (seconds: number): string => `${Math.round(plaintext.length / mib / seconds)} MiB/s`;
    progress(
      `run ${run}/${options.runs}: envelope encrypt ${rate(envelope.encryptSeconds)}, ` +
        `decrypt ${rate(envelope.decryptSeconds)}; primitives encrypt ${rate(referenceEncrypt)}, ` +
        `decrypt ${rate(referenceDecrypt.seconds)}`,
    );
  }

  const mibPerSecond = (seconds: number): number => plaintext.length / mib / seconds;
  const best = (seconds: number[]): number => mibPerSecond(Math.min(...seconds));
  const encrypt = best(runs.map((run) => run.envelope.encryptSeconds));
  const decrypt = best(runs.map((run) => run.envelope.decryptSeconds));
  const referenceEncrypt = best(runs.map((run) => run.reference.encryptSeconds));
  const referenceDecrypt = best(runs.map((run) => run.reference.decryptSeconds));
  process.stdout.write(
    [
      `payload ${formatBytes(plaintext.length)}, chunks of ${formatBytes(options.chunkBytes)}, best of ${runs.length} runs`,
      `encrypt  envelope ${Math.round(encrypt)} MiB/s, primitives ${Math.round(referenceEncrypt)} MiB/s, ` +
        `ratio ${round(encrypt / referenceEncrypt, 2)}`,
      `decrypt  envelope ${Math.round(decrypt)} MiB/s, primitives ${Math.round(referenceDecrypt)} MiB/s, ` +
        `ratio ${round(decrypt / referenceDecrypt, 2)}`,
    ].join('\n') + '\n',
  );

  writeBenchResult({
    name: 'envelope',
    value: round(encrypt, 1),
    unit: 'MiB/s',
    reference: 'AES-256-GCM + SHA-256 per chunk, called directly with node:crypto (same run)',
    referenceValue: round(referenceEncrypt, 1),
    ratio: round(encrypt / referenceEncrypt),
    summary: {
      decryptMiBPerSecond: round(decrypt, 1),
      decryptReferenceMiBPerSecond: round(referenceDecrypt, 1),
      decryptRatio: round(decrypt / referenceDecrypt),
      payloadBytes: plaintext.length,
    },
    details: {
      options,
      ciphertextBytes: runs[0]?.envelope.ciphertextBytes,
      chunkTagBytes: tagBytes,
      runs: runs.map((run) => ({
        envelope: {
          encryptSeconds: round(run.envelope.encryptSeconds, 4),
          decryptSeconds: round(run.envelope.decryptSeconds, 4),
        },
        reference: {
          encryptSeconds: round(run.reference.encryptSeconds, 4),
          decryptSeconds: round(run.reference.decryptSeconds, 4),
        },
      })),
    },
  });
}

await main();
