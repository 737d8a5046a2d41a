/**
 * The checks a backup makes on the proposal a pre-prepare carries before accepting it (Castro &
 * Liskov §4.2: the digest is the proposal's, the requests are valid and signed by their clients),
 * plus ours: the batch fits the limits, names the registry it executes against, and a fresh one is
 * stamped by the primary of the view with a time not too far ahead of our clock.
 */
import { ErrorCode } from '../../errors.js';
import { proposalDigest } from './messages.js';
import type { PrePrepare } from './messages.js';
import { primaryOf, sameBytes } from './quorum.js';
import { rejectForGood, rejectForNow } from './rejections.js';
import type { RequestTable } from './request-table.js';
import type { PbftConfig, PbftCrypto, Proposal, RegistryIndexes } from './types.js';

export interface ProposalCheckOptions {
  readonly config: PbftConfig;
  readonly crypto: PbftCrypto;
  /** Authenticates each request once and remembers the proposal's digest keys. */
  readonly requests: RequestTable;
  /** The receiver's clock, in ms. */
  readonly now: number;
  /** The registry indexes the receiver has applied, if its driver reports them. */
  readonly registry: RegistryIndexes | undefined;
  /** True for a pre-prepare of the normal case; false for one re-proposed in a new view. */
  readonly expectFresh: boolean;
}

/** A fresh proposal must name the registry, and not one staler than `registryLagMax` (see PbftConfig). */
function checkRegistryIndexes(
  proposal: Proposal,
  config: PbftConfig,
  registry: RegistryIndexes | undefined,
): void {
  if (registry === undefined) return;
  const { systemIndex, topicIndex } = proposal;
  if (systemIndex === undefined || topicIndex === undefined) {
    throw rejectForGood(ErrorCode.WrongDigest, 'proposal does not name the registry indexes');
  }
  const lag = config.registryLagMax ?? 64;
  if (systemIndex + lag < registry.system || topicIndex + lag < registry.topic) {
    throw rejectForGood(
      ErrorCode.WrongDigest,
      `proposal names registry ${systemIndex}/${topicIndex}, staler than ${registry.system}/${registry.topic} allows`,
    );
  }
}

/**
 * Checks a proposal carried by a pre-prepare: its digest, its origin and every request in it.
 * A fresh proposal must name the pre-prepare's own view and primary; one re-proposed in a new view
 * is checked against the view-change evidence instead.
 */
export function checkProposal(message: PrePrepare, options: ProposalCheckOptions): void {
  const { config, crypto, requests } = options;
  const proposal = message.proposal;
  if (!sameBytes(proposalDigest(crypto, proposal), message.digest)) {
    throw rejectForGood(ErrorCode.WrongDigest, `pre-prepare digest does not match its proposal`);
  }
  if (options.expectFresh) {
    const primary = config.replicas[primaryOf(message.view, config.replicas.length)]!;
    if (proposal.view !== message.view || proposal.proposer !== primary.id) {
      throw rejectForGood(ErrorCode.WrongDigest, 'proposal names another view or proposer');
    }
    if (proposal.timestamp > options.now + config.clockSkewMaxMs) {
      // Retriable: once this replica's clock catches up, the same pre-prepare (retransmitted after
      // a status message) passes.
      throw rejectForNow(ErrorCode.ClockSkew, 'proposal timestamp is too far in the future');
    }
    checkRegistryIndexes(proposal, config, options.registry);
  }
  if (proposal.requests.length > config.batchRequestsMax) {
    throw rejectForGood(ErrorCode.Oversize, 'proposal has more requests than batchRequestsMax');
  }
  let bytes = 0;
  const seen = new Set<string>();
  const keys: string[] = [];
  for (const request of proposal.requests) {
    bytes += request.length;
    const digestKey = requests.digestKey(request);
    if (seen.has(digestKey)) throw rejectForGood(ErrorCode.Replay, 'proposal repeats a request');
    seen.add(digestKey);
    keys.push(digestKey);
    requests.authenticate(request, digestKey);
  }
  if (bytes > config.batchBytesMax + config.requestBytesMax) {
    throw rejectForGood(ErrorCode.Oversize, 'proposal exceeds batchBytesMax');
  }
  requests.rememberProposalKeys(proposal.requests, keys);
}
