/**
 * The deterministic application the simulator's replicas execute: an append-only log that gives each
 * new (client, seq) the next offset and answers a repeat with "duplicate". It is the shape of the SDT
 * contract's publish (idempotent by id, offsets per partition), small enough to rebuild by replay.
 */
import { decodeValidated, encodeCanonical } from '../codec/index.js';
import { hexKey } from '../consensus/pbft/quorum.js';
import type { ContractState } from '../contracts/state.js';
import type { ExecutionContext, PartitionStateMachine } from '../partition/driver.js';

/** The registry as the simulated replicas see it: only the indexes a batch names matter. */
export interface SimRegistry {
  readonly system: number;
  readonly topic: number;
}

const offsetKey = 'next-offset';

/**
 * The application as the partition driver's state machine, with its state (the (client, seq) pairs
 * seen and the next offset) in the driver's contract state, so it survives a crash exactly as far as
 * the storage does.
 */
export const simStateMachine: PartitionStateMachine<SimRegistry, never> = {
  execute(state: ContractState, context: ExecutionContext<SimRegistry>) {
    const stored = state.get(offsetKey);
    let nextOffset = stored === undefined ? 0 : (decodeValidated(stored) as number);
    const results = context.requests.map((bytes) => {
      const request = decodeValidated(bytes) as { client: Uint8Array; seq: number };
      const key = `seen/${hexKey(request.client)}:${request.seq}`;
      if (state.get(key) !== undefined) return encodeCanonical({ status: 'duplicate' });
      state.put(key, seenMarker);
      return encodeCanonical({ status: 'accepted', offset: nextOffset++ });
    });
    state.put(offsetKey, encodeCanonical(nextOffset));
    return { results, events: [] };
  },
};

const seenMarker = new Uint8Array([1]);
