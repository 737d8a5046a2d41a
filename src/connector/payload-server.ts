/**
 * Serving payloads to recipients (DESIGN steps 9–12, sender side): the node relays a recipient's
 * signed fetch request on a serving connection; the connector checks it itself (not trusting the
 * node) and streams the stored ciphertext with its envelope header.
 */
import { Transform, pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import { bytesEqual } from '../codec/index.js';
import {
  FetchNonceWindow,
  checkFetchFreshness,
  decodeFetchRequest,
  fetchRequestSignatureValid,
} from '../contracts/fetch.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { rpcStream } from '../net/index.js';
import type { RpcStreamReply } from '../net/index.js';
import type { ConnectorMethods, RequestOf } from '../protocol/client-methods.js';
import type { ConnectorMetrics } from './connector-metrics.js';
import type { ConnectorContext } from './context.js';
import { topicOfGroup } from './message-location.js';

export type PayloadServerOptions = Pick<
  ConnectorContext,
  'signer' | 'registry' | 'database' | 'storage' | 'logger' | 'lifecycle'
> &
  Partial<Pick<ConnectorContext, 'metrics'>>;

export class PayloadServer {
  /** Nonces of the fetch requests this connector served payloads for, until they expire. */
  private readonly fetchNonces = new FetchNonceWindow();

  constructor(private readonly options: PayloadServerOptions) {}

  /**
   * Answers one `servePayload` request: the requester signed it with one of its own keys
   * (BAD_SIGNATURE), for this network, recently and once (checkFetchFreshness, then REPLAY); it
   * is approved (NOT_APPROVED); this
   * connector sent the message (PAYLOAD_NOT_FOUND) and addressed it to the requester
   * (NOT_RECIPIENT). Then the ciphertext streams, headed by its envelope header.
   */
  serve(body: RequestOf<ConnectorMethods['servePayload']>): Promise<RpcStreamReply> {
    const { registry, database, signer } = this.options;
    const request = decodeFetchRequest(body.fetchRequest);
    const now = this.options.lifecycle.clock.now();
    checkFetchFreshness(request, signer.domain.network, now);
    const requester = registry.organization(request.requester);
    const keys = requester?.signingKeys ?? [];
    if (
      !keys.some((key) => bytesEqual(key, request.signerKey)) ||
      !fetchRequestSignatureValid(request, signer.domain)
    ) {
      throw new LedgerbusError(ErrorCode.BadSignature, 'fetch request is not signed by its requester');
    }
    if (requester?.status !== 'APPROVED') {
      throw new LedgerbusError(
        ErrorCode.NotApproved,
        `${request.requester} is ${requester?.status ?? 'not registered'}; only approved organizations read`,
      );
    }
    this.fetchNonces.admit(request, now);
    const sent = database.sent(topicOfGroup(request.partitionId), request.id);
    if (sent === undefined || sent.group_id !== request.partitionId) {
      throw new LedgerbusError(ErrorCode.PayloadNotFound, `no payload ${request.id} was sent from here`);
    }
    if (!(JSON.parse(sent.recipients) as string[]).includes(request.requester)) {
      this.options.logger.warn(
        { id: request.id, requester: request.requester },
        'refused a payload fetch by a non-recipient',
      );
      throw new LedgerbusError(
        ErrorCode.NotRecipient,
        `${request.requester} is not a recipient of ${request.id}`,
      );
    }
    const metrics = this.options.metrics;
    return this.options.storage
      .get(sent.storage_key)
      .then((stream) =>
        rpcStream(metrics === undefined ? stream : counted(stream, metrics), { header: sent.header }),
      );
  }
}

/**
 * `stream` passing through a counter of the bytes it hands on (ledgerbus_payload_bytes_out_total):
 * counted as served, so a recipient that cancels midway counts only what it was sent. A cancel of
 * the counted stream destroys the storage's stream too (pipeline), which closes its file.
 */
function counted(stream: Readable, metrics: ConnectorMetrics): Readable {
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      metrics.payloadBytesOut(chunk.length);
      callback(null, chunk);
    },
  });
  return pipeline(stream, counter, () => {});
}
