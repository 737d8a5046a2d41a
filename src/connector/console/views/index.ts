/**
 * Every view of the console, in navigation order. A new view is a module in this folder and a line
 * here; the console registers, guards and lays it out (see ../view.ts).
 */
import type { ConsoleDownload, ConsoleView, NavigationEntry } from '../view.js';
import {
  receivedMessageView,
  receivedReceiptDownload,
  sentMessageView,
  sentReceiptDownload,
} from './message.js';
import { messagesView } from './messages.js';
import { networkView } from './network.js';

export const views: readonly ConsoleView[] = [
  networkView,
  messagesView,
  sentMessageView,
  receivedMessageView,
];

export const downloads: readonly ConsoleDownload[] = [sentReceiptDownload, receivedReceiptDownload];

/** The navigation: each view that is its own section, once. */
export const navigation: readonly NavigationEntry[] = views
  .map((view) => view.section)
  .filter((entry, index, all) => all.findIndex((other) => other.path === entry.path) === index);

/** Where `/console/` leads. */
export const homePath = networkView.path;
