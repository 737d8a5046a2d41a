/**
 * Where a replica stands in the view-change protocol of Castro & Liskov §4.4 and §4.5.2: its view,
 * whether it is changing to it, the view-change messages it collected for each view, and the timer
 * that moves it on to the next view when no new view comes.
 *
 * Invariants (asserted at the transitions):
 * - The view never decreases. `begin` moves to a later view, or to the current one only if it is
 *   not yet changing; `enter` moves to a view at least the current one.
 * - While not changing, nothing is collected for a view at or below the current one: those view
 *   changes are either used by the new view or stale. (Collected entries for later views stay.)
 * - Each sender counts in at most one view: the latest it asked for. A correct replica's views only
 *   grow, and a Byzantine one can make us keep one message, not one per view.
 * - The timer runs only while changing, and only once 2f+1 replicas asked for this view or a later one.
 */
import { assert } from '../../errors.js';
import type { Envelope, ViewChange } from './messages.js';

/** A view-change message as collected: decoded, and the envelope that carries it into a new view. */
export interface CollectedViewChange {
  readonly message: ViewChange;
  readonly envelope: Envelope;
}

/** The exponent cap of the back-off: the timeout doubles with each failed attempt, up to 2^6 times. */
const backoffDoublingsMax = 6;

export class ViewChangeState {
  private currentView = 0;
  private changing = false;
  /** The new-view message of the current view, sent or accepted: shown to replicas that lag. */
  private latestNewView: Envelope | undefined;
  /** This replica's own view-change message for the view it is changing to, repeated until answered. */
  private ownViewChange: Envelope | undefined;
  private timerDeadline: number | undefined;
  /** Consecutive views tried without a new view: the timeout doubles with each (§4.5.2). */
  private attempts = 0;
  /** View changes by view, then sender: one per replica in all, since only a sender's latest counts. */
  private readonly collected = new Map<number, Map<number, CollectedViewChange>>();
  /** The view each sender last asked for: one per replica. */
  private readonly latestBySender = new Map<number, number>();

  get view(): number {
    return this.currentView;
  }
  get inViewChange(): boolean {
    return this.changing;
  }
  get newViewMessage(): Envelope | undefined {
    return this.latestNewView;
  }
  get ownMessage(): Envelope | undefined {
    return this.ownViewChange;
  }

  /**
   * Starts changing to `view` (§4.4: the timer expired, or f+1 others asked for it). Returns false,
   * changing nothing, unless `view` is later than the current one or is the current one and not yet
   * being changed to.
   */
  begin(view: number): boolean {
    if (view < this.currentView || (view === this.currentView && this.changing)) return false;
    const before = this.currentView;
    this.attempts = view === this.currentView + 1 && this.changing ? this.attempts + 1 : 1;
    this.currentView = view;
    this.changing = true;
    this.timerDeadline = undefined;
    assert(this.currentView >= before, 'the view never decreases');
    assert(this.attempts >= 1, 'a view change counts its attempts from 1');
    return true;
  }

  /** Keeps this replica's own view-change message, to repeat it while the change lasts. */
  setOwnViewChange(envelope: Envelope): void {
    assert(this.changing, 'an own view-change message outside a view change');
    this.ownViewChange = envelope;
  }

  /**
   * Collects a sender's view-change message; returns false, changing nothing, if the sender already
   * asked for a later view (only a sender's latest view change counts).
   */
  record(from: number, change: CollectedViewChange): boolean {
    const newView = change.message.newView;
    const previousView = this.latestBySender.get(from);
    if (previousView !== undefined && previousView > newView) return false;
    if (previousView !== undefined && previousView !== newView) {
      const stale = this.collected.get(previousView);
      stale?.delete(from);
      if (stale?.size === 0) this.collected.delete(previousView);
    }
    let byFrom = this.collected.get(newView);
    if (byFrom === undefined) {
      byFrom = new Map();
      this.collected.set(newView, byFrom);
    }
    byFrom.set(from, change);
    this.latestBySender.set(from, newView);
    assert(this.collected.get(newView)?.get(from) === change, 'a collected view change is kept');
    return true;
  }

  /** The views later than the current one that replicas other than `self` last asked for, one per sender. */
  laterViewsAskedFor(self: number): number[] {
    return [...this.latestBySender.entries()]
      .filter(([replica, view]) => replica !== self && view > this.currentView)
      .map(([, view]) => view);
  }

  /** The view changes collected for `view`, by sender, in the order they arrived. */
  collectedFor(view: number): ReadonlyMap<number, CollectedViewChange> {
    return this.collected.get(view) ?? new Map();
  }

  /**
   * §4.5.2: once `quorum` replicas ask for the view being changed to or a later one, starts the
   * timer that moves on to the next view, doubling the timeout with each attempt. Does nothing if
   * it already runs.
   *
   * A replica asking for a later view has given up on this one too and will never help it start,
   * so it counts. Counting only exact matches can deadlock: with f replicas silent, one correct
   * replica whose timer ran (on view changes it then received) asks for v+1 while the other correct
   * ones, which lost some of those messages, wait at v for a quorum that can no longer form — it
   * repeats only its latest view change — and the f+1 rule never fires for one replica alone.
   */
  armTimerOnQuorum(options: { ticks: number; quorum: number; timeoutTicks: number }): void {
    if (!this.changing || this.timerDeadline !== undefined) return;
    if (this.askingForViewOrLater(this.currentView) < options.quorum) return;
    this.timerDeadline =
      options.ticks + options.timeoutTicks * 2 ** Math.min(this.attempts - 1, backoffDoublingsMax);
    assert(this.timerDeadline > options.ticks, 'the view-change timer expires in the future');
  }

  /** How many replicas (this one included) last asked for `view` or a later one. */
  private askingForViewOrLater(view: number): number {
    let count = 0;
    for (const asked of this.latestBySender.values()) if (asked >= view) count++;
    return count;
  }

  /** True once the view-change timer has run out: time to try the next view. */
  timerExpired(ticks: number): boolean {
    return this.changing && this.timerDeadline !== undefined && ticks >= this.timerDeadline;
  }

  /**
   * Enters `view` with its new-view message (sent by us as its primary, or accepted from it). Every
   * view change collected for it or an earlier view is used up.
   */
  enter(view: number, newView: Envelope): void {
    assert(
      view > this.currentView || (view === this.currentView && this.changing),
      `entering view ${view} from view ${this.currentView}${this.changing ? ' (changing)' : ''}`,
    );
    this.currentView = view;
    this.changing = false;
    this.timerDeadline = undefined;
    this.attempts = 0;
    this.latestNewView = newView;
    for (const collectedView of [...this.collected.keys()]) {
      if (collectedView <= view) this.collected.delete(collectedView);
    }
    assert(!this.changing && this.currentView === view, 'entered the new view');
    assert(
      [...this.collected.keys()].every((collectedView) => collectedView > view),
      'no view change collected for a view at or below the current one',
    );
  }

  /** Rebuilds the durable part after a restart: the view, and the last messages sent or accepted. */
  restore(state: {
    readonly view: number;
    readonly inViewChange: boolean;
    readonly ownViewChange?: Envelope;
    readonly newView?: Envelope;
  }): void {
    assert(this.currentView === 0 && this.collected.size === 0, 'restore only a fresh view-change state');
    this.currentView = state.view;
    this.changing = state.inViewChange;
    this.ownViewChange = state.ownViewChange;
    this.latestNewView = state.newView;
  }
}
