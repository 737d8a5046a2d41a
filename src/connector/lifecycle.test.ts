import { describe, expect, it } from 'vitest';
import { createLogger } from '../runtime/logger.js';
import type { ConnectorEvent } from './api-types.js';
import { ConnectorEvents } from './events.js';
import { Lifecycle } from './lifecycle.js';
import { ManualClock } from './testing/parts-fixture.js';

describe('Lifecycle', () => {
  it('pauses on the injected clock, and stop() ends every pause under way at once', async () => {
    const clock = new ManualClock();
    const lifecycle = new Lifecycle(clock);
    let ended = 0;
    const pauses = [lifecycle.pause(1_000), lifecycle.pause(30_000)].map((pause) =>
      pause.then(() => ended++),
    );
    expect(clock.waits).toEqual([1_000, 30_000]);
    clock.fireNext();
    await pauses[0];
    expect(ended).toBe(1);
    lifecycle.stop();
    await pauses[1];
    expect(ended).toBe(2);
    expect(clock.pending).toBe(0);
    // Once stopped, a pause does not wait at all.
    await lifecycle.pause(60_000);
    expect(clock.waits).toHaveLength(2);
  });

  it('gives retry policies a clock whose sleeps end when it stops', async () => {
    const clock = new ManualClock();
    const lifecycle = new Lifecycle(clock);
    const sleeping = lifecycle.retryClock.sleep(5_000);
    expect(lifecycle.retryClock.now()).toBe(clock.now());
    lifecycle.stop();
    await sleeping;
    expect(clock.pending).toBe(0);
  });
});

describe('ConnectorEvents', () => {
  it('tells every listener, even after one throws, and forgets a removed one', () => {
    const events = new ConnectorEvents(createLogger({ name: 'test', level: 'silent' }));
    const seen: string[] = [];
    events.onEvent(() => {
      throw new Error('a broken listener');
    });
    const remove = events.onEvent((event) => seen.push(`a:${event.type}`));
    events.onEvent((event) => seen.push(`b:${event.type}`));
    const event: ConnectorEvent = {
      type: 'message.failed',
      id: 'm',
      topic: 't',
      partition: 0,
      code: 'X',
      reason: 'r',
    };
    events.emit(event);
    remove();
    events.emit(event);
    expect(seen).toEqual(['a:message.failed', 'b:message.failed', 'b:message.failed']);
  });
});
