import { afterEach, describe, expect, it } from 'vitest';
import type { CborValue } from '../../codec/index.js';
import type { ConnectorEvent } from '../api-types.js';
import type { ConnectorContext } from '../context.js';
import { partMessageId } from '../parts.js';
import { counterValue, parseExposition } from '../../testing/exposition.js';
import { partsFixture, startNodeStandIn } from '../testing/parts-fixture.js';
import { DeliveryWatcher } from './delivery-watcher.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Message m<n> (or `id`) of demo/`partition` to org2 and org3, sent and accepted at offset n - 1. */
function insertOpenSent(context: ConnectorContext, n: number, partition = 0, id = `m${n}`): void {
  context.database.insertSent({
    id,
    topic: 'demo',
    partition,
    group_id: `demo/${partition}`,
    header: new Uint8Array([0]),
    storage_key: 'key',
    size: 1,
    recipients: JSON.stringify(['org2', 'org3']),
    created_at: n,
  });
  context.database.markSent('demo', id, n - 1, 1, new Uint8Array([0]));
}

/** The delivered, completed and expired counters of `context`'s connector on demo. */
async function transitions(
  context: ConnectorContext,
): Promise<{ delivered: number; completed: number; expired: number }> {
  const samples = parseExposition((await context.metrics.exposition()).text);
  const value = (name: string): number =>
    counterValue(samples, `ledgerbus_messages_${name}_total`, { topic: 'demo' });
  return { delivered: value('delivered'), completed: value('completed'), expired: value('expired') };
}

/** A watcher over one sent message m1 of demo/0, whose node answers m1's lifecycle with `answer()`. */
async function watcherOf(answer: () => CborValue): Promise<{
  context: ConnectorContext;
  watcher: DeliveryWatcher;
  events: ConnectorEvent[];
  asked: CborValue[];
}> {
  const fixture = partsFixture();
  cleanups.push(() => fixture.close());
  const context = await fixture.context(0);
  const asked: CborValue[] = [];
  const node = await startNodeStandIn(context.organization, {
    messages: (body) => {
      asked.push(body);
      return { messages: [answer()] };
    },
  });
  cleanups.push(() => node.close());
  const session = fixture.session(context, 0, node.node);
  cleanups.push(() => session.close());
  insertOpenSent(context, 1);
  const events: ConnectorEvent[] = [];
  context.events.onEvent((event) => events.push(event));
  return { context, watcher: new DeliveryWatcher({ ...context, session }), events, asked };
}

describe('DeliveryWatcher', () => {
  it('reports each recipient’s delivery once, across rounds, and stops asking once the message is settled', async () => {
    const message = { id: 'm1', sender: 'org1', offset: 0, height: 1 };
    let answer: CborValue = {
      ...message,
      state: 'ACCEPTED',
      recipients: [
        { organization: 'org2', state: 'DELIVERED', height: 5 },
        { organization: 'org3', state: 'PENDING' },
      ],
    };
    const { context, watcher, events, asked } = await watcherOf(() => answer);
    await watcher.round();
    await watcher.round();
    expect(events).toEqual([
      { type: 'delivery.confirmed', id: 'm1', topic: 'demo', partition: 0, recipient: 'org2', height: 5 },
    ]);
    expect(asked[0]).toEqual({ group: 'demo/0', ids: ['m1'] });
    answer = {
      ...message,
      state: 'COMPLETED',
      recipients: [
        { organization: 'org2', state: 'DELIVERED', height: 5 },
        { organization: 'org3', state: 'DELIVERED', height: 6 },
      ],
    };
    await watcher.round();
    expect(events.map((event) => (event.type === 'delivery.confirmed' ? event.recipient : ''))).toEqual([
      'org2',
      'org3',
    ]);
    expect(context.database.sent('demo', 'm1')).toMatchObject({ state: 'COMPLETED' });
    await watcher.round();
    expect(asked).toHaveLength(3);
  });

  it('records everything a failed round emitted, so the next round reports no delivery twice', async () => {
    let failFirst = true;
    const { context, events } = await watcherOf(() => ({}));
    // The stand-in above answers nothing useful; this one fails demo/0 once and answers the other
    // partitions late, so their answers come in after the round has failed.
    const node = await startNodeStandIn(context.organization, {
      messages: async (body) => {
        const { group, ids } = body as { group: string; ids: string[] };
        if (group === 'demo/0' && failFirst) {
          failFirst = false;
          throw new Error('node unavailable');
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
        const reply = {
          messages: ids.map((id) => ({
            id,
            sender: 'org1',
            offset: 0,
            height: 1,
            state: 'ACCEPTED',
            recipients: [
              { organization: 'org2', state: 'DELIVERED', height: 5 },
              { organization: 'org3', state: 'PENDING' },
            ],
          })),
        };
        return reply as unknown as CborValue;
      },
    });
    cleanups.push(() => node.close());
    const fixture = partsFixture();
    cleanups.push(() => fixture.close());
    const session = fixture.session(context, 0, node.node);
    cleanups.push(() => session.close());
    for (let index = 2; index <= 40; index++) insertOpenSent(context, index, index % 8);
    const failing = new DeliveryWatcher({ ...context, session });
    await expect(failing.round()).rejects.toThrow();
    // Workers of the failed round that were still answering have finished by now.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await failing.round();
    await failing.round();
    const confirmed = events.filter((event) => event.type === 'delivery.confirmed');
    const perMessage = new Map<string, number>();
    for (const event of confirmed) perMessage.set(event.id, (perMessage.get(event.id) ?? 0) + 1);
    expect(perMessage.size).toBe(40);
    expect([...perMessage.values()].every((count) => count === 1)).toBe(true);
  });

  it('counts each message’s transitions once: its first delivery, then COMPLETED or EXPIRED; parts not at all', async () => {
    const part = partMessageId('ab'.repeat(16), 0);
    /** Per id: round by round, which recipients confirmed and the message's state. */
    const script: Record<string, { delivered: string[]; state: string }[]> = {
      // Its two recipients confirm in different rounds: one delivery, then one completion.
      m1: [
        { delivered: ['org2'], state: 'ACCEPTED' },
        { delivered: ['org2'], state: 'ACCEPTED' },
        { delivered: ['org2', 'org3'], state: 'COMPLETED' },
      ],
      // Expires with one recipient's confirmation: delivered and expired.
      m2: [
        { delivered: [], state: 'ACCEPTED' },
        { delivered: ['org3'], state: 'EXPIRED' },
      ],
      // Expires unconfirmed: only expired.
      m3: [{ delivered: [], state: 'EXPIRED' }],
      // A part of a large value is followed, not counted.
      [part]: [{ delivered: ['org2', 'org3'], state: 'COMPLETED' }],
    };
    let round = 0;
    const lifecycle = (id: string): CborValue => {
      const steps = script[id]!;
      const step = steps[Math.min(round, steps.length - 1)]!;
      return {
        id,
        sender: 'org1',
        offset: 0,
        height: 1,
        state: step.state,
        recipients: ['org2', 'org3'].map((organization): CborValue =>
          step.delivered.includes(organization)
            ? { organization, state: 'DELIVERED', height: 5 }
            : { organization, state: 'PENDING' },
        ),
      };
    };
    const fixture = partsFixture();
    cleanups.push(() => fixture.close());
    const context = await fixture.context(0);
    const node = await startNodeStandIn(context.organization, {
      messages: (body) => ({ messages: (body as { ids: string[] }).ids.map(lifecycle) }),
    });
    cleanups.push(() => node.close());
    const session = fixture.session(context, 0, node.node);
    cleanups.push(() => session.close());
    for (let n = 1; n <= 3; n++) insertOpenSent(context, n);
    insertOpenSent(context, 4, 0, part);
    const watcher = new DeliveryWatcher({ ...context, session });
    const expected = [
      { delivered: 1, completed: 0, expired: 1 }, // m1 delivered to org2, m3 expired
      { delivered: 2, completed: 0, expired: 2 }, // m2 delivered to org3 and expired; m1 as before
      { delivered: 2, completed: 1, expired: 2 }, // m1 delivered to org3 too: completed
      { delivered: 2, completed: 1, expired: 2 }, // nothing is open: nothing more
    ];
    for (const [index, counts] of expected.entries()) {
      round = index;
      await watcher.round();
      expect(await transitions(context), `after round ${index + 1}`).toEqual(counts);
    }
  });

  it('goes through every open message in turn: messages that stay open do not hide those after them', async () => {
    const lifecycle = (id: string): CborValue => ({
      id,
      sender: 'org1',
      offset: 0,
      height: 1,
      state: id === 'm3' ? 'COMPLETED' : 'ACCEPTED',
      recipients: [
        {
          organization: 'org2',
          state: id === 'm3' ? 'DELIVERED' : 'PENDING',
          ...(id === 'm3' ? { height: 4 } : {}),
        },
        {
          organization: 'org3',
          state: id === 'm3' ? 'DELIVERED' : 'PENDING',
          ...(id === 'm3' ? { height: 4 } : {}),
        },
      ],
    });
    const fixture = partsFixture();
    cleanups.push(() => fixture.close());
    const context = await fixture.context(0);
    const node = await startNodeStandIn(context.organization, {
      messages: (body) => ({ messages: (body as { ids: string[] }).ids.map(lifecycle) }),
    });
    cleanups.push(() => node.close());
    const session = fixture.session(context, 0, node.node);
    cleanups.push(() => session.close());
    for (let n = 1; n <= 3; n++) insertOpenSent(context, n);
    const watcher = new DeliveryWatcher({ ...context, session, pageSize: 2 });
    expect(await watcher.round()).toBe(2);
    expect(context.database.sent('demo', 'm3')).toMatchObject({ state: 'ACCEPTED' });
    expect(await watcher.round()).toBe(1);
    expect(context.database.sent('demo', 'm3')).toMatchObject({ state: 'COMPLETED' });
    // A short page starts the scan again from the oldest.
    expect(await watcher.round()).toBe(2);
  });
});
