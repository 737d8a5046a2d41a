import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { Cluster } from '../../partition/testing/cluster.js';
import type { Rejection } from './types.js';

/**
 * Every rejection says whether trying again can help, so a driver decides on retries from the flag and
 * never from the code or the message text (issue 13 item 3).
 */

function only(rejected: readonly Rejection[]): Rejection {
  expect(rejected).toHaveLength(1);
  return rejected[0]!;
}

describe('a rejection says whether trying again can help', () => {
  it('a full request queue is retriable', () => {
    const cluster = new Cluster({ replicas: 4, label: 'retriable-full', tuning: { pendingRequestsMax: 1 } });
    const client = cluster.client(0);
    cluster.step(1, { kind: 'request', bytes: client.request() });
    const refusal = only(cluster.step(1, { kind: 'request', bytes: client.request() }).rejected);
    expect(refusal.code).toBe(ErrorCode.Overloaded);
    expect(refusal.retriable).toBe(true);
  });

  it('a prepare for a view or window this replica has not reached yet is retriable', () => {
    // Reference: Castro & Liskov §4.2 (a replica accepts a prepare only in its current view); a
    // replica that lags behind enters the later view and can then take it (§4.4).
    const cluster = new Cluster({ replicas: 4, label: 'retriable-view' });
    const digest = new Uint8Array(32);
    const ahead = cluster.inject(1, cluster.sign(2, { type: 'prepare', view: 1, seq: 1, digest }));
    expect(only(ahead.rejected)).toMatchObject({ code: ErrorCode.WrongView, retriable: true });

    const aheadWindow = cluster.inject(1, cluster.sign(2, { type: 'prepare', view: 0, seq: 9, digest }));
    expect(only(aheadWindow.rejected)).toMatchObject({ code: ErrorCode.OutOfWindow, retriable: true });
  });

  it('a client request with a bad signature is not retriable', () => {
    const cluster = new Cluster({ replicas: 4, label: 'retriable-signature' });
    const request = cluster.client(0).request();
    // The signature is the last field of the encoded request: flipping its last byte breaks only it.
    const forged = request.slice();
    forged[forged.length - 1]! ^= 0x01;
    const refusal = only(cluster.step(1, { kind: 'request', bytes: forged }).rejected);
    expect(refusal.code).toBe(ErrorCode.BadSignature);
    expect(refusal.retriable).toBe(false);
  });

  it('a replayed prepare and a prepare from the primary are not retriable', () => {
    const cluster = new Cluster({ replicas: 4, label: 'retriable-replay' });
    const digest = new Uint8Array(32);
    const prepare = cluster.sign(2, { type: 'prepare', view: 0, seq: 1, digest });
    expect(cluster.inject(1, prepare).rejected).toEqual([]);
    expect(only(cluster.inject(1, prepare).rejected)).toMatchObject({
      code: ErrorCode.Replay,
      retriable: false,
    });
    const fromPrimary = cluster.sign(0, { type: 'prepare', view: 0, seq: 2, digest });
    expect(only(cluster.inject(1, fromPrimary).rejected)).toMatchObject({
      code: ErrorCode.NotPrimary,
      retriable: false,
    });
  });
});
