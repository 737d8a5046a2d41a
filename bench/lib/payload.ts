/**
 * The deterministic benchmark payload: any size, generated on the fly (never held whole, never a
 * temporary file), the same bytes in every process that asks for it.
 *
 * The payload is a sequence of 256 KiB pieces. Piece i is a 256 KiB window of a fixed 4 MiB block of
 * AES-256-CTR keystream (fixed key, so incompressible-looking and identical everywhere), at an offset
 * that depends on i, with i written as a uint64-BE into its first 8 bytes. Stamping every piece with
 * its index makes the payload aperiodic: a transfer that duplicates, drops or reorders pieces (or
 * whole 1 MiB envelope chunks) cannot end with the right sha256.
 *
 * Making a piece costs one 256 KiB memcpy, which a reader of a real file would pay too.
 */
import { Buffer } from 'node:buffer';
import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';

export const pieceBytes = 256 * 1024;
const blockBytes = 4 * 1024 * 1024;
const offsetSlots = (blockBytes - pieceBytes) / 64 + 1;

let blockCache: Buffer | undefined;

function block(): Buffer {
  if (blockCache === undefined) {
    const key = createHash('sha256').update('ledgerbus bench payload').digest();
    const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
    blockCache = Buffer.concat([cipher.update(Buffer.alloc(blockBytes)), cipher.final()]);
  }
  return blockCache;
}

/** Writes bytes [from, from + target.length) of piece `index` into `target`. */
function fillPiece(index: number, from: number, target: Buffer): void {
  const source = block();
  // Multiplicative hashing spreads consecutive pieces over the block, 64-byte aligned.
  const offset = (Math.imul(index, 0x9e3779b1) >>> 0) % offsetSlots;
  const start = offset * 64 + from;
  source.copy(target, 0, start, start + target.length);
  if (from < 8) {
    const stamp = Buffer.alloc(8);
    stamp.writeBigUInt64BE(BigInt(index));
    stamp.copy(target, 0, from, Math.min(8, from + target.length));
  }
}

/**
 * Bytes [start, end) of the payload as a byte stream, produced as fast as the consumer reads (a
 * fresh Buffer per piece, so the consumer may keep them). Pieces are cut at the range's ends.
 */
export function payloadStream(start: number, end: number): Readable {
  let position = start;
  return new Readable({
    highWaterMark: pieceBytes,
    read() {
      if (position >= end) {
        this.push(null);
        return;
      }
      const index = Math.floor(position / pieceBytes);
      const from = position - index * pieceBytes;
      const length = Math.min(pieceBytes - from, end - position);
      const piece = Buffer.allocUnsafe(length);
      fillPiece(index, from, piece);
      position += length;
      this.push(piece);
    },
  });
}

/** Hex sha256 of the first `bytes` bytes of the payload (one reused buffer; ~1-2 GB/s with SHA-NI). */
export function payloadSha256(bytes: number): string {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(pieceBytes);
  for (let position = 0, index = 0; position < bytes; position += pieceBytes, index += 1) {
    const length = Math.min(pieceBytes, bytes - position);
    const piece = length === pieceBytes ? buffer : buffer.subarray(0, length);
    fillPiece(index, 0, piece);
    hash.update(piece);
  }
  return hash.digest('hex');
}

/** "4294967296", "4GiB", "512MiB", "1.5GB", "64k" → bytes. Binary (KiB/MiB/GiB, k/m/g) or decimal (KB/MB/GB). */
export function parseByteSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$/i.exec(text);
  if (match === null) throw new Error(`cannot read a size from "${text}" (try 4GiB, 512MiB, 1048576)`);
  const [, amount = '', prefix = '', binaryMark = '', byteMark = ''] = match;
  const power = ' kmgt'.indexOf(prefix.toLowerCase() || ' ');
  // "MB" is decimal, "MiB" and a bare "M" are binary.
  const base = prefix !== '' && byteMark !== '' && binaryMark === '' ? 1000 : 1024;
  const bytes = Math.round(Number(amount) * base ** power);
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new Error(`size "${text}" must be at least 1 byte`);
  return bytes;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(2)} ${units[unit]}`;
}
