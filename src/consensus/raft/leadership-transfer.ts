/**
 * A leader handing leadership to another voter (Ongaro's thesis §3.10): while a transfer is under
 * way the leader refuses proposals, brings the target up to date and then tells it to campaign at
 * once. A transfer the target did not complete within an election timeout is abandoned.
 *
 * Invariants: a live transfer has run for fewer than the timeout's ticks (asserted at each tick);
 * a transfer exists only on a leader (the node clears it on every role change and asserts this
 * after each step).
 */
import { assert } from '../../errors.js';

export class LeadershipTransfer {
  /** The voter leadership is being handed to, or null. */
  target: string | null = null;
  /** Ticks since the transfer started. */
  elapsed = 0;

  start(to: string): void {
    this.target = to;
    this.elapsed = 0;
  }

  clear(): void {
    this.target = null;
    this.elapsed = 0;
  }

  /**
   * One leader tick. Abandons the transfer once `timeoutTicks` passed without the target taking
   * over; the leader then keeps leading and accepts proposals again.
   */
  tick(timeoutTicks: number): void {
    if (this.target !== null && ++this.elapsed >= timeoutTicks) this.target = null;
    assert(this.target === null || this.elapsed < timeoutTicks, 'a live transfer is within its timeout');
  }
}
