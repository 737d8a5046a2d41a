/**
 * The proof verifier's view of a registry: its network, replica keys per group epoch, signing keys
 * per organization.
 */
import { SigningDomain } from '../crypto/index.js';
import type { ProofTrust } from '../proofs/index.js';
import type { NetworkRegistry } from './types.js';

export function proofTrustOf(registry: NetworkRegistry): ProofTrust {
  return {
    signing: SigningDomain.of(registry.network),
    membership: (groupId, configEpoch) => registry.membership(groupId, configEpoch),
    signingKeys: (organization) => registry.organization(organization)?.signingKeys,
  };
}
