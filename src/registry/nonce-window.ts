/**
 * Replay protection for admin transactions in a Raft group's state machine, with bounded memory.
 *
 * Raft entries carry no consensus time, so the window is measured against each organization's own
 * clock as its applied transactions show it: the newest timestamp among the organization's applied
 * admin transactions. A transaction signed more than `adminClockWindowMs` before that is STALE; one
 * within it is refused as a REPLAY if its nonce was used. Nonces older than the window can then be
 * forgotten, since the stale check refuses them first. Keeping the high-water mark per organization
 * means only an organization's own keys move it: a member (or a lying leader, which cannot sign for
 * others) that stamps a transaction far in the future can lock out no one but itself, and the node a
 * transaction enters at refuses one ahead of its clock by more than the window (registry-host.ts).
 *
 * Everything here is a function of the applied entries, so replicas agree on every result whatever
 * the moment they prune at: a pruned nonce is always one the stale check already refuses.
 */
import { t, toHex } from '../codec/index.js';
import type { Infer } from '../codec/index.js';
import { AdminReject, type AdminTransaction } from './admin-transactions.js';

/** How long before its organization's newest applied admin transaction one may be signed. */
export const adminClockWindowMs = 60 * 60 * 1000;

/**
 * Nonces one organization may hold inside the window: past it, its admin transactions are refused
 * (QUOTA_EXCEEDED) until older ones leave the window. A node raises at most a few alerts a second,
 * so an honest organization stays far below.
 */
export const adminNoncesPerOrganizationMax = 100_000;

/** The refusal a replay check gives, or undefined when the transaction may proceed. */
export interface ReplayRefusal {
  readonly reason: AdminReject;
  readonly detail: string;
}

/** What a registry view offers the authentication of an admin transaction. */
export interface AdminReplayGuard {
  /** Nonces held, over every organization. */
  readonly size: number;
  refusal(
    transaction: Pick<AdminTransaction, 'organization' | 'nonce' | 'timestamp'>,
  ): ReplayRefusal | undefined;
}

interface OrganizationNonces {
  /** The newest timestamp among the organization's applied admin transactions. */
  newest: number;
  /** Nonce (hex) → its transaction's timestamp; at most `adminNoncesPerOrganizationMax` inside the window. */
  readonly nonces: Map<string, number>;
  /** Size after the last pruning: pruning runs when the map has doubled since, so it costs O(1) amortized. */
  prunedAt: number;
}

const pruneFloor = 1024;

export class AdminNonceWindow implements AdminReplayGuard {
  /** One per organization that ever had an admin transaction applied (registrations included). */
  private readonly organizations = new Map<string, OrganizationNonces>();

  constructor(
    private readonly windowMs: number = adminClockWindowMs,
    private readonly perOrganizationMax: number = adminNoncesPerOrganizationMax,
  ) {}

  refusal(
    transaction: Pick<AdminTransaction, 'organization' | 'nonce' | 'timestamp'>,
  ): ReplayRefusal | undefined {
    const entry = this.organizations.get(transaction.organization);
    if (entry === undefined) return undefined;
    const horizon = entry.newest - this.windowMs;
    if (transaction.timestamp < horizon) {
      return {
        reason: AdminReject.Stale,
        detail:
          `signed at ${iso(transaction.timestamp)}, more than ${this.windowMs / 60_000} min before ` +
          `${transaction.organization}'s newest applied admin transaction (${iso(entry.newest)}): ` +
          'sign it again with the current time',
      };
    }
    if (entry.nonces.has(toHex(transaction.nonce)))
      return { reason: AdminReject.Replay, detail: 'nonce already used' };
    if (entry.nonces.size >= this.perOrganizationMax) {
      // Pruning at the current mark changes no answer (a pruned nonce is stale), so it is safe inside
      // a check; the transaction's own timestamp may move the mark, so what it would leave is counted.
      this.prune(entry);
      const horizonAfter = Math.max(entry.newest, transaction.timestamp) - this.windowMs;
      let inside = 0;
      for (const timestamp of entry.nonces.values()) if (timestamp >= horizonAfter) inside++;
      if (inside >= this.perOrganizationMax) {
        return {
          reason: AdminReject.QuotaExceeded,
          detail: `${transaction.organization} has ${inside} admin transactions within ${this.windowMs / 60_000} min; wait and retry`,
        };
      }
    }
    return undefined;
  }

  /** Records an applied transaction's nonce. Call only after `refusal` returned undefined for it. */
  record(transaction: Pick<AdminTransaction, 'organization' | 'nonce' | 'timestamp'>): void {
    let entry = this.organizations.get(transaction.organization);
    if (entry === undefined) {
      entry = { newest: transaction.timestamp, nonces: new Map(), prunedAt: 0 };
      this.organizations.set(transaction.organization, entry);
    }
    entry.newest = Math.max(entry.newest, transaction.timestamp);
    entry.nonces.set(toHex(transaction.nonce), transaction.timestamp);
    if (
      entry.nonces.size >= Math.max(pruneFloor, 2 * entry.prunedAt) ||
      entry.nonces.size > this.perOrganizationMax
    ) {
      this.prune(entry);
    }
  }

  /** Nonces held, over every organization (for tests and diagnostics). */
  get size(): number {
    let size = 0;
    for (const entry of this.organizations.values()) size += entry.nonces.size;
    return size;
  }

  private prune(entry: OrganizationNonces): void {
    const horizon = entry.newest - this.windowMs;
    for (const [nonce, timestamp] of entry.nonces) if (timestamp < horizon) entry.nonces.delete(nonce);
    entry.prunedAt = entry.nonces.size;
  }

  /** Canonical: organizations and nonces sorted, only nonces still inside the window. */
  toSnapshot(): ReplayWindowSnapshot {
    return [...this.organizations.keys()].sort().map((organization) => {
      const entry = this.organizations.get(organization)!;
      const horizon = entry.newest - this.windowMs;
      return {
        organization,
        newest: entry.newest,
        nonces: [...entry.nonces]
          .filter(([, timestamp]) => timestamp >= horizon)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([nonce, timestamp]) => ({ nonce, timestamp })),
      };
    });
  }

  static fromSnapshot(snapshot: ReplayWindowSnapshot): AdminNonceWindow {
    const window = new AdminNonceWindow();
    for (const { organization, newest, nonces } of snapshot) {
      window.organizations.set(organization, {
        newest,
        nonces: new Map(nonces.map(({ nonce, timestamp }) => [nonce, timestamp])),
        prunedAt: 0,
      });
    }
    return window;
  }

  /**
   * Snapshots written before the window kept `organization:nonce` strings without timestamps. They
   * are kept with timestamp 0: still refused as replays, and forgotten once the organization's next
   * transaction moves its high-water mark, after which the stale check refuses them.
   */
  static fromLegacyNonces(keys: readonly string[]): AdminNonceWindow {
    const window = new AdminNonceWindow();
    for (const key of keys) {
      const split = key.lastIndexOf(':');
      const organization = key.slice(0, split);
      let entry = window.organizations.get(organization);
      if (entry === undefined) {
        entry = { newest: 0, nonces: new Map(), prunedAt: 0 };
        window.organizations.set(organization, entry);
      }
      entry.nonces.set(key.slice(split + 1), 0);
    }
    for (const entry of window.organizations.values()) entry.prunedAt = entry.nonces.size;
    return window;
  }
}

function iso(ms: number): string {
  return Number.isFinite(ms) && ms >= 0 && ms <= 8.64e15 ? new Date(ms).toISOString() : String(ms);
}

export const replayWindowSnapshotSchema = t.array(
  t.record({
    organization: t.string({ minLength: 1, maxLength: 260 }),
    newest: t.uint(),
    nonces: t.array(t.record({ nonce: t.string({ minLength: 32, maxLength: 32 }), timestamp: t.uint() }), {
      maxItems: adminNoncesPerOrganizationMax,
    }),
  }),
  { maxItems: 1_000_000 },
);
export type ReplayWindowSnapshot = Infer<typeof replayWindowSnapshotSchema>;
