/**
 * This organization's messages, newest first: what it sent (from its own `sent` table) and what it
 * received (as `GET /v1/received` lists it), a page of each. Served whole without JavaScript; with
 * it, views/../assets/live.js keeps the first page current from /console/events.
 */
import type { ReceivedMessage } from '../../api-types.js';
import { consolePath, html } from '../html.js';
import type { SafeHtml } from '../html.js';
import { listOf, table, timeOf } from '../layout.js';
import type { SentMessageSummary } from '../sent-messages.js';
import type { ConsoleView, ViewContext } from '../view.js';
import { ConsolePageError } from '../view.js';

/** Rows per table and page. */
export const messagesPageSize = 25;

export function sentHref(message: Pick<SentMessageSummary, 'topic' | 'id'>): string {
  return consolePath('messages', 'sent', message.topic, message.id);
}

export function receivedHref(message: Pick<ReceivedMessage, 'topic' | 'partition' | 'id'>): string {
  return consolePath('messages', 'received', message.topic, message.partition, message.id);
}

export const messagesView: ConsoleView = {
  path: '/messages',
  section: { label: 'Messages', path: '/messages' },
  async render({ api, query }: ViewContext) {
    const sentBefore = cursorParameter(query, 'sentBefore');
    const receivedBefore = cursorParameter(query, 'receivedBefore');
    const sent = api.sentMessages?.page({
      ...(sentBefore === undefined ? {} : { before: sentBefore }),
      limit: messagesPageSize,
    });
    const received = await receivedPage(api, receivedBefore);
    const olderSent =
      sent !== undefined && sent.length === messagesPageSize ? sent.at(-1)?.position : undefined;
    const link = (parameters: Record<string, number | undefined>): string => {
      const search = new URLSearchParams();
      for (const [name, value] of Object.entries(parameters))
        if (value !== undefined) search.set(name, String(value));
      const text = search.toString();
      return text.length === 0 ? '/console/messages' : `/console/messages?${text}`;
    };
    return {
      title: 'Messages',
      scripts: ['/console/assets/live.js'],
      body: html`
        <p id="live-status" class="live-status" role="status" aria-live="polite" hidden></p>
        <noscript><p class="notice">Reload the page to see new messages and state changes.</p></noscript>
        <section aria-labelledby="sent">
          <h2 id="sent">Sent</h2>
          ${
            sent === undefined
              ? html`<p>This connector does not list the messages it sent.</p>`
              : sentTable(sent, sentBefore === undefined)
          }
          <p class="pager">
            ${sentBefore === undefined ? '' : html`<a href="${link({ receivedBefore })}">Newest sent</a>`}
            ${
              olderSent === undefined
                ? ''
                : html`<a href="${link({ sentBefore: olderSent, receivedBefore })}">Older sent messages</a>`
            }
          </p>
        </section>
        <section aria-labelledby="received">
          <h2 id="received">Received</h2>
          ${receivedTable(received.rows, receivedBefore === undefined)}
          <p class="pager">
            ${receivedBefore === undefined ? '' : html`<a href="${link({ sentBefore })}">Newest received</a>`}
            ${
              received.olderBefore === undefined
                ? ''
                : html`<a href="${link({ sentBefore, receivedBefore: received.olderBefore })}"
                    >Older received messages</a
                  >`
            }
          </p>
        </section>
      `,
    };
  },
};

function sentTable(rows: readonly SentMessageSummary[], firstPage: boolean): SafeHtml {
  return table({
    caption: 'Messages this organization sent, newest first',
    columns: [
      {
        header: 'Message',
        rowHeader: true,
        field: 'id',
        cell: (row) => html`<a href="${sentHref(row)}">${row.id}</a>`,
      },
      { header: 'Topic', field: 'topic', cell: (row) => row.topic },
      { header: 'Partition', numeric: true, field: 'partition', cell: (row) => row.partition },
      { header: 'Offset', numeric: true, field: 'offset', cell: (row) => row.offset ?? '—' },
      { header: 'Recipients', field: 'recipients', cell: (row) => listOf(row.recipients) },
      { header: 'State', field: 'state', cell: (row) => stateBadge(row.state) },
      { header: 'Sent at', field: 'time', cell: (row) => timeOf(row.createdAt) },
    ],
    rows,
    rowAttributes: (row) =>
      html`data-topic="${row.topic}" data-id="${row.id}" data-position="${row.position}"`,
    bodyAttributes: html`data-live="sent" data-first-page="${String(firstPage)}"`,
    empty: 'This organization has sent nothing yet.',
  });
}

function receivedTable(rows: readonly ReceivedMessage[], firstPage: boolean): SafeHtml {
  return table({
    caption: 'Messages this organization received, newest first',
    columns: [
      {
        header: 'Message',
        rowHeader: true,
        field: 'id',
        cell: (row) => html`<a href="${receivedHref(row)}">${row.id}</a>`,
      },
      { header: 'Sender', field: 'sender', cell: (row) => row.sender },
      { header: 'Topic', field: 'topic', cell: (row) => row.topic },
      { header: 'Partition', numeric: true, field: 'partition', cell: (row) => row.partition },
      { header: 'Size (bytes)', numeric: true, field: 'size', cell: (row) => row.size },
      { header: 'Received at', field: 'time', cell: (row) => timeOf(row.receivedAt) },
    ],
    rows,
    rowAttributes: (row) =>
      html`data-topic="${row.topic}" data-partition="${row.partition}" data-id="${row.id}"
      data-sequence="${row.sequence}"`,
    bodyAttributes: html`data-live="received" data-first-page="${String(firstPage)}"`,
    empty: 'This organization has received nothing yet.',
  });
}

export function stateBadge(state: string): SafeHtml {
  return html`<span class="state" data-state="${state}">${state}</span>`;
}

/**
 * Received messages newest first, one window of local sequence numbers: those below `before` (all
 * when absent), at most a page. Sequences of deleted messages leave gaps, so a page can be short;
 * the link to older ones continues below the window.
 */
export async function receivedPage(
  api: ViewContext['api'],
  before: number | undefined,
): Promise<{ rows: ReceivedMessage[]; olderBefore?: number }> {
  const latest = api.latestSequence();
  const highest = before === undefined ? latest : Math.min(before - 1, latest);
  if (highest < 1) return { rows: [] };
  const lowest = Math.max(1, highest - messagesPageSize + 1);
  const rows = (await api.received({ after: lowest - 1, limit: messagesPageSize }))
    .filter((message) => message.sequence <= highest)
    .reverse();
  return lowest > 1 ? { rows, olderBefore: lowest } : { rows };
}

function cursorParameter(query: ViewContext['query'], name: string): number | undefined {
  const text = query[name];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!/^[0-9]{1,15}$/.test(text) || !Number.isSafeInteger(value) || value < 1)
    throw new ConsolePageError(400, `${name}: expected a positive whole number`);
  return value;
}
