/**
 * One-server-at-a-time membership changes (Ongaro's thesis §4.1) as a pure function of the
 * configuration in force. Configurations are kept sorted so that equal ones compare equal.
 *
 * Invariant (asserted on every result): a configuration has at least one voter and no server in
 * both lists.
 */
import { ErrorCode, LedgerbusError, assert } from '../../errors.js';
import { badConfig } from './config.js';
import type { Membership, MembershipChange } from './types.js';

export function sortedMembership(voters: readonly string[], learners: readonly string[]): Membership {
  return { voters: [...voters].sort(), learners: [...learners].sort() };
}

/**
 * The configuration after `change`. Throws LedgerbusError BadConfig if the change does not apply
 * (adding a voter twice, a member as a learner, removing a non-member or the last voter) and
 * SchemaMismatch for an unknown change type.
 */
export function changedMembership(membership: Membership, change: MembershipChange): Membership {
  const voters = membership.voters.filter((id) => id !== change.id);
  const learners = membership.learners.filter((id) => id !== change.id);
  const isMember = voters.length + learners.length < membership.voters.length + membership.learners.length;
  switch (change.type) {
    case 'addVoter':
      if (membership.voters.includes(change.id)) throw badConfig('change.id', `${change.id} is a voter`);
      voters.push(change.id);
      break;
    case 'addLearner':
      if (isMember) throw badConfig('change.id', `${change.id} is already a member`);
      learners.push(change.id);
      break;
    case 'removeServer':
      if (!isMember) throw badConfig('change.id', `${change.id} is not a member`);
      if (voters.length === 0) throw badConfig('change.id', 'cannot remove the last voter');
      break;
    default:
      throw new LedgerbusError(ErrorCode.SchemaMismatch, 'change.type: unknown');
  }
  const next = sortedMembership(voters, learners);
  assert(next.voters.length > 0, 'a configuration has a voter');
  assert(!next.voters.some((id) => next.learners.includes(id)), 'no server is both voter and learner');
  return next;
}
