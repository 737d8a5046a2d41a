/** The library surface of ledgerbus as it stands: codec, crypto, ledger and the PBFT core. */
export * from './errors.js';
export * as codec from './codec/index.js';
export * as crypto from './crypto/index.js';
export * as ledger from './ledger/block.js';
export { BlockStore } from './ledger/block-store.js';
export { PbftReplica, defaultPbftTuning } from './consensus/pbft/replica.js';
export type * from './consensus/pbft/types.js';
