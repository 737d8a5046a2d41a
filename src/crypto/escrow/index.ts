/*
 * The cryptography of escrow topics (DESIGN §7, BlockTorrent): Feldman verifiable sharing of a
 * secret, the keys derived from it, key shares sealed to organizations, the encrypted master table,
 * where chunks and shares go, and how the escrowed blob is framed and cut. Pure: no I/O besides
 * node:crypto randomness.
 */
export { escrowBlobBytes, escrowBlobPrefix, chunkCountFor, cutChunks, splitEscrowBlob } from './blob.js';
export {
  combineShares,
  commitmentBytes,
  decodeScalar,
  scalarBytes,
  secretMatchesCommitments,
  sharesMax,
  splitSecret,
  validCommitments,
  verifyShare,
} from './feldman.js';
export type { FeldmanSharing, Share } from './feldman.js';
export { escrowKeyBytes, escrowKeyDomain, escrowKeys } from './keys.js';
export type { EscrowKeyContext, EscrowKeys } from './keys.js';
export { masterTableSchema, openMasterTable, sealMasterTable } from './master-table.js';
export type { ChunkReceipt, MasterTable, MasterTableChunk } from './master-table.js';
export {
  chooseShareHolders,
  naiveThreeHashPlacement,
  placeChunk,
  placementHashes,
  rankHolders,
} from './placement.js';
export type { ShareHolderContext } from './placement.js';
export { openShare, sealShare, shareBoxDomain } from './share-box.js';
export type { ShareBoxContext } from './share-box.js';
