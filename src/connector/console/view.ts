/**
 * What a console view is. A view is one small module under views/ exporting a `ConsoleView` (and, if
 * it offers files, `ConsoleDownload`s), listed in views/index.ts: the console registers its route
 * behind the session, wraps its body in the layout (navigation, `<main>`, its `<h1>`), and turns
 * its errors into pages. A view only reads, through `ViewContext.api`.
 */
import type { SafeHtml } from './html.js';
import type { ConsoleConnector } from './source.js';

export interface ViewContext {
  readonly api: ConsoleConnector;
  /** Route parameters, decoded. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, string | undefined>>;
}

export interface ViewPage {
  /** The page's `<title>` and `<h1>`. */
  readonly title: string;
  readonly body: SafeHtml;
  /** Scripts (paths under /console/assets/) the page loads as modules: progressive, never required. */
  readonly scripts?: readonly string[];
}

export interface ConsoleView {
  /** Under /console, in Fastify's form: `/messages/sent/:topic/:id`. */
  readonly path: string;
  /** The navigation entry the view is listed as, or belongs under (one message: under Messages). */
  readonly section: NavigationEntry;
  render(context: ViewContext): Promise<ViewPage>;
}

export interface NavigationEntry {
  readonly label: string;
  /** Under /console. */
  readonly path: string;
}

/** A file a view offers (a receipt): served as an attachment, never rendered. */
export interface ConsoleDownload {
  readonly path: string;
  load(context: ViewContext): Promise<{ readonly fileName: string; readonly json: unknown }>;
}

/** A page that cannot be shown, with the HTTP status and the sentence that says why. */
export class ConsolePageError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
