/** The proof verifier's view of a registry: replica keys per group epoch, signing keys per organization. */
import type { ProofTrust } from '../proofs/index.js';
import type { NetworkRegistry } from './genesis.js';

export function proofTrustOf(registry: NetworkRegistry): ProofTrust {
  return {
    membership: (groupId, configEpoch) => registry.membership(groupId, configEpoch),
    signingKeys: (organization) => registry.organization(organization)?.signingKeys,
  };
}
