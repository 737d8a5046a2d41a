/**
 * What every proof about a message is checked against (the network's trust bundle), what a valid
 * acceptance establishes, and the checks both proof versions share.
 */
import { bytesEqual } from '../codec/index.js';
import type { SigningDomain } from '../crypto/index.js';
import type { MessageMetadata } from '../contracts/transactions.js';
import { ErrorCode, LedgerbusError, assert } from '../errors.js';
import type { GroupMembership } from '../ledger/block.js';
import type { BlockHeader } from '../ledger/header.js';

/**
 * What a verifier must know: the network, the replica keys of each group epoch and each
 * organization's keys.
 */
export interface ProofTrust {
  /** The trust bundle's network: every signature in a proof must be in its domain. */
  readonly signing: SigningDomain;
  /**
   * The replica set of `groupId` at `configEpoch` (in the network of `signing`), or undefined if
   * unknown (a foreign proof).
   */
  membership(groupId: string, configEpoch: number): GroupMembership | undefined;
  /** The organization's connector signing keys, or undefined if it is not in the network. */
  signingKeys(organization: string): readonly Uint8Array[] | undefined;
}

/** What a valid acceptance proof establishes. */
export interface AcceptedMessage {
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  readonly partitionId: string;
  readonly offset: number;
  readonly sender: string;
  /** The sender's connector key that signed the batch (and the payload envelope). */
  readonly signerKey: Uint8Array;
  readonly recipients: readonly string[];
  readonly size: number;
  readonly contentRoot: Uint8Array;
  readonly contentType: string;
  readonly key: Uint8Array | null;
  /** Height and timestamp of the block that accepted it. */
  readonly height: number;
  readonly acceptedAt: number;
  readonly metadata: MessageMetadata;
}

export function badProof(message: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.BadProof, message);
}

/** The replica set that must have certified `header`, from the trust bundle. */
export function membershipOf(trust: ProofTrust, header: BlockHeader): GroupMembership {
  const { partitionId, configEpoch } = header;
  const membership = trust.membership(partitionId, configEpoch);
  if (membership === undefined) {
    throw new LedgerbusError(
      ErrorCode.WrongGroup,
      `partition ${partitionId} epoch ${configEpoch} is not in this network`,
    );
  }
  assert(
    membership.signing.network === trust.signing.network,
    `the trust bundle of ${trust.signing.network} gave a membership of ${membership.signing.network}`,
  );
  return membership;
}

/** Throws unless `signerKey` is one of `organization`'s registered connector keys. */
export function checkSigner(trust: ProofTrust, organization: string, signerKey: Uint8Array): void {
  const keys = trust.signingKeys(organization);
  if (keys === undefined)
    throw new LedgerbusError(ErrorCode.WrongGroup, `organization ${organization} is not in this network`);
  if (!keys.some((key) => bytesEqual(key, signerKey))) {
    throw new LedgerbusError(
      ErrorCode.BadSignature,
      `the transaction was signed by a key that is not ${organization}'s`,
    );
  }
}
