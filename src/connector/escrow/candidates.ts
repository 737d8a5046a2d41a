/**
 * Who may keep a sender's escrowed chunks and key shares (DESIGN §7): the organizations the escrow
 * contract accepts in a message's placement and share list.
 */
import type { LiveRegistry } from '../../registry/live-registry.js';

/**
 * The APPROVED organizations with role 'member', other than `sender`, sorted by id (UTF-16 code
 * units, the order the contract uses). Suspended, revoked and pending organizations, supervisors
 * and auditors that are not also members are left out, as the contract refuses them as holders.
 * Placement itself does not depend on this order (rendezvous ranking ignores it); the sort keeps
 * error messages and logs stable.
 */
export function escrowCandidates(registry: Pick<LiveRegistry, 'organizations'>, sender: string): string[] {
  return registry
    .organizations()
    .filter(
      (organization) =>
        organization.id !== sender &&
        organization.status === 'APPROVED' &&
        organization.roles.includes('member'),
    )
    .map((organization) => organization.id)
    .sort();
}
