/**
 * The sender's side of an escrowed message in the auditor's tests, as a connector of an escrow
 * topic does it (DESIGN §7): the payload encrypted under the data key derived from a fresh 2-of-3
 * Feldman sharing, the framed header and ciphertext cut into chunks placed on three distinct holders
 * each through their real ChunkHolders (whose signed receipts go into the master table), and the
 * shares sealed to their holders.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { encodeChunkPutRequest } from '../../../contracts/escrow/chunk-requests.js';
import type { EscrowMetadata } from '../../../contracts/escrow/transactions.js';
import { nonceBytes } from '../../../contracts/limits.js';
import {
  cutChunks,
  escrowBlobPrefix,
  escrowKeys,
  placeChunk,
  sealMasterTable,
  sealShare,
  splitSecret,
} from '../../../crypto/escrow/index.js';
import type { FeldmanSharing } from '../../../crypto/escrow/index.js';
import { encodeEnvelopeHeader, encryptPayloadToBytes } from '../../../crypto/envelope/index.js';
import type { WrapTarget } from '../../../crypto/envelope/index.js';
import { sha256 } from '../../../crypto/index.js';
import type { Signer } from '../../../crypto/index.js';
import type { ChunkHolder } from '../chunk-holder.js';
import { escrowChunkBytes, group } from './audit-chain.js';

export interface EscrowedPayload {
  readonly sharing: FeldmanSharing;
  readonly escrow: EscrowMetadata;
  /** Chunk holders in placement order, per chunk. */
  readonly perChunk: string[][];
  /** The envelope's Merkle root: the message's on-chain content root. */
  readonly contentRoot: Uint8Array;
  /** Ciphertext bytes: the message's on-chain size. */
  readonly ciphertextBytes: number;
}

export async function escrowPayload(
  sender: {
    readonly network: string;
    /** alice's connector key in the network. */
    readonly signer: Signer;
    readonly recipient: WrapTarget;
    readonly shareHolders: readonly { holder: string; publicKey: Uint8Array }[];
    /** The chunk holders' connectors, by organization. */
    readonly holders: ReadonlyMap<string, ChunkHolder>;
  },
  id: string,
  plaintext: Uint8Array,
): Promise<EscrowedPayload> {
  const sharing = splitSecret(2, sender.shareHolders.length);
  const keys = escrowKeys(sharing.secret, { network: sender.network, sender: 'alice', id });
  const { header, ciphertextBytes, ciphertext } = await encryptPayloadToBytes(
    {
      signer: sender.signer,
      senderOrgId: 'alice',
      recipients: [sender.recipient],
      payloadId: id,
      contentType: 'application/octet-stream',
      chunkBytes: 4096,
      dataKey: keys.dataKey,
    },
    plaintext,
  );
  const blob = Buffer.concat([escrowBlobPrefix(encodeEnvelopeHeader(header)), ciphertext]);
  const chunks: Uint8Array[] = [];
  for await (const chunk of cutChunks(Readable.from([blob]), escrowChunkBytes)) chunks.push(chunk);
  const candidates = [...sender.holders.keys()];
  const perChunk = chunks.map((chunk) => placeChunk(sha256(chunk), candidates, 3));
  const holders = candidates.filter((holder) => perChunk.some((placed) => placed.includes(holder)));
  const table = [];
  for (const [index, chunk] of chunks.entries()) {
    const receipts = [];
    for (const holder of perChunk[index] ?? []) {
      const request = encodeChunkPutRequest(
        {
          requester: 'alice',
          holder,
          group,
          id,
          chunkIndex: index,
          chunkHash: sha256(chunk),
          chunkSize: chunk.length,
          nonce: randomBytes(nonceBytes),
          timestamp: Date.now(),
        },
        sender.signer,
      );
      receipts.push(await (sender.holders.get(holder) as ChunkHolder).put({ request, chunk }));
    }
    table.push({ hash: sha256(chunk), size: chunk.length, receipts });
  }
  const master = sealMasterTable({ chunks: table }, keys.masterTableKey);
  const shares = [];
  for (const [index, { holder, publicKey }] of sender.shareHolders.entries()) {
    const value = sharing.shares[index]?.value as Uint8Array;
    const context = { network: sender.network, sender: 'alice', id, holder, purpose: 'escrow' as const };
    shares.push({ holder, share: await sealShare(value, publicKey, context) });
  }
  const escrow: EscrowMetadata = {
    chunkBytes: escrowChunkBytes,
    blobBytes: blob.length,
    chunkCount: chunks.length,
    commitments: sharing.commitments,
    shares,
    holders,
    placement: Uint8Array.from(perChunk.flatMap((placed) => placed.map((holder) => holders.indexOf(holder)))),
    masterTableHash: master.hash,
    masterTable: master.ciphertext,
  };
  return { sharing, escrow, perChunk, contentRoot: header.merkleRoot, ciphertextBytes };
}
