// @ts-check
/* global document, location, WebSocket, setTimeout */
/**
 * Keeps the messages view current without reloading it: listens on /console/events (the session
 * cookie authenticates it) and updates a sent message's state and offset in place, and adds rows for
 * messages sent or received since the page was rendered (on the first page only: older pages stay as
 * they were served).
 *
 * A plain ES module rather than TypeScript compiled by the build: it is served as it is from the
 * sources and from dist alike, with no build step between an edit and the browser, and it stays
 * type-checked: `// @ts-check` with the JSDoc types below, checked against the DOM library by
 * src/connector/console/console.test.ts. Rows are built with textContent only: nothing a message
 * carries is ever parsed as HTML.
 */

/**
 * @typedef {{ position: number, id: string, topic: string, partition: number, offset: number | null,
 *   recipients: string[], state: string, createdAt: number, href: string }} SentRow
 * @typedef {{ sequence: number, id: string, sender: string, topic: string, partition: number, size: number,
 *   receivedAt: number, href: string }} ReceivedRow
 */

const sentBody = /** @type {HTMLTableSectionElement | null} */ (
  document.querySelector('tbody[data-live="sent"]')
);
const receivedBody = /** @type {HTMLTableSectionElement | null} */ (
  document.querySelector('tbody[data-live="received"]')
);
const statusLine = document.getElementById('live-status');
const reconnectMaxMs = 30_000;

if (sentBody !== null || receivedBody !== null) connect(1_000);

/** @param {number} retryMs how long to wait before the next attempt if this one closes */
function connect(retryMs) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new WebSocket(`${scheme}//${location.host}/console/events`);
  let opened = false;
  socket.addEventListener('open', () => {
    opened = true;
    say('Live updates are on.');
  });
  socket.addEventListener('message', (event) => {
    if (typeof event.data === 'string') receive(event.data);
  });
  socket.addEventListener('close', (event) => {
    // 1008: the session ended (logout, expiry): reconnecting cannot help until the user logs in again.
    if (event.code === 1008) {
      say('Live updates stopped: the session ended. Reload the page to log in again.');
      return;
    }
    say('Live updates are paused; reconnecting…');
    const next = opened ? 1_000 : Math.min(retryMs * 2, reconnectMaxMs);
    setTimeout(() => connect(next), retryMs);
  });
}

/** @param {string} text */
function say(text) {
  if (statusLine === null) return;
  statusLine.hidden = false;
  statusLine.textContent = text;
}

/** @param {string} data one JSON update */
function receive(data) {
  /** @type {unknown} */
  let update;
  try {
    update = JSON.parse(data);
  } catch {
    return;
  }
  if (typeof update !== 'object' || update === null) return;
  const { type, message } = /** @type {{ type?: unknown, message?: unknown }} */ (update);
  if (type === 'sent' && isSentRow(message)) upsertSent(message);
  else if (type === 'received' && isReceivedRow(message)) upsertReceived(message);
}

/**
 * @param {unknown} value
 * @returns {value is SentRow}
 */
function isSentRow(value) {
  if (typeof value !== 'object' || value === null) return false;
  const row = /** @type {Record<string, unknown>} */ (value);
  return (
    typeof row['position'] === 'number' &&
    typeof row['id'] === 'string' &&
    typeof row['topic'] === 'string' &&
    typeof row['partition'] === 'number' &&
    (row['offset'] === null || typeof row['offset'] === 'number') &&
    Array.isArray(row['recipients']) &&
    typeof row['state'] === 'string' &&
    typeof row['createdAt'] === 'number' &&
    isConsoleHref(row['href'])
  );
}

/**
 * @param {unknown} value
 * @returns {value is ReceivedRow}
 */
function isReceivedRow(value) {
  if (typeof value !== 'object' || value === null) return false;
  const row = /** @type {Record<string, unknown>} */ (value);
  return (
    typeof row['sequence'] === 'number' &&
    typeof row['id'] === 'string' &&
    typeof row['sender'] === 'string' &&
    typeof row['topic'] === 'string' &&
    typeof row['partition'] === 'number' &&
    typeof row['size'] === 'number' &&
    typeof row['receivedAt'] === 'number' &&
    isConsoleHref(row['href'])
  );
}

/** @param {unknown} href a link the server made: only ever a path of the console */
function isConsoleHref(href) {
  return typeof href === 'string' && href.startsWith('/console/');
}

/** @param {SentRow} row */
function upsertSent(row) {
  if (sentBody === null) return;
  const existing = rowsOf(sentBody).find(
    (tr) => tr.dataset['topic'] === row.topic && tr.dataset['id'] === row.id,
  );
  if (existing !== undefined) {
    setText(existing, 'offset', row.offset === null ? '—' : String(row.offset));
    const cell = existing.querySelector('[data-field="state"]');
    if (cell !== null) cell.replaceChildren(stateBadge(row.state));
    return;
  }
  const tr = document.createElement('tr');
  tr.dataset['topic'] = row.topic;
  tr.dataset['id'] = row.id;
  tr.dataset['position'] = String(row.position);
  tr.append(
    headerCell(row.href, row.id),
    cell('topic', row.topic),
    cell('partition', String(row.partition), true),
    cell('offset', row.offset === null ? '—' : String(row.offset), true),
    cell('recipients', row.recipients.length === 0 ? '—' : row.recipients.join(', ')),
    cell('state', stateBadge(row.state)),
    cell('time', timeElement(row.createdAt)),
  );
  if (insertNewest(sentBody, tr, 'position', row.position)) say(`New sent message ${row.id}.`);
}

/** @param {ReceivedRow} row */
function upsertReceived(row) {
  if (receivedBody === null) return;
  const known = rowsOf(receivedBody).some(
    (tr) =>
      tr.dataset['topic'] === row.topic &&
      tr.dataset['partition'] === String(row.partition) &&
      tr.dataset['id'] === row.id,
  );
  if (known) return;
  const tr = document.createElement('tr');
  tr.dataset['topic'] = row.topic;
  tr.dataset['partition'] = String(row.partition);
  tr.dataset['id'] = row.id;
  tr.dataset['sequence'] = String(row.sequence);
  tr.append(
    headerCell(row.href, row.id),
    cell('sender', row.sender),
    cell('topic', row.topic),
    cell('partition', String(row.partition), true),
    cell('size', String(row.size), true),
    cell('time', timeElement(row.receivedAt)),
  );
  if (insertNewest(receivedBody, tr, 'sequence', row.sequence))
    say(`New message ${row.id} from ${row.sender}.`);
}

/**
 * Puts `tr` in `body` in newest-first order by `key`, if it belongs on this page: on the first page,
 * newer than every row shown (an older one is on a page already served, or was deleted).
 * @param {HTMLTableSectionElement} body
 * @param {HTMLTableRowElement} tr
 * @param {'position' | 'sequence'} key
 * @param {number} value
 * @returns {boolean} whether it was added
 */
function insertNewest(body, tr, key, value) {
  if (body.dataset['firstPage'] !== 'true') return false;
  const rows = rowsOf(body);
  const shown = rows.map((row) => Number(row.dataset[key])).filter((n) => Number.isFinite(n));
  if (shown.length > 0 && value <= Math.max(...shown)) return false;
  for (const placeholder of body.querySelectorAll('tr.empty')) placeholder.remove();
  body.prepend(tr);
  return true;
}

/**
 * The message rows of a table body (not its "nothing yet" placeholder).
 * @param {HTMLTableSectionElement} body
 * @returns {HTMLTableRowElement[]}
 */
function rowsOf(body) {
  return Array.from(body.rows).filter((tr) => !tr.classList.contains('empty'));
}

/**
 * @param {HTMLTableRowElement} tr
 * @param {string} field
 * @param {string} text
 */
function setText(tr, field, text) {
  const target = tr.querySelector(`[data-field="${field}"]`);
  if (target !== null) target.textContent = text;
}

/**
 * @param {string} href
 * @param {string} id
 */
function headerCell(href, id) {
  const th = document.createElement('th');
  th.scope = 'row';
  th.dataset['field'] = 'id';
  const link = document.createElement('a');
  link.href = href;
  link.textContent = id;
  th.append(link);
  return th;
}

/**
 * @param {string} field
 * @param {string | Node} content
 * @param {boolean} [numeric]
 */
function cell(field, content, numeric = false) {
  const td = document.createElement('td');
  td.dataset['field'] = field;
  if (numeric) td.className = 'numeric';
  td.append(content);
  return td;
}

/** @param {string} state */
function stateBadge(state) {
  const badge = document.createElement('span');
  badge.className = 'state';
  badge.dataset['state'] = state;
  badge.textContent = state;
  return badge;
}

/** @param {number} ms a time as the server shows it: UTC, to the second */
function timeElement(ms) {
  const element = document.createElement('time');
  const iso = new Date(ms).toISOString();
  element.dateTime = iso;
  element.textContent = iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return element;
}
