/**
 * What the connector tells applications: events to listeners (`onEvent`) and a wake-up for the
 * long-polls of `received()` when a message has been recorded.
 */
import type { Logger } from '../runtime/logger.js';
import type { ConnectorEvent } from './api-types.js';
import { describeError } from './lifecycle.js';

export class ConnectorEvents {
  /** One per subscriber (an open events socket, say), removed by the function `onEvent` returns. */
  private readonly listeners = new Set<(event: ConnectorEvent) => void>();
  /** Long-polls of `received()` waiting for a message; each is woken once, or leaves at its timeout. */
  readonly receivedWaiters = new Set<() => void>();

  constructor(private readonly logger: Logger) {}

  /** Adds a listener; the function returned removes it. */
  onEvent(listener: (event: ConnectorEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tells every listener; a listener that throws is logged and does not stop the others. */
  emit(event: ConnectorEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.logger.warn({ error: describeError(error) }, 'event listener failed');
      }
    }
  }

  /** Wakes every waiting long-poll (a message was recorded, or the connector stops). */
  wakeReceivedWaiters(): void {
    for (const wake of this.receivedWaiters) wake();
  }
}
