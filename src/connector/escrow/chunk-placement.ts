/**
 * Placing one escrowed chunk (DESIGN §7, BlockTorrent storing step): the chunk goes to the first
 * `replicas` holders of its rendezvous ranking at once, each through the nodes as a signed
 * ChunkPutRequest, and each holder's signed receipt is checked against the registry. A holder that
 * fails — unreachable, refusing, or answering a receipt that does not verify — is replaced by the
 * next holder of the ranking not yet tried for this chunk, so the chunk still ends on `replicas`
 * distinct organizations as long as enough of them are up.
 */
import { randomBytes } from 'node:crypto';
import { CHUNK_RECEIPT_SIGNING_TYPE, chunkReceiptPayload } from '../../contracts/escrow/transactions.js';
import { encodeChunkPutRequest } from '../../contracts/escrow/chunk-requests.js';
import { nonceBytes } from '../../contracts/limits.js';
import { bytesEqual } from '../../codec/index.js';
import type { ChunkReceipt } from '../../crypto/escrow/index.js';
import { ErrorCode, LedgerbusError, assert, isLedgerbusError } from '../../errors.js';
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import type { NodeSession } from '../session/node-session.js';

export interface ChunkPlacementOptions extends Pick<
  ConnectorContext,
  'organization' | 'signer' | 'registry' | 'logger' | 'lifecycle'
> {
  readonly session: Pick<NodeSession, 'connectorCall'>;
}

/** Which message a chunk belongs to. */
export interface ChunkOwner {
  /** Partition group id, e.g. "invoices/0". */
  readonly group: string;
  readonly id: string;
}

export interface ChunkToPlace {
  readonly index: number;
  readonly bytes: Uint8Array;
  /** SHA-256 of `bytes`. */
  readonly hash: Uint8Array;
}

/**
 * Places `chunk` on `replicas` distinct holders taken in `ranking` order, `replicas` at a time.
 * Resolves with their verified receipts, sorted by rank (the order `placement` lists them in), so
 * the result does not depend on which holder answered first. When the ranking runs out first, it
 * rejects with the last holder's error (its code and retriable flag kept, the message saying how
 * far the chunk got). Once the connector stops, no further holder is tried.
 */
export async function placeChunkOnHolders(
  options: ChunkPlacementOptions,
  owner: ChunkOwner,
  chunk: ChunkToPlace,
  ranking: readonly string[],
  replicas: number,
): Promise<ChunkReceipt[]> {
  assert(replicas >= 1 && ranking.length >= replicas, 'a chunk is placed only when enough holders rank');
  assert(!ranking.includes(options.organization), 'the sender never holds its own chunks');
  const placed: { rank: number; receipt: ChunkReceipt }[] = [];
  let nextRank = 0;
  let lastError: unknown;
  let anyRetriable = false;
  // Each lane keeps one replica: it tries holders in ranking order until one acknowledges, taking
  // the next untried one after each failure. Lanes share `nextRank`, so no holder is tried twice.
  const lane = async (): Promise<void> => {
    while (nextRank < ranking.length && !options.lifecycle.stopped) {
      const rank = nextRank++;
      const holder = ranking[rank] as string;
      try {
        placed.push({ rank, receipt: await putChunk(options, owner, chunk, holder) });
        return;
      } catch (error) {
        lastError = error;
        // One holder that may come back (down, restarting) makes the whole placement worth retrying.
        anyRetriable ||= !isLedgerbusError(error) || error.retriable;
        options.logger.debug(
          { id: owner.id, chunk: chunk.index, holder, error: describeError(error) },
          'escrow holder failed; trying the next ranked one',
        );
      }
    }
  };
  await Promise.all(Array.from({ length: replicas }, lane));
  if (placed.length < replicas) {
    if (options.lifecycle.stopped) {
      throw new LedgerbusError(
        ErrorCode.ConnectionClosed,
        'connector stopped while placing escrowed chunks',
        {
          retriable: false,
        },
      );
    }
    const what = `chunk ${chunk.index} of message ${owner.id} reached ${placed.length} of ${replicas} holders after trying all ${ranking.length} candidates`;
    if (isLedgerbusError(lastError)) {
      throw new LedgerbusError(lastError.code, `${what}; last: ${lastError.message}`, {
        retriable: anyRetriable,
        cause: lastError,
      });
    }
    throw new LedgerbusError(ErrorCode.ConnectionClosed, `${what}; last: ${describeError(lastError)}`, {
      retriable: true,
      cause: lastError,
    });
  }
  placed.sort((a, b) => a.rank - b.rank);
  const receipts = placed.map((entry) => entry.receipt);
  assert(
    new Set(receipts.map((receipt) => receipt.holder)).size === replicas,
    'replicas are distinct holders',
  );
  return receipts;
}

/** Sends `chunk` to `holder` and returns its receipt once it verifies; BAD_SIGNATURE if it does not. */
async function putChunk(
  options: ChunkPlacementOptions,
  owner: ChunkOwner,
  chunk: ChunkToPlace,
  holder: string,
): Promise<ChunkReceipt> {
  const request = encodeChunkPutRequest(
    {
      requester: options.organization,
      holder,
      group: owner.group,
      id: owner.id,
      chunkIndex: chunk.index,
      chunkHash: chunk.hash,
      chunkSize: chunk.bytes.length,
      nonce: new Uint8Array(randomBytes(nonceBytes)),
      timestamp: options.lifecycle.clock.now(),
    },
    options.signer,
  );
  const answer = await options.session.connectorCall(holder, 'escrowChunkPut', {
    request,
    chunk: chunk.bytes,
  });
  const receipt = { holder: answer.holder, signerKey: answer.signerKey, signature: answer.signature };
  const problem = receiptProblem(options, owner, chunk, holder, receipt);
  if (problem !== undefined) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `holder ${holder} acknowledged chunk ${chunk.index} of message ${owner.id} with a receipt that ${problem}; it is not counted as a replica`,
    );
  }
  return receipt;
}

/**
 * Why `receipt` is not `holder`'s acknowledgement of `chunk`, or undefined when it is: it must name
 * `holder`, be signed by a key the registry has for `holder`, and be a signature in our network
 * over the receipt payload of exactly this sender, message, index and hash.
 */
function receiptProblem(
  options: ChunkPlacementOptions,
  owner: ChunkOwner,
  chunk: ChunkToPlace,
  holder: string,
  receipt: ChunkReceipt,
): string | undefined {
  if (receipt.holder !== holder) return `names ${receipt.holder} as the holder`;
  const keys = options.registry.organization(holder)?.signingKeys ?? [];
  if (!keys.some((key) => bytesEqual(key, receipt.signerKey)))
    return 'is signed by a key not registered for it';
  const payload = chunkReceiptPayload({
    holder,
    sender: options.organization,
    id: owner.id,
    chunkIndex: chunk.index,
    chunkHash: chunk.hash,
  });
  return options.signer.domain.verify(
    receipt.signerKey,
    CHUNK_RECEIPT_SIGNING_TYPE,
    payload,
    receipt.signature,
  )
    ? undefined
    : 'does not verify';
}
