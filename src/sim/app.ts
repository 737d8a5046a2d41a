/**
 * The deterministic application the simulator's replicas execute: an append-only log that gives each
 * new (client, seq) the next offset and answers a repeat with "duplicate". It is the shape of the SDT
 * contract's publish (idempotent by id, offsets per partition), small enough to rebuild by replay.
 */
import { decodeValidated, encodeCanonical } from '../codec/index.js';
import { hexKey } from '../consensus/pbft/quorum.js';
import type { Proposal } from '../consensus/pbft/types.js';

export class SimApplication {
  private nextOffset = 0;
  private readonly seen = new Set<string>();

  /** Executes one batch and returns its per-request results (the leaves of the results root). */
  execute(proposal: Proposal): Uint8Array[] {
    return proposal.requests.map((bytes) => {
      // The core decoded and verified every request strictly before it could be committed.
      const request = decodeValidated(bytes) as { client: Uint8Array; seq: number };
      const key = `${hexKey(request.client)}:${request.seq}`;
      if (this.seen.has(key)) return encodeCanonical({ status: 'duplicate' });
      this.seen.add(key);
      return encodeCanonical({ status: 'accepted', offset: this.nextOffset++ });
    });
  }

  get offsets(): number {
    return this.nextOffset;
  }
}
