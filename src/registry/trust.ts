/** The proof verifier's view of a registry: replica keys per group epoch, signing keys per organization. */
import type { GroupMembership } from '../ledger/block.js';
import type { ProofTrust } from '../proofs/index.js';
import type { NetworkRegistry } from './genesis.js';

export function proofTrustOf(registry: NetworkRegistry): ProofTrust {
  return {
    membership(groupId: string, configEpoch: number): GroupMembership | undefined {
      const partition = registry.partition(groupId);
      if (partition === undefined || partition.configEpoch !== configEpoch) return undefined;
      const members = new Map<string, Uint8Array>();
      for (const replica of partition.replicas) {
        const node = registry.node(replica);
        if (node === undefined) return undefined;
        members.set(replica, node.publicKey);
      }
      return { partitionId: groupId, configEpoch, members };
    },
    signingKeys(organization: string): readonly Uint8Array[] | undefined {
      return registry.organization(organization)?.signingKeys;
    },
  };
}
