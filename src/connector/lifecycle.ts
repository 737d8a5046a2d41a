/**
 * The connector's time and its running state, shared by its parts: every wait of every loop goes
 * through `pause`, so `stop()` ends them all at once instead of waiting out a back-off, and a test
 * can hand in its own clock.
 */
import { isLedgerbusError } from '../errors.js';
import type { RetryClock } from '../runtime/retry.js';

/** Timers and the time, injected so a test can drive them. */
export interface ConnectorClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Date.now and the process's timers. */
export const systemClock: ConnectorClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Whether the connector runs, and the waits that must end when it stops. */
export class Lifecycle {
  private running = true;
  /** One per pause under way, each removed when it ends (`waitForWake`). */
  private readonly sleepers = new Set<() => void>();
  /** The clock retry policies wait on: a stop ends their waits too. */
  readonly retryClock: RetryClock;

  constructor(readonly clock: ConnectorClock = systemClock) {
    this.retryClock = { now: () => this.clock.now(), sleep: (ms) => this.pause(ms) };
  }

  get stopped(): boolean {
    return !this.running;
  }

  /** Marks the connector stopped and ends every pause under way (each resolves at once). */
  stop(): void {
    this.running = false;
    for (const wake of this.sleepers) wake();
  }

  /** Waits `ms`, or less if the connector stops meanwhile; at once when it has stopped already. */
  pause(ms: number): Promise<void> {
    return this.stopped ? Promise.resolve() : this.waitForWake(this.sleepers, ms);
  }

  /** Resolves after `ms`, or as soon as someone calls the waker it put in `wakers`. */
  waitForWake(wakers: Set<() => void>, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.clock.clearTimeout(timer);
        wakers.delete(wake);
        resolve();
      };
      const timer = this.clock.setTimeout(wake, ms);
      wakers.add(wake);
    });
  }
}

/** An error as one line for the logs: its code first when it has one. */
export function describeError(error: unknown): string {
  return isLedgerbusError(error)
    ? `${error.code}: ${error.message}`
    : error instanceof Error
      ? error.message
      : String(error);
}
