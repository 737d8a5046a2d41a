import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { TransactionSubmitter } from '../session/submitter.js';
import { partsFixture, startNodeStandIn } from '../testing/parts-fixture.js';
import type { NodeStandIn, PartsFixture } from '../testing/parts-fixture.js';
import { Publisher } from './publisher.js';
import { refusal } from '../../testing/refusal.js';

let fixture: PartsFixture;
let node: NodeStandIn;
let publisher: Publisher;
let published = 0;

beforeAll(async () => {
  fixture = partsFixture();
  const context = await fixture.context(0);
  node = await startNodeStandIn(context.organization, {
    publish: () => {
      published += 1;
      throw new LedgerbusError(ErrorCode.Internal, 'the test node publishes nothing');
    },
  });
  const session = fixture.session(context, 0, node.node);
  const submitter = new TransactionSubmitter({ ...context, session });
  publisher = new Publisher({ ...context, session, submitter, syncRegistry: async () => {} });
});

afterAll(async () => {
  await node.close();
  await fixture.close();
});

function recipient(): string {
  return fixture.layout.network.organizations[1]!.id;
}

describe('Publisher', () => {
  it('refuses a topic the registry does not know as TOPIC_NOT_FOUND, reading nothing', async () => {
    const value = Readable.from([Buffer.from('hello')]);
    const error = await refusal(publisher.send('no-such-topic', [{ to: [recipient()], value }]));
    expect(error.code).toBe(ErrorCode.TopicNotFound);
    expect(error.message).toContain('no-such-topic');
    expect(published).toBe(0);
  });

  it('refuses a declared size past the topic’s bound before storing anything', async () => {
    const value = Readable.from([Buffer.alloc(8)]);
    const error = await refusal(
      publisher.send('demo', [{ to: [recipient()], value, size: 2 * 1024 * 1024 }]),
    );
    expect(error.code).toBe(ErrorCode.MessageRejected);
    expect(error.message).toContain('MESSAGE_TOO_LARGE');
    expect(value.destroyed).toBe(true);
    expect(published).toBe(0);
  });
});
