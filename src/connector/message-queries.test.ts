import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { MessageQueries } from './message-queries.js';
import { partsFixture } from './testing/parts-fixture.js';
import type { PartsFixture } from './testing/parts-fixture.js';

let fixture: PartsFixture;
let queries: MessageQueries;

beforeAll(async () => {
  fixture = partsFixture();
  const context = await fixture.context(0);
  const session = fixture.session(context, 0, context.registry.nodes()[0]!);
  queries = new MessageQueries({ ...context, session });
  context.database.insertSent({
    id: 'mine',
    topic: 'demo',
    partition: 0,
    group_id: 'demo/0',
    header: new Uint8Array([0]),
    storage_key: 'key',
    size: 1,
    recipients: '[]',
    created_at: 1,
  });
});

afterAll(() => fixture.close());

describe('MessageQueries.groupOf', () => {
  it('uses the partition named, else the one where the message was sent, else partition 0 of a one-partition topic', () => {
    expect(queries.groupOf('demo', 'anything', 3)).toBe('demo/3');
    expect(queries.groupOf('demo', 'mine')).toBe('demo/0');
    expect(queries.groupOf('demo', 'someone-elses')).toBe('demo/0');
  });

  it('is MESSAGE_NOT_FOUND for a message of a topic it cannot place', () => {
    let error: unknown;
    try {
      queries.groupOf('no-such-topic', 'x');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(LedgerbusError);
    expect((error as LedgerbusError).code).toBe(ErrorCode.MessageNotFound);
  });
});
