/**
 * Rebuilding an escrowed message's bytes without its owner (DESIGN §7, BlockTorrent's retrieval):
 * every chunk from any live holder, checked against the master table, appended in order to a
 * temporary file; then the framed envelope header and ciphertext read back from it, verified and
 * decrypted with the rebuilt data key into the connector's content-addressed storage. Nothing holds
 * the whole blob in memory: at most `inFlightMax` chunks are in flight or waiting to be written.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { bytesEqual } from '../../codec/index.js';
import { encodeChunkGetRequest } from '../../contracts/escrow/chunk-requests.js';
import type { EscrowMetadata } from '../../contracts/escrow/transactions.js';
import { nonceBytes } from '../../contracts/limits.js';
import { splitEscrowBlob } from '../../crypto/escrow/index.js';
import type { MasterTable } from '../../crypto/escrow/index.js';
import { chunkTagBytes } from '../../crypto/envelope/header.js';
import { decodeEnvelopeHeader, decryptPayload } from '../../crypto/envelope/index.js';
import { ErrorCode, LedgerbusError, assert, isLedgerbusError } from '../../errors.js';
import type { AcceptedMessage, ProofTrust } from '../../proofs/index.js';
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import type { NodeSession } from '../session/node-session.js';
import type { StoredObject } from '../storage/index.js';
import { AuditFailure } from './audit-shares.js';

/** Chunks requested at once: enough to hide a relay's latency, few enough to bound memory. */
export const chunksInFlightMax = 8;

/**
 * A holder's answer that breaks the receipt it signed: it served other bytes, or says it lost or
 * corrupted the chunk it acknowledged. Anything else (unreachable, not serving now, its view of the
 * audit lagging) is unavailability, which a later try may not meet.
 */
const brokenPromiseCodes: readonly string[] = [
  ErrorCode.PayloadNotFound,
  ErrorCode.StorageCorrupt,
  ErrorCode.HashMismatch,
];

export interface ChunkFetchOptions extends Pick<
  ConnectorContext,
  'organization' | 'signer' | 'lifecycle' | 'logger'
> {
  readonly session: Pick<NodeSession, 'connectorCall'>;
  /** At most `chunksInFlightMax`. */
  readonly inFlightMax?: number;
}

/** One chunk to fetch: where the master table and the placement say it is and what it must be. */
export interface ChunkSource {
  readonly index: number;
  readonly hash: Uint8Array;
  readonly size: number;
  /** In the order the sender ranked them. */
  readonly holders: readonly string[];
}

export interface AuditedMessage {
  readonly group: string;
  readonly id: string;
  readonly requestId: string;
}

/**
 * The chunks to fetch, in order: sizes and hashes from the master table, holders from the placement.
 * AUDIT_FAILED (final) when the table does not describe the blob the metadata declares: the sender
 * sealed a table that does not fit, which no retry can change.
 */
export function chunkSources(
  escrow: EscrowMetadata,
  table: MasterTable,
  perChunk: readonly (readonly string[])[],
): ChunkSource[] {
  const total = table.chunks.reduce((sum, chunk) => sum + chunk.size, 0);
  const misfit =
    table.chunks.length !== escrow.chunkCount ||
    total !== escrow.blobBytes ||
    table.chunks.some((chunk, index) => index < table.chunks.length - 1 && chunk.size !== escrow.chunkBytes);
  if (misfit) {
    throw new AuditFailure(
      `the master table lists ${table.chunks.length} chunks of ${total} bytes, not the ${escrow.chunkCount} chunks of ${escrow.blobBytes} bytes escrowed`,
      true,
    );
  }
  return table.chunks.map((chunk, index) => ({
    index,
    hash: chunk.hash,
    size: chunk.size,
    holders: [...new Set(perChunk[index] ?? [])],
  }));
}

/**
 * Fetches every chunk in order into `file` (created, fsynced), each from its holders in order
 * until one serves bytes of the right size and SHA-256; holders that broke their receipt are added
 * to `badHolders` as they are found (so a caller still has them when the fetch fails). `onChunk`
 * is told each chunk written. Throws AUDIT_FAILED naming the chunk when no holder served it: final
 * if every holder broke its receipt, retriable otherwise.
 */
export async function fetchChunksToFile(
  options: ChunkFetchOptions,
  message: AuditedMessage,
  chunks: readonly ChunkSource[],
  file: string,
  badHolders: Set<string>,
  onChunk?: (written: number) => void,
): Promise<void> {
  const inFlightMax = Math.min(options.inFlightMax ?? chunksInFlightMax, chunksInFlightMax);
  assert(inFlightMax >= 1, 'at least one chunk is fetched at a time');
  const handle = await open(file, 'wx', 0o600);
  const pending: Promise<Uint8Array>[] = [];
  let next = 0;
  const refill = (): void => {
    while (next < chunks.length && pending.length < inFlightMax && !options.lifecycle.stopped) {
      const fetched = fetchChunk(options, message, chunks[next] as ChunkSource, badHolders);
      // Awaited in order below; until then a failure must not count as unhandled.
      fetched.catch(() => undefined);
      pending.push(fetched);
      next += 1;
    }
  };
  try {
    refill();
    for (let written = 0; written < chunks.length; written++) {
      const fetched = pending.shift();
      if (fetched === undefined) {
        throw new LedgerbusError(ErrorCode.ConnectionClosed, 'the connector is stopping', {
          retriable: false,
        });
      }
      const chunk = await fetched;
      refill();
      await writeAll(handle, chunk);
      onChunk?.(written + 1);
    }
    await handle.sync();
  } finally {
    await handle.close();
    // Whatever is still in flight after a failure settles on its own; nothing awaits it.
  }
}

async function fetchChunk(
  options: ChunkFetchOptions,
  message: AuditedMessage,
  chunk: ChunkSource,
  badHolders: Set<string>,
): Promise<Uint8Array> {
  const failures: string[] = [];
  let allBroken = true;
  for (const holder of chunk.holders) {
    if (options.lifecycle.stopped) break;
    const request = encodeChunkGetRequest(
      {
        requester: options.organization,
        holder,
        group: message.group,
        id: message.id,
        requestId: message.requestId,
        chunkIndex: chunk.index,
        chunkHash: chunk.hash,
        nonce: randomBytes(nonceBytes),
        timestamp: options.lifecycle.clock.now(),
      },
      options.signer,
    );
    let broken: string | undefined;
    try {
      const { chunk: bytes } = await options.session.connectorCall(holder, 'escrowChunkGet', { request });
      if (
        bytes.length === chunk.size &&
        bytesEqual(createHash('sha256').update(bytes).digest(), chunk.hash)
      ) {
        return bytes;
      }
      broken = `served ${bytes.length} bytes that do not hash to the master table's`;
    } catch (error) {
      if (!isLedgerbusError(error) || !brokenPromiseCodes.includes(error.code)) {
        allBroken = false;
        failures.push(`${holder}: ${describeError(error)}`);
        options.logger.warn(
          { id: message.id, chunk: chunk.index, holder, error: describeError(error) },
          'a chunk holder did not serve; trying the next',
        );
        continue;
      }
      broken = describeError(error);
    }
    badHolders.add(holder);
    failures.push(`${holder}: ${broken}`);
    options.logger.warn(
      { id: message.id, chunk: chunk.index, holder, problem: broken },
      'a chunk holder broke its receipt',
    );
  }
  throw new AuditFailure(
    `no holder served chunk ${chunk.index} of ${message.id} intact (${failures.join('; ') || 'no holder asked'})`,
    allBroken && failures.length > 0,
  );
}

async function writeAll(handle: Awaited<ReturnType<typeof open>>, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

export interface BlobDecryptOptions extends Pick<ConnectorContext, 'storage'> {
  readonly trust: ProofTrust;
}

/** Failures of the envelope's verification: the sender escrowed bytes that do not verify. */
const verificationCodes: readonly string[] = [
  ErrorCode.BadProof,
  ErrorCode.BadSignature,
  ErrorCode.BadCertificate,
  ErrorCode.RootMismatch,
  ErrorCode.MalformedEncoding,
  ErrorCode.SchemaMismatch,
  ErrorCode.Oversize,
];

/**
 * Reads the blob in `file` back — the framed envelope header, then the ciphertext — and decrypts it
 * with `dataKey` into storage, the header checked against the sender's key and the content root the
 * partition accepted. Returns the stored plaintext. AUDIT_FAILED (final) when the blob does not
 * verify: every chunk matched the sender's own master table, so the sender escrowed it that way.
 */
export async function decryptBlobToStorage(
  options: BlobDecryptOptions,
  file: string,
  accepted: AcceptedMessage,
  escrow: EscrowMetadata,
  dataKey: Uint8Array,
): Promise<StoredObject> {
  const source = createReadStream(file);
  try {
    const { header: headerBytes, ciphertext } = await splitEscrowBlob(source);
    const header = decodeEnvelopeHeader(headerBytes);
    const blobBytes = 4 + headerBytes.length + header.plaintextBytes + header.chunkCount * chunkTagBytes;
    if (blobBytes !== escrow.blobBytes) {
      throw new LedgerbusError(
        ErrorCode.MalformedEncoding,
        `the envelope describes a ${blobBytes}-byte blob, not the ${escrow.blobBytes} bytes escrowed`,
      );
    }
    const plaintext = decryptPayload({
      header,
      ciphertext,
      dataKey,
      senderPublicKey: accepted.signerKey,
      signing: options.trust.signing,
      expectedRoot: accepted.contentRoot,
      expectedPayloadId: accepted.id,
      expectedSenderOrgId: accepted.sender,
    });
    return await options.storage.put(plaintext, { sizeMax: header.plaintextBytes });
  } catch (error) {
    if (isLedgerbusError(error) && verificationCodes.includes(error.code)) {
      throw new AuditFailure(`the rebuilt message does not verify: ${error.message} (${error.code})`, true);
    }
    throw error;
  } finally {
    source.destroy();
  }
}
