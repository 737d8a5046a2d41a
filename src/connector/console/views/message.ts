/**
 * One message this organization sent or received: its fields, its proof as the REST API gives it,
 * and its delivery receipt as a download. Both look the message up in this connector's own tables
 * first, so nothing another organization sent to someone else can be named here.
 */
import type { ReceivedMessage } from '../../api-types.js';
import { html } from '../html.js';
import { fieldList, listOf, timeOf } from '../layout.js';
import type { SentMessageDetail } from '../sent-messages.js';
import type { ConsoleDownload, ConsoleView, ViewContext } from '../view.js';
import { ConsolePageError } from '../view.js';
import { receivedHref, sentHref, stateBadge } from './messages.js';

const section = { label: 'Messages', path: '/messages' };

export const sentMessageView: ConsoleView = {
  path: '/messages/sent/:topic/:id',
  section,
  async render(context: ViewContext) {
    const message = sentMessage(context);
    // What POST /v1/topics/{topic}/messages answered, but the plaintext size the connector does not keep.
    const acceptance = {
      id: message.id,
      topic: message.topic,
      partition: message.partition,
      offset: message.offset,
      height: message.height,
      proof: message.proof,
    };
    return {
      title: `Sent message ${message.id}`,
      body: html`
        ${fieldList([
          ['Message id', message.id],
          ['Topic', message.topic],
          ['Partition', message.partition],
          ['Offset', message.offset ?? 'not accepted yet'],
          ['Block height', message.height ?? '—'],
          ['Recipients', listOf(message.recipients)],
          ['Delivered to', listOf(message.deliveredTo)],
          ['State', stateBadge(message.state)],
          ['Sent at', timeOf(message.createdAt)],
          ['Encrypted size (bytes)', message.encryptedSize],
        ])}
        ${
          message.offset === null
            ? ''
            : html`<p>
                <a href="${sentHref(message)}/receipt" download>Download the delivery receipt (JSON)</a>, to
                check offline with <code>ledgerbus verify</code>.
              </p>`
        }
        <h2>Acceptance proof</h2>
        <p>
          As <code>POST /v1/topics/{topic}/messages</code> answered the send (without the plaintext size,
          which the connector does not keep): <code>proof</code> is base64 of the canonical CBOR acceptance
          proof.
        </p>
        <pre class="json"><code>${JSON.stringify(acceptance, null, 2)}</code></pre>
      `,
    };
  },
};

export const receivedMessageView: ConsoleView = {
  path: '/messages/received/:topic/:partition/:id',
  section,
  async render(context: ViewContext) {
    const message = receivedMessage(context);
    return {
      title: `Received message ${message.id}`,
      body: html`
        ${fieldList([
          ['Message id', message.id],
          ['Sender', message.sender],
          ['Topic', message.topic],
          ['Partition', message.partition],
          ['Offset', message.offset],
          ['Local sequence', message.sequence],
          ['Size (bytes)', message.size],
          ['SHA-256', html`<code>${message.sha256}</code>`],
          ['Content type', message.contentType],
          ['Key (base64)', message.key ?? '—'],
          ['Received at', timeOf(message.receivedAt)],
        ])}
        <p>
          <a href="${receivedHref(message)}/receipt" download>Download the delivery receipt (JSON)</a>, to
          check offline with <code>ledgerbus verify</code>.
        </p>
        <h2>Message and acceptance proof</h2>
        <p>
          As <code>GET /v1/received/{topic}/{partition}/{id}</code> returns it: <code>proof</code> is base64
          of the canonical CBOR acceptance proof. The payload is not shown here.
        </p>
        <pre class="json"><code>${JSON.stringify(message, null, 2)}</code></pre>
      `,
    };
  },
};

export const sentReceiptDownload: ConsoleDownload = {
  path: '/messages/sent/:topic/:id/receipt',
  async load(context) {
    const message = sentMessage(context);
    if (message.offset === null)
      throw new ConsolePageError(409, 'the ledger has not accepted this message yet');
    return {
      fileName: receiptFileName(message.topic, message.partition, message.id),
      json: await context.api.receipt(message.topic, message.id, { partition: message.partition }),
    };
  },
};

export const receivedReceiptDownload: ConsoleDownload = {
  path: '/messages/received/:topic/:partition/:id/receipt',
  async load(context) {
    const message = receivedMessage(context);
    return {
      fileName: receiptFileName(message.topic, message.partition, message.id),
      json: await context.api.receipt(message.topic, message.id, { partition: message.partition }),
    };
  },
};

function sentMessage({ api, params }: ViewContext): SentMessageDetail {
  const topic = params['topic'] ?? '';
  const id = params['id'] ?? '';
  if (api.sentMessages === undefined)
    throw new ConsolePageError(404, 'this connector does not list the messages it sent');
  const message = api.sentMessages.get(topic, id);
  if (message === undefined)
    throw new ConsolePageError(404, `this organization sent no message ${id} on ${topic}`);
  return message;
}

function receivedMessage({ api, params }: ViewContext): ReceivedMessage {
  const topic = params['topic'] ?? '';
  const id = params['id'] ?? '';
  const partitionText = params['partition'] ?? '';
  const partition = Number(partitionText);
  if (!/^[0-9]{1,9}$/.test(partitionText))
    throw new ConsolePageError(400, 'partition: expected a whole number');
  const message = api.receivedMessage(id, { topic, partition });
  if (message === undefined)
    throw new ConsolePageError(404, `this organization received no message ${id} on ${topic}/${partition}`);
  return message;
}

/** A file name of safe characters only: ids are anyone's text, and it goes in a header. */
function receiptFileName(topic: string, partition: number, id: string): string {
  const safe = `${topic}-${partition}-${id}`.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120);
  return `receipt-${safe}.json`;
}
