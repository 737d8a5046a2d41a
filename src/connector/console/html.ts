/**
 * HTML built so that escaping cannot be forgotten: the console's pages are made only with the `html`
 * tag, which escapes every value it interpolates unless that value is itself `SafeHtml` (made by this
 * tag). Message ids, topics, organization names and error messages come from other organizations
 * and from applications: any of them may be `<script>`.
 */

const brand: unique symbol = Symbol('SafeHtml');

/** Markup that is safe to emit as is: only `html` makes one. */
export interface SafeHtml {
  readonly [brand]: true;
  readonly text: string;
}

/** What may be interpolated: text and numbers are escaped, `SafeHtml` kept, lists joined, null/undefined/false dropped. */
export type HtmlValue = SafeHtml | string | number | boolean | null | undefined | readonly HtmlValue[];

const escapes: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/**
 * `value` as text for an element's content or a quoted attribute value. Quotes are escaped too, so
 * that a value in an attribute cannot end it; every attribute in the console's markup is quoted.
 */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (character) => escapes[character] ?? character);
}

function isSafeHtml(value: unknown): value is SafeHtml {
  return typeof value === 'object' && value !== null && brand in value;
}

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return '';
  if (isSafeHtml(value)) return value.text;
  if (Array.isArray(value)) return (value as readonly HtmlValue[]).map(render).join('');
  return escapeHtml(String(value));
}

/** The tagged template every page is written in: html`<td>${message.id}</td>`. */
export function html(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): SafeHtml {
  let text = strings[0] ?? '';
  values.forEach((value, index) => {
    text += render(value) + (strings[index + 1] ?? '');
  });
  return { [brand]: true, text };
}

/**
 * A path under the console with each segment percent-encoded (`/` in a topic or id stays inside its
 * segment). Only ever a path on this server: what it is given cannot make it another scheme or host.
 */
export function consolePath(...segments: readonly (string | number)[]): string {
  return `/console/${segments.map((segment) => encodeURIComponent(String(segment))).join('/')}`;
}
