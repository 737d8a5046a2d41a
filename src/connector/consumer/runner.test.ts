import { afterAll, describe, expect, it } from 'vitest';
import { TransactionSubmitter } from '../session/submitter.js';
import { partsFixture } from '../testing/parts-fixture.js';
import { DeliveryConfirmer } from './delivery-confirmer.js';
import { PayloadFetcher } from './payload-fetcher.js';
import { ConsumerRunner } from './runner.js';

const fixture = partsFixture();
afterAll(() => fixture.close());

describe('ConsumerRunner', () => {
  it('starts one consumer per partition the organization consumes, never a second one', async () => {
    const context = await fixture.context(1);
    const node = context.registry.nodes()[0]!;
    const session = fixture.session(context, 1, node);
    const submitter = new TransactionSubmitter({ ...context, session });
    const runner = new ConsumerRunner({
      ...context,
      syncRegistry: async () => {},
      consumer: {
        ...context,
        session,
        fetcher: new PayloadFetcher({ ...context, session }),
        confirmer: new DeliveryConfirmer({ ...context, submitter }),
      },
    });
    // Stopped first: the consumers' loops end at once, nothing is asked of the node.
    context.lifecycle.stop();
    runner.startConsumers();
    const first = runner.consumerOf('demo/0');
    runner.startConsumers();
    // The devnet genesis has two topics every member consumes: demo, and datashare (compute-to-data jobs).
    expect(runner.partitions.sort()).toEqual(['datashare/0', 'demo/0']);
    expect(runner.consumerOf('demo/0')).toBe(first);
    await runner.stopped();
  });
});
