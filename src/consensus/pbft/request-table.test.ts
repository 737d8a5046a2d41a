import { describe, expect, it } from 'vitest';
import { AssertionError, ErrorCode, LedgerbusError } from '../../errors.js';
import { RequestTable } from './request-table.js';
import { Cluster } from '../../partition/testing/cluster.js';

/** The request table on its own: the life of a client request at one replica, and its limits. */

function setup(tuning: { pendingRequestsMax?: number; batchRequestsMax?: number } = {}) {
  const cluster = new Cluster({ replicas: 4, label: 'request-table', tuning });
  const table = new RequestTable(cluster.configFor(1), cluster.node(1).signer.crypto);
  const client = cluster.client(0);
  /** Authenticates and admits a request as the replica does, at `tick`. */
  const admit = (bytes: Uint8Array, tick = 0) => {
    const digestKey = table.digestKey(bytes);
    const clientSeqKey = table.authenticate(bytes, digestKey);
    table.admit({ bytes, digestKey, clientSeqKey, arrivedTick: tick });
    return { digestKey, clientSeqKey };
  };
  return { table, client, admit };
}

describe('RequestTable', () => {
  it('takes a request from pending through a batch to committed', () => {
    const { table, client, admit } = setup({ batchRequestsMax: 2 });
    const first = client.request();
    const { digestKey, clientSeqKey } = admit(first);
    expect(table.pendingCount).toBe(1);
    // A partial batch waits batchTicksMax (1) for its oldest request.
    expect(table.takeBatch(0)).toBeUndefined();
    expect(table.takeBatch(1)).toEqual([first]);
    expect(table.unproposedCount).toBe(0);
    expect(table.isPending(digestKey)).toBe(true);
    table.markExecuted(7, [first]);
    expect(table.isPending(digestKey)).toBe(false);
    expect(table.committedAt(clientSeqKey)).toBe(7);
  });

  it('refuses a request over pendingRequestsMax with a retriable OVERLOADED', () => {
    const { client, admit } = setup({ pendingRequestsMax: 1 });
    admit(client.request());
    let refusal: unknown;
    try {
      admit(client.request());
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(LedgerbusError);
    expect(refusal).toMatchObject({ code: ErrorCode.Overloaded, retriable: true });
  });

  it('drops a client’s other version of a (client, seq) when one of them executes', () => {
    const { table, client, admit } = setup();
    const one = client.request(new Uint8Array([1]), 5);
    const other = client.request(new Uint8Array([2]), 5);
    admit(one);
    const { digestKey } = admit(other);
    table.markExecuted(1, [one]);
    expect(table.pendingCount).toBe(0);
    expect(table.isPending(digestKey)).toBe(false);
  });

  it('admitting a request that already committed is a bug (the replica answers it from the ledger)', () => {
    const { table, client, admit } = setup();
    const bytes = client.request();
    admit(bytes);
    table.markExecuted(1, [bytes]);
    expect(() => admit(bytes)).toThrow(AssertionError);
  });

  it('makes every pending request eligible again in a new view, except those O carries (§4.4)', () => {
    const { table, client, admit } = setup({ batchRequestsMax: 3 });
    const requests = [client.request(), client.request(), client.request()];
    for (const bytes of requests) admit(bytes);
    expect(table.takeBatch(1)).toHaveLength(3);
    table.requeueForNewView([[requests[1]!]]);
    expect(table.unproposedCount).toBe(2);
    expect(table.takeBatch(2)).toEqual([requests[0], requests[2]]);
  });
});
