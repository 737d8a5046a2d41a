/**
 * JetStream's side of bench/e2e.ts: publish-with-ack into a 3-replica file stream and a durable pull
 * consumer receiving the same messages, driven and counted by ./e2e-load.ts exactly as ledgerbus is.
 *
 * The publisher and the consumer are two client connections, as two applications would be: the
 * publisher connects to the first server, the consumer to the second (as org1's connector talks to
 * node1 and org2's to node2). The consumer is `consume()` on a durable pull consumer with explicit
 * acks (each message acked as it is handed over, not waited for), delivering from the stream's start;
 * a message's latency runs from the publish call to the consumer's iterator yielding it. Each call
 * makes a fresh stream, with a warm-up setting that is not reported, and deletes it afterwards.
 */
import { performance } from 'node:perf_hooks';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Deliveries, runSetting } from './e2e-load.js';
import { addStream } from './jetstream-publish.js';
import type { SettingResult } from './e2e-load.js';

export interface JetStreamEndToEndOptions {
  readonly urls: readonly string[];
  readonly inFlight: number;
  readonly messages: number;
  readonly messageBytes: number;
  /** Messages of the same shape sent first and not reported (0: none). */
  readonly warmupMessages: number;
  /** How long without a delivery, once every publish was acked, counts as a loss. */
  readonly stallMs: number;
  /** Processes (name → pid) whose CPU over the measured setting is reported, with this client's. */
  readonly cpuOf?: ReadonlyMap<string, number>;
  /** Default "E2E"; its subject is "<name lower-case>.messages". */
  readonly stream?: string;
  /** Ack timeout per publish. Default 10 s (a shared 2-core machine can stall). */
  readonly ackTimeoutMs?: number;
}

export interface JetStreamEndToEndResult extends SettingResult {
  /** The server that led the stream's Raft group. */
  readonly streamLeader: string;
  readonly publisherConnectedTo: string;
  readonly consumerConnectedTo: string;
}

const consumerName = 'e2e';

export async function measureJetStreamEndToEnd(
  options: JetStreamEndToEndOptions,
): Promise<JetStreamEndToEndResult> {
  const streamName = options.stream ?? 'E2E';
  const subject = `${streamName.toLowerCase()}.messages`;
  const timeout = options.ackTimeoutMs ?? 10_000;
  const [first, ...rest] = options.urls;
  const connections: NatsConnection[] = [];
  try {
    const publisher = await connect({ servers: [...options.urls], noRandomize: true, name: 'e2e-publisher' });
    connections.push(publisher);
    const receiver = await connect({
      servers: first === undefined ? [] : [...rest, first],
      noRandomize: true,
      name: 'e2e-consumer',
    });
    connections.push(receiver);
    const jsm = await jetstreamManager(publisher);
    const streamLeader = await addStream(jsm, streamName, subject);
    let measured = false;
    try {
      await jsm.consumers.add(streamName, {
        durable_name: consumerName,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
      });
      const deliveries = new Deliveries();
      const consumer = await jetstream(receiver).consumers.get(streamName, consumerName);
      const messages = await consumer.consume();
      const receiving = (async () => {
        for await (const message of messages) {
          deliveries.receive(message.data, performance.now());
          message.ack();
        }
      })().catch((error: unknown) =>
        deliveries.fail(error instanceof Error ? error : new Error(String(error))),
      );
      const js = jetstream(publisher, { timeout });
      const send = async (payload: Buffer): Promise<void> => {
        const ack = await js.publish(subject, payload, { timeout });
        if (ack.duplicate) throw new Error(`publish ${ack.seq} was taken for a duplicate`);
      };
      const setting = {
        inFlight: options.inFlight,
        messageBytes: options.messageBytes,
        stallMs: options.stallMs,
      };
      try {
        if (options.warmupMessages > 0)
          await runSetting(deliveries, send, { ...setting, phase: 0, messages: options.warmupMessages });
        const result = await runSetting(deliveries, send, {
          ...setting,
          phase: 1,
          messages: options.messages,
          ...(options.cpuOf === undefined ? {} : { cpuOf: options.cpuOf }),
        });
        // Late redeliveries would show up here as duplicates.
        await new Promise((resolve) => setTimeout(resolve, 500));
        const problems = deliveries.problems();
        if (problems.length > 0) throw new Error(`JetStream: ${problems.join('; ')}`);
        measured = true;
        return {
          ...result,
          streamLeader,
          publisherConnectedTo: publisher.info?.server_name ?? 'unknown',
          consumerConnectedTo: receiver.info?.server_name ?? 'unknown',
        };
      } finally {
        await messages.close();
        await receiving;
      }
    } finally {
      // A failed delete must not hide the error that stopped the measurement.
      await jsm.streams.delete(streamName).catch((error: unknown) => {
        if (measured) throw error;
      });
    }
  } finally {
    await Promise.all(connections.map((connection) => connection.close()));
  }
}
