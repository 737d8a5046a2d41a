/**
 * The login page: one labelled password field for the organization's API token, posted (never a
 * GET: the token must not end up in a URL, a history entry or a server log).
 */
import { html } from '../html.js';
import { renderPage } from '../layout.js';

export interface LoginPageOptions {
  readonly organization: string;
  /** Why the last attempt failed; said once, above the form, and announced to screen readers. */
  readonly error?: string;
  /** Said when the user arrives after logging out or after the session ended. */
  readonly notice?: string;
}

export function renderLoginPage(options: LoginPageOptions): string {
  const { error, notice } = options;
  return renderPage({
    title: 'Log in',
    organization: options.organization,
    body: html`
      ${error === undefined ? '' : html`<p class="message error" role="alert" id="login-error">${error}</p>`}
      ${notice === undefined ? '' : html`<p class="message notice" role="status">${notice}</p>`}
      <p>
        Enter ${options.organization}'s connector API token: the <code>api.token</code> of its
        <code>connector.yaml</code> (for <code>ledgerbus dev</code>,
        <code>.ledgerbus-dev/org1/api-token</code> and so on). The console keeps you logged in with a session
        cookie; the token is not stored in the browser.
      </p>
      <form class="login" method="post" action="/console/login">
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="current-password"
          required
          autofocus
          ${error === undefined ? '' : html`aria-invalid="true" aria-describedby="login-error"`}
        />
        <button type="submit">Log in</button>
      </form>
    `,
  });
}
