import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../errors.js';
import type { Envelope, ViewChange } from './messages.js';
import { CONFIG_EPOCH, GROUP_ID } from '../../partition/testing/cluster.js';
import { ViewChangeState } from './view-change-state.js';

/**
 * The view-change bookkeeping of Castro & Liskov §4.4 and §4.5.2 on its own: views only grow, a
 * sender counts once (in the latest view it asked for), the timer waits for 2f+1 and doubles per
 * attempt, and entering a view uses up what was collected for it.
 */

const envelope: Envelope = { body: new Uint8Array([1]), signature: new Uint8Array([2]) };

function change(from: number, newView: number): { message: ViewChange; envelope: Envelope } {
  return {
    message: {
      type: 'view-change',
      group: GROUP_ID,
      epoch: CONFIG_EPOCH,
      from,
      newView,
      stable: null,
      prepared: [],
    },
    envelope,
  };
}

describe('ViewChangeState', () => {
  it('counts each sender once, in the latest view it asked for', () => {
    const state = new ViewChangeState();
    expect(state.record(1, change(1, 2))).toBe(true);
    expect(state.record(1, change(1, 3))).toBe(true);
    expect(state.record(1, change(1, 2))).toBe(false);
    expect(state.collectedFor(2).size).toBe(0);
    expect(state.collectedFor(3).size).toBe(1);
    expect(state.laterViewsAskedFor(0)).toEqual([3]);
  });

  it('starts the timer only at a quorum, and doubles the timeout with each attempt (§4.5.2)', () => {
    const state = new ViewChangeState();
    expect(state.begin(1)).toBe(true);
    for (const from of [0, 1]) state.record(from, change(from, 1));
    state.armTimerOnQuorum({ ticks: 10, quorum: 3, timeoutTicks: 30 });
    expect(state.timerExpired(1000)).toBe(false);
    state.record(2, change(2, 1));
    state.armTimerOnQuorum({ ticks: 10, quorum: 3, timeoutTicks: 30 });
    expect(state.timerExpired(39)).toBe(false);
    expect(state.timerExpired(40)).toBe(true);
    // No new view came: the next view, with twice the timeout.
    expect(state.begin(2)).toBe(true);
    for (const from of [0, 1, 2]) state.record(from, change(from, 2));
    state.armTimerOnQuorum({ ticks: 40, quorum: 3, timeoutTicks: 30 });
    expect(state.timerExpired(99)).toBe(false);
    expect(state.timerExpired(100)).toBe(true);
  });

  it('counts a replica asking for a later view towards the timer of this one (§4.5.2)', () => {
    // n = 4, replica 3 silent for good; replica 2 already asks for view 2. Waiting for a third
    // request for exactly view 1 would wait forever, and one replica is short of the f+1 rule.
    const state = new ViewChangeState();
    expect(state.begin(1)).toBe(true);
    for (const from of [0, 1]) state.record(from, change(from, 1));
    state.record(2, change(2, 2));
    expect(state.laterViewsAskedFor(0)).toEqual([2]);
    state.armTimerOnQuorum({ ticks: 10, quorum: 3, timeoutTicks: 30 });
    expect(state.timerExpired(39)).toBe(false);
    expect(state.timerExpired(40)).toBe(true);
    // A request for an earlier view does not count.
    const later = new ViewChangeState();
    later.begin(2);
    for (const from of [0, 1]) later.record(from, change(from, 2));
    later.record(2, change(2, 1));
    later.armTimerOnQuorum({ ticks: 10, quorum: 3, timeoutTicks: 30 });
    expect(later.timerExpired(1000)).toBe(false);
  });

  it('enters a view, using up every view change collected for it or before it', () => {
    const state = new ViewChangeState();
    state.begin(1);
    for (const from of [0, 1, 2]) state.record(from, change(from, 1));
    state.record(3, change(3, 2));
    state.enter(1, envelope);
    expect(state.inViewChange).toBe(false);
    expect(state.view).toBe(1);
    expect(state.newViewMessage).toBe(envelope);
    expect(state.collectedFor(1).size).toBe(0);
    expect(state.collectedFor(2).size).toBe(1);
    expect(state.timerExpired(Number.MAX_SAFE_INTEGER)).toBe(false);
  });

  it('never moves back a view: entering an earlier one is a bug and throws', () => {
    const state = new ViewChangeState();
    state.begin(3);
    expect(state.begin(2)).toBe(false);
    expect(state.begin(3)).toBe(false);
    expect(() => state.enter(2, envelope)).toThrow(AssertionError);
    state.enter(3, envelope);
    expect(() => state.enter(3, envelope)).toThrow(AssertionError);
  });
});
