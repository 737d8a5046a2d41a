/**
 * The connector's consumers: one PartitionConsumer for every partition of every topic this
 * organization consumes, started as the registry shows them (new topics, added partitions), with the
 * registry refreshed from the node every second.
 */
import type { ConnectorContext } from '../context.js';
import { describeError } from '../lifecycle.js';
import { PartitionConsumer } from './partition-consumer.js';
import type { PartitionConsumerOptions } from './partition-consumer.js';
import { partitionGroupId } from '../../contracts/registry.js';

/** How often the connector refreshes its registry view (topics, partitions, organizations). */
const registrySyncMs = 1_000;

export interface ConsumerRunnerOptions extends Pick<
  ConnectorContext,
  'organization' | 'registry' | 'logger' | 'lifecycle'
> {
  /** Refreshes the registry from the node. */
  readonly syncRegistry: () => Promise<void>;
  /** What every partition's consumer is built with, but its topic and partition. */
  readonly consumer: Omit<PartitionConsumerOptions, 'topic' | 'partition'>;
}

export class ConsumerRunner {
  /** Consumers by partition ("topic/p"): one per partition this organization may consume, never two. */
  private readonly consumers = new Map<string, PartitionConsumer>();
  /** One per consumer, and the registry loop. */
  private readonly loops: Promise<void>[] = [];

  constructor(private readonly options: ConsumerRunnerOptions) {}

  /** Partitions ("topic/p") with a consumer running. */
  get partitions(): string[] {
    return [...this.consumers.keys()];
  }

  /** The consumer of `partition` ("topic/p"), if one runs. */
  consumerOf(partition: string): PartitionConsumer | undefined {
    return this.consumers.get(partition);
  }

  /** Starts the consumers of the partitions known now and the loop that keeps the registry current. */
  start(): void {
    this.startConsumers();
    this.loops.push(this.registryLoop());
  }

  /** Resolves once every loop has ended (after the lifecycle stopped). */
  async stopped(): Promise<void> {
    await Promise.allSettled(this.loops);
  }

  /** Starts a consumer for each consumable partition that has none; never two for one partition. */
  startConsumers(): void {
    for (const topic of this.options.registry.topics()) {
      if (!topic.consumers.has(this.options.organization)) continue;
      for (let partition = 0; partition < topic.partitionCount; partition++) {
        const key = partitionGroupId(topic.name, partition);
        if (this.consumers.has(key)) continue;
        const consumer = new PartitionConsumer({ ...this.options.consumer, topic: topic.name, partition });
        this.consumers.set(key, consumer);
        this.loops.push(consumer.run());
      }
    }
  }

  private async registryLoop(): Promise<void> {
    const { lifecycle } = this.options;
    while (!lifecycle.stopped) {
      try {
        await this.options.syncRegistry();
        this.startConsumers();
      } catch (error) {
        this.options.logger.debug({ error: describeError(error) }, 'registry refresh failed; retrying');
      }
      await lifecycle.pause(registrySyncMs);
    }
  }
}
