/**
 * The sender's side of escrow (DESIGN §7, BlockTorrent storing steps): once a message's payload is
 * encrypted and stored, the escrowed blob (framed envelope header, then the ciphertext) is cut into
 * the topic's chunks, each chunk is placed on `replicas` distinct holder organizations other than
 * the sender (rendezvous ranking, see crypto/escrow/placement.ts) against their signed receipts,
 * the secret the data key derives from is shared out k-of-n (Feldman shares sealed to their
 * holders), and the master table of chunk hashes and receipts is sealed under the key derived from
 * that secret. The result is the EscrowMetadata the message's signed metadata carries.
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { encodeCanonical } from '../../codec/index.js';
import { escrowLimits } from '../../contracts/escrow/transactions.js';
import type { EscrowMetadata, SealedShare } from '../../contracts/escrow/transactions.js';
import type { EscrowPolicy } from '../../contracts/registry.js';
import {
  chooseShareHolders,
  chunkCountFor,
  cutChunks,
  escrowBlobPrefix,
  escrowKeys,
  rankHolders,
  sealMasterTable,
  sealShare,
} from '../../crypto/escrow/index.js';
import type { ChunkReceipt, FeldmanSharing } from '../../crypto/escrow/index.js';
import { sha256 } from '../../crypto/hash.js';
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import type { ConnectorContext } from '../context.js';
import { escrowCandidates } from './candidates.js';
import { placeChunkOnHolders } from './chunk-placement.js';
import type { ChunkPlacementOptions } from './chunk-placement.js';

/** Chunks read and being placed at once, unless the options say otherwise. */
export const defaultChunksInFlight = 8;

export interface EscrowPlacerOptions extends Pick<
  ConnectorContext,
  'organization' | 'signer' | 'registry' | 'storage' | 'logger' | 'lifecycle'
> {
  /** Carries the chunk puts to the holders' connectors through the nodes. */
  readonly session: ChunkPlacementOptions['session'];
  /** Chunks held in memory at once (read, hashed, being sent); default 8. */
  readonly chunksInFlight?: number;
}

export interface EscrowPlaceInput {
  readonly topic: string;
  readonly partition: number;
  /** Partition group id of the message, e.g. "invoices/0". */
  readonly group: string;
  readonly id: string;
  readonly policy: EscrowPolicy;
  /** The sharing the payload's data key was derived from (`escrowKeys(secret.secret, …).dataKey`). */
  readonly secret: FeldmanSharing;
  /** The payload's envelope header, canonically encoded (as in the sent row). */
  readonly encodedHeader: Uint8Array;
  /** Where the ciphertext is stored. */
  readonly storageKey: string;
  /** Bytes of the stored ciphertext. */
  readonly ciphertextBytes: number;
}

export interface TimedEscrow {
  readonly metadata: EscrowMetadata;
  /** Time spent reading the blob, cutting it and hashing the chunks (summed; it overlaps distribution). */
  readonly splitMs: number;
  /** Wall time from the first chunk read to the last receipt verified. */
  readonly distributeMs: number;
  /** Time spent sealing the key shares and the master table. */
  readonly sealMs: number;
  readonly chunks: number;
}

export class EscrowPlacer {
  private readonly chunksInFlight: number;

  constructor(private readonly options: EscrowPlacerOptions) {
    this.chunksInFlight = options.chunksInFlight ?? defaultChunksInFlight;
    if (!Number.isSafeInteger(this.chunksInFlight) || this.chunksInFlight < 1) {
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `chunksInFlight must be a positive integer, got ${String(options.chunksInFlight)}`,
      );
    }
  }

  /**
   * Escrows message `input.id`: every check that needs no holder first (enough candidates for the
   * replicas and the shares, chunk count and master table within the contract's limits), then the
   * shares sealed, then the chunks placed — at most `chunksInFlight` of them in memory at a time —
   * then the master table sealed. Resolves with the metadata to publish; throws NOT_ENOUGH_HOLDERS
   * before any byte is sent when there are too few candidates, or the error of the last holder tried
   * for a chunk that could not reach `replicas` holders (the chunks placed until then stay with
   * their holders, which drop them when no message with this metadata is accepted).
   */
  async place(input: EscrowPlaceInput): Promise<EscrowMetadata> {
    return (await this.placeTimed(input)).metadata;
  }

  /** `place`, with the time its phases took (for the benchmarks). */
  async placeTimed(input: EscrowPlaceInput): Promise<TimedEscrow> {
    const { organization, signer, registry, logger } = this.options;
    const { policy } = input;
    const candidates = escrowCandidates(registry, organization);
    const needed = Math.max(policy.replicas, policy.shares);
    if (candidates.length < needed) {
      throw new LedgerbusError(
        ErrorCode.NotEnoughHolders,
        `escrowing message ${input.id} on ${input.topic} needs ${needed} holder organizations (${policy.replicas} per chunk, ${policy.shares} key shares) but there are ${candidates.length} approved members other than ${organization}`,
      );
    }
    assert(
      input.secret.shares.length === policy.shares && input.secret.commitments.length === policy.threshold,
      'the sharing was split with the policy threshold and share count',
    );
    const prefix = escrowBlobPrefix(input.encodedHeader);
    const blobBytes = prefix.length + input.ciphertextBytes;
    const chunkCount = chunkCountFor(blobBytes, policy.chunkBytes);
    checkSizes(input, chunkCount, candidates);
    await this.checkStored(input);
    const context = { network: signer.domain.network, sender: organization, id: input.id };

    let started = performance.now();
    const shares = await this.sealShares(input, candidates);
    let sealMs = performance.now() - started;

    started = performance.now();
    const { receipts, splitMs } = await this.placeChunks(input, prefix, blobBytes, chunkCount, candidates);
    const distributeMs = performance.now() - started;

    started = performance.now();
    const { masterTableKey } = escrowKeys(input.secret.secret, context);
    const table = sealMasterTable({ chunks: receipts }, masterTableKey);
    masterTableKey.fill(0);
    sealMs += performance.now() - started;

    const { holders, placement } = placementOf(receipts.map((chunk) => chunk.receipts));
    const metadata: EscrowMetadata = {
      chunkBytes: policy.chunkBytes,
      blobBytes,
      chunkCount,
      commitments: [...input.secret.commitments],
      shares,
      holders,
      placement,
      masterTableHash: table.hash,
      masterTable: table.ciphertext,
    };
    logger.debug(
      {
        id: input.id,
        topic: input.topic,
        chunks: chunkCount,
        holders: holders.length,
        splitMs,
        distributeMs,
        sealMs,
      },
      'escrowed message',
    );
    return { metadata, splitMs, distributeMs, sealMs, chunks: chunkCount };
  }

  /** The ciphertext must be in storage, as long as stated: found out before any chunk moves. */
  private async checkStored(input: EscrowPlaceInput): Promise<void> {
    const object = await this.options.storage.stat(input.storageKey);
    if (object === undefined) {
      throw new LedgerbusError(
        ErrorCode.PayloadNotFound,
        `the payload ${input.storageKey} of message ${input.id} is not in storage; send the message again`,
      );
    }
    if (object.size !== input.ciphertextBytes) {
      throw new LedgerbusError(
        ErrorCode.StorageCorrupt,
        `the stored payload ${input.storageKey} of message ${input.id} has ${object.size} bytes where ${input.ciphertextBytes} were stated; send the message again`,
      );
    }
  }

  /** Share i+1 sealed to the i-th chosen share holder's registered encryption key. */
  private async sealShares(
    input: EscrowPlaceInput,
    candidates: readonly string[],
  ): Promise<{ holder: string; share: SealedShare }[]> {
    const { organization, signer, registry } = this.options;
    const context = { network: signer.domain.network, sender: organization, id: input.id };
    const shareHolders = chooseShareHolders(context, candidates, input.policy.shares);
    return Promise.all(
      shareHolders.map(async (holder, i) => {
        const share = input.secret.shares[i];
        assert(share !== undefined && share.index === i + 1, 'share i+1 is at position i');
        const publicKey = registry.encryptionKey(holder);
        if (publicKey === undefined) {
          throw new LedgerbusError(
            ErrorCode.SchemaMismatch,
            `share holder ${holder} has no registered encryption key; the registry must be repaired before escrowing`,
          );
        }
        return {
          holder,
          share: await sealShare(share.value, publicKey, { ...context, holder, purpose: 'escrow' }),
        };
      }),
    );
  }

  /**
   * Reads the blob once, cutting it into chunks, and places each as soon as a slot frees up: a
   * chunk is read only while fewer than `chunksInFlight` are being placed, so memory stays at that
   * many chunks (plus the one being cut) whatever the payload's size. After a chunk fails no other
   * starts; those under way finish before it throws, and the stored object's stream is released.
   */
  private async placeChunks(
    input: EscrowPlaceInput,
    prefix: Uint8Array,
    blobBytes: number,
    chunkCount: number,
    candidates: readonly string[],
  ): Promise<{ receipts: { hash: Uint8Array; size: number; receipts: ChunkReceipt[] }[]; splitMs: number }> {
    const { storage, logger } = this.options;
    const replicas = input.policy.replicas;
    const ciphertext = await storage.get(input.storageKey);
    const chunks = cutChunks(blob(prefix, ciphertext), input.policy.chunkBytes);
    const placed: { hash: Uint8Array; size: number; receipts: ChunkReceipt[] }[] = [];
    const running = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    let splitMs = 0;
    let bytesRead = 0;
    let index = 0;
    try {
      for (;;) {
        while (running.size >= this.chunksInFlight) await Promise.race(running);
        if (failure !== undefined) break;
        const started = performance.now();
        const next = await chunks.next();
        if (next.done === true) break;
        const bytes = next.value;
        const chunk = { index, bytes, hash: sha256(bytes) };
        splitMs += performance.now() - started;
        bytesRead += bytes.length;
        if (index >= chunkCount) break; // more bytes than stated: reported below, nothing sent
        index++;
        const ranking = rankHolders(chunk.hash, candidates);
        const task = placeChunkOnHolders(this.options, input, chunk, ranking, replicas).then(
          (receipts) => {
            placed[chunk.index] = { hash: chunk.hash, size: bytes.length, receipts };
            logger.debug(
              { id: input.id, chunk: chunk.index, holders: receipts.map((r) => r.holder) },
              'chunk placed',
            );
          },
          (error: unknown) => {
            failure ??= { error };
          },
        );
        const tracked = task.finally(() => running.delete(tracked));
        running.add(tracked);
      }
    } finally {
      await Promise.all(running);
      await chunks.return(undefined);
      // An iteration that stopped early leaves the file open otherwise.
      ciphertext.destroy();
    }
    if (failure !== undefined) throw failure.error;
    if (bytesRead !== blobBytes) {
      const found = bytesRead > blobBytes ? 'more' : `${bytesRead - prefix.length}`;
      throw new LedgerbusError(
        ErrorCode.StorageCorrupt,
        `the stored payload ${input.storageKey} of message ${input.id} has ${found} bytes where ${input.ciphertextBytes} were stated; send the message again`,
      );
    }
    for (let c = 0; c < chunkCount; c++) assert(placed[c] !== undefined, 'every chunk of the blob is placed');
    return { receipts: placed, splitMs };
  }
}

/** The framed header, then the ciphertext as storage streams it. */
async function* blob(prefix: Uint8Array, ciphertext: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield prefix;
  yield* ciphertext;
}

/**
 * Distinct holders in order of first use (chunk by chunk, replica by replica) and the placement
 * bytes: for chunk c, `replicas` indexes into those holders.
 */
export function placementOf(chunks: readonly (readonly ChunkReceipt[])[]): {
  holders: string[];
  placement: Uint8Array;
} {
  const holders: string[] = [];
  const positions = new Map<string, number>();
  const placement: number[] = [];
  for (const receipts of chunks) {
    for (const { holder } of receipts) {
      let position = positions.get(holder);
      if (position === undefined) {
        position = holders.length;
        positions.set(holder, position);
        holders.push(holder);
      }
      placement.push(position);
    }
  }
  assert(holders.length <= escrowLimits.holdersMax, 'holders fit a placement byte');
  return { holders, placement: Uint8Array.from(placement) };
}

/**
 * The contract's limits that are known before any byte moves: the chunk size the policy set, the
 * chunk count, and the master table's size (bounded from above with the longest holder id and full
 * chunks, so a message that would overflow it is refused before its chunks are sent).
 */
function checkSizes(input: EscrowPlaceInput, chunkCount: number, candidates: readonly string[]): void {
  const { chunkBytes, replicas } = input.policy;
  if (chunkCount > escrowLimits.chunksMax) {
    throw new LedgerbusError(
      ErrorCode.Oversize,
      `message ${input.id} needs ${chunkCount} escrow chunks of ${chunkBytes} bytes, more than the ${escrowLimits.chunksMax} a message may have; use a topic with larger chunks`,
    );
  }
  const longest = candidates.reduce((a, b) => (Buffer.byteLength(b) > Buffer.byteLength(a) ? b : a));
  const receipt = { holder: longest, signerKey: new Uint8Array(32), signature: new Uint8Array(64) };
  const entryBytes = encodeCanonical({
    hash: new Uint8Array(32),
    size: chunkBytes,
    receipts: Array.from({ length: replicas }, () => receipt),
  }).length;
  // {chunks: [...]}: its map and key, an array header of at most 3 bytes, then the entries; sealing
  // adds a 12-byte nonce and a 16-byte tag.
  const bound = encodeCanonical({ chunks: [] }).length + 2 + chunkCount * entryBytes + 28;
  if (bound > escrowLimits.masterTableBytesMax) {
    throw new LedgerbusError(
      ErrorCode.Oversize,
      `the master table of message ${input.id} (${chunkCount} chunks, ${replicas} receipts each) could reach ${bound} bytes, more than ${escrowLimits.masterTableBytesMax}; use a topic with larger chunks or fewer replicas`,
    );
  }
}
