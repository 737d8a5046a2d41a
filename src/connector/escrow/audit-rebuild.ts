/**
 * One retrieval of an escrowed message for an approved audit (DESIGN §7), in the order the checks
 * must run: the released shares proven and verified, the key rebuilt and matched to the
 * commitments, the master table matched to its on-chain hash and opened, every chunk fetched and
 * checked, and the envelope verified and decrypted into storage. The owner takes no part.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { bytesEqual } from '../../codec/index.js';
import type { AuditView } from '../../contracts/escrow/views.js';
import { escrowKeys, openMasterTable } from '../../crypto/escrow/index.js';
import type { MasterTable } from '../../crypto/escrow/index.js';
import { sha256 } from '../../crypto/index.js';
import { isLedgerbusError } from '../../errors.js';
import type { ConnectorContext } from '../context.js';
import type { NodeSession } from '../session/node-session.js';
import type { StoredObject } from '../storage/index.js';
import { chunkSources, decryptBlobToStorage, fetchChunksToFile } from './audit-fetch.js';
import { AuditFailure, collectShares, rebuildSecret } from './audit-shares.js';
import { chunkHolders } from './audit-status.js';
import type { VerifiedEscrowRecord } from './escrow-record.js';

/** Names of the temporary blob files (see `removeLeftoverBlobs`). */
export const blobFilePrefix = 'ledgerbus-audit-';

export interface RebuildOptions extends Pick<
  ConnectorContext,
  'organization' | 'signer' | 'encryptionKey' | 'trust' | 'storage' | 'logger' | 'lifecycle'
> {
  readonly session: Pick<NodeSession, 'connectorCall'>;
  /** Where the blob is assembled; default the OS's temporary directory. */
  readonly temporaryDirectory?: string;
  readonly chunksInFlightMax?: number;
}

/** What a retrieval found wrong so far: kept by the caller, so a failure still reports it. */
export interface RebuildFindings {
  readonly badShares: Set<string>;
  readonly badHolders: Set<string>;
}

export interface Rebuilt {
  readonly stored: StoredObject;
  readonly chunks: number;
  /** From the first chunk request to the verified plaintext stored. */
  readonly regenerationMs: number;
}

/**
 * Rebuilds message `verified` for approved audit `audit`, into storage. Throws AuditFailure
 * (AUDIT_FAILED; `final` when another try cannot succeed) or the connection's own error; bad shares
 * and holders are added to `findings` as they are found.
 */
export async function rebuildMessage(
  options: RebuildOptions,
  verified: VerifiedEscrowRecord,
  audit: AuditView,
  findings: RebuildFindings,
  onChunk?: (written: number, total: number) => void,
): Promise<Rebuilt> {
  const { accepted, escrow } = verified;
  const context = {
    group: accepted.partitionId,
    id: accepted.id,
    sender: accepted.sender,
    requestId: audit.requestId,
  };
  const collected = await collectShares(options, context, escrow, audit, verified.evidences);
  for (const holder of collected.badShares) findings.badShares.add(holder);
  const secret = rebuildSecret(escrow, collected, audit);
  const keys = escrowKeys(secret, {
    network: options.trust.signing.network,
    sender: accepted.sender,
    id: accepted.id,
  });
  const table = openTable(escrow.masterTable, escrow.masterTableHash, keys.masterTableKey);
  const chunks = chunkSources(escrow, table, chunkHolders(escrow));
  const directory = options.temporaryDirectory ?? tmpdir();
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const file = join(directory, `${blobFilePrefix}${randomUUID()}.blob`);
  try {
    const started = performance.now();
    await fetchChunksToFile(options, context, chunks, file, findings.badHolders, (written) =>
      onChunk?.(written, chunks.length),
    );
    const stored = await decryptBlobToStorage(options, file, accepted, escrow, keys.dataKey);
    return { stored, chunks: chunks.length, regenerationMs: Math.round(performance.now() - started) };
  } finally {
    keys.dataKey.fill(0);
    secret.fill(0);
    await rm(file, { force: true });
  }
}

/**
 * The master table, once its bytes are the ones whose hash the sender published and they open
 * under the rebuilt key. AUDIT_FAILED (final) otherwise: the contract bound the hash, so a table
 * that does not open was sealed that way by the sender.
 */
function openTable(ciphertext: Uint8Array, hash: Uint8Array, key: Uint8Array): MasterTable {
  if (!bytesEqual(sha256(ciphertext), hash)) {
    throw new AuditFailure(
      'the master table does not hash to the masterTableHash the sender published',
      true,
    );
  }
  try {
    return openMasterTable(ciphertext, key);
  } catch (error) {
    if (!isLedgerbusError(error)) throw error;
    throw new AuditFailure(`the master table does not open with the rebuilt key: ${error.message}`, true);
  }
}
