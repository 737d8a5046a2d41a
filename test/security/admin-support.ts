/**
 * What the security suites need to act on the Raft layer as a hostile (or honest) organization
 * would: sign any admin action under any key, in any organization's name, and submit it over a
 * connector link exactly as a connector does, waiting out leader elections.
 */
import { randomBytes } from 'node:crypto';
import { encodeWith } from '../../src/codec/index.js';
import type { CborValue } from '../../src/codec/index.js';
import type { Signer } from '../../src/crypto/index.js';
import { isLedgerbusError } from '../../src/errors.js';
import type { RpcPeer } from '../../src/net/index.js';
import {
  SYSTEM_GROUP,
  adminTransactionSchema,
  signAdminTransaction,
} from '../../src/registry/admin-transactions.js';
import type { AdminAction } from '../../src/registry/admin-transactions.js';
import { waitFor } from './support.js';

export interface AdminAnswer {
  readonly status: string;
  readonly reason?: string;
  readonly detail?: string;
}

/** Submits a signed admin transaction as a connector would; retriable refusals are retried. */
export async function submitAdmin(peer: RpcPeer, transaction: Uint8Array): Promise<AdminAnswer> {
  const reply = await waitFor('an admin answer', async () => {
    try {
      return (await peer.request('admin', { transaction })) as Record<string, CborValue>;
    } catch (error) {
      if (isLedgerbusError(error) && error.retriable) return undefined;
      throw error;
    }
  });
  return reply['result'] as unknown as AdminAnswer;
}

/**
 * An admin transaction in `organization`'s name, signed by `signer` (a key, which may not be its
 * own, bound to the network the transaction is for).
 */
export function adminTransaction(
  organization: string,
  signer: Signer,
  action: AdminAction,
  group = SYSTEM_GROUP,
): Uint8Array {
  return encodeWith(
    adminTransactionSchema,
    signAdminTransaction(
      { group, organization, nonce: randomBytes(16), timestamp: Date.now(), action },
      signer,
    ),
  );
}
