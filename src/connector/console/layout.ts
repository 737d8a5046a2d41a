/**
 * The page every view is shown in, and the pieces views build with: one navigation landmark, one
 * `<main>` with the page's `<h1>`, tables with a `<caption>` and scoped headers. Everything is
 * server-rendered and works without JavaScript; scripts only keep it current.
 */
import { html } from './html.js';
import type { HtmlValue, SafeHtml } from './html.js';
import type { NavigationEntry } from './view.js';

export const stylesheetPath = '/console/assets/console.css';

export interface LayoutOptions {
  readonly title: string;
  /** This connector's organization: the console is always one organization's. */
  readonly organization: string;
  readonly body: SafeHtml;
  /** The views listed in the navigation, and the one this page belongs under; none on the login page. */
  readonly navigation?: { readonly entries: readonly NavigationEntry[]; readonly current?: string };
  /** Present once logged in: the logout form carries it. */
  readonly csrfToken?: string;
  /** Module scripts, paths under /console/assets/. */
  readonly scripts?: readonly string[];
}

export function renderPage(options: LayoutOptions): string {
  const { navigation } = options;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${options.title} · ${options.organization} · ledgerbus console</title>
        <link rel="stylesheet" href="${stylesheetPath}" />
        <link rel="icon" href="/console/assets/favicon.svg" type="image/svg+xml" />
        ${(options.scripts ?? []).map((path) => html`<script type="module" src="${path}"></script>`)}
      </head>
      <body>
        <a class="skip-link" href="#main">Skip to content</a>
        <header class="site-header">
          <p class="brand">ledgerbus console · <span class="organization">${options.organization}</span></p>
          ${
            navigation === undefined
              ? ''
              : html`<nav aria-label="Console">
                  <ul>
                    ${navigation.entries.map(
                      (entry) =>
                        html`<li>
                          <a
                            href="/console${entry.path}"
                            ${entry.path === navigation.current ? html`aria-current="page"` : ''}
                            >${entry.label}</a
                          >
                        </li>`,
                    )}
                  </ul>
                </nav>`
          }
          ${
            options.csrfToken === undefined
              ? ''
              : html`<form class="logout" method="post" action="/console/logout">
                  <input type="hidden" name="_csrf" value="${options.csrfToken}" />
                  <button type="submit">Log out</button>
                </form>`
          }
        </header>
        <main id="main" tabindex="-1">
          <h1>${options.title}</h1>
          ${options.body}
        </main>
      </body>
    </html> `.text;
}

export interface Column<Row> {
  readonly header: string;
  readonly cell: (row: Row) => HtmlValue;
  /** The row's header cell (`<th scope="row">`): what names the row. */
  readonly rowHeader?: boolean;
  /** Marks the cell for styling and for scripts that update it (`data-field`). */
  readonly field?: string;
  readonly numeric?: boolean;
}

export interface TableOptions<Row> {
  readonly caption: HtmlValue;
  readonly columns: readonly Column<Row>[];
  readonly rows: readonly Row[];
  /** The sentence shown, in place of rows, when there are none. */
  readonly empty: string;
  /** Attributes of each `<tr>` (e.g. data-* keys a script finds the row by). */
  readonly rowAttributes?: (row: Row) => SafeHtml;
  /** Attributes of the `<tbody>`. */
  readonly bodyAttributes?: SafeHtml;
}

export function table<Row>(options: TableOptions<Row>): SafeHtml {
  const { columns } = options;
  const cellAttributes = (column: Column<Row>, scope?: 'col' | 'row'): SafeHtml =>
    attributes([
      scope === undefined ? undefined : ['scope', scope],
      column.numeric === true ? ['class', 'numeric'] : undefined,
      column.field === undefined || scope === 'col' ? undefined : ['data-field', column.field],
    ]);
  const headers = columns.map((column) => html`<th ${cellAttributes(column, 'col')}>${column.header}</th>`);
  const rows =
    options.rows.length === 0
      ? html`<tr class="empty">
          <td colspan="${columns.length}">${options.empty}</td>
        </tr>`
      : options.rows.map(
          (row) =>
            html`<tr ${options.rowAttributes?.(row) ?? ''}>
              ${columns.map((column) =>
                column.rowHeader === true
                  ? html`<th ${cellAttributes(column, 'row')}>${column.cell(row)}</th>`
                  : html`<td ${cellAttributes(column)}>${column.cell(row)}</td>`,
              )}
            </tr>`,
        );
  return html`<div class="table-wrap">
    <table>
      <caption>
        ${options.caption}
      </caption>
      <thead>
        <tr>
          ${headers}
        </tr>
      </thead>
      <tbody ${options.bodyAttributes ?? ''}>
        ${rows}
      </tbody>
    </table>
  </div>`;
}

/** Attributes from name/value pairs (undefined ones left out), values escaped, separated by spaces. */
export function attributes(pairs: readonly (readonly [string, string] | undefined)[]): SafeHtml {
  const present = pairs.filter((pair): pair is readonly [string, string] => pair !== undefined);
  return html`${present.map(([name, value], index) => html`${index === 0 ? '' : ' '}${name}="${value}"`)}`;
}

/** A definition list of a record's fields, in the order given. */
export function fieldList(fields: readonly (readonly [string, HtmlValue])[]): SafeHtml {
  return html`<dl class="fields">
    ${fields.map(
      ([name, value]) =>
        html`<div>
          <dt>${name}</dt>
          <dd>${value}</dd>
        </div>`,
    )}
  </dl>`;
}

/** A time (ms since epoch) in UTC, machine-readable too. */
export function timeOf(ms: number): SafeHtml {
  const iso = new Date(ms).toISOString();
  return html`<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}</time>`;
}

/** A list of ids, or a dash for none. */
export function listOf(items: readonly string[]): string {
  return items.length === 0 ? '—' : items.join(', ');
}
