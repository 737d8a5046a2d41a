/**
 * The console's sessions: a random id in a cookie stands for "this browser presented the API token",
 * so the token itself is typed once and never stored by the browser or put in a URL.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ErrorCode, LedgerbusError } from '../../errors.js';

export interface SessionLimits {
  /** A session unused this long ends (default 30 minutes). */
  readonly idleMs?: number;
  /** A session ends this long after login however much it is used (default 12 hours). */
  readonly lifetimeMs?: number;
  /** Sessions held at once (default 32); see SessionTable. */
  readonly sessionsMax?: number;
  /** The clock sessions are timed by (tests move it). Default Date.now. */
  readonly now?: () => number;
}

export interface ConsoleSession {
  /** Sent back with every form and checked on every POST: a page of another site cannot know it. */
  readonly csrfToken: string;
  readonly createdAt: number;
  lastUsedAt: number;
}

const defaultIdleMs = 30 * 60_000;
const defaultLifetimeMs = 12 * 60 * 60_000;
const defaultSessionsMax = 32;

/** 256 random bits: a session id cannot be guessed, only stolen (hence HttpOnly). */
const idBytes = 32;

function digestOf(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Sessions in memory: a restart of the connector logs everyone out, which is what a token change
 * should do anyway. The table is keyed by the SHA-256 of the session id, so a lookup's timing
 * depends on a hash the caller cannot choose, and the ids themselves are not kept (a heap dump does
 * not hand out live cookies); the stored digest is then compared in constant time.
 *
 * Bound: at most `sessionsMax` sessions (32 by default, about 200 bytes each). Only someone who holds
 * the API token can make one, so a full table means a script logging in in a loop or many forgotten
 * tabs: the least recently used session is ended to make room rather than refusing the login.
 */
export class SessionTable {
  /** At most `sessionsMax` entries (32 by default): see the bound above. */
  private readonly sessions = new Map<
    string,
    { readonly digest: Buffer; readonly session: ConsoleSession }
  >();
  private readonly idleMs: number;
  private readonly lifetimeMs: number;
  private readonly sessionsMax: number;
  private readonly now: () => number;

  constructor(limits: SessionLimits = {}) {
    this.idleMs = positive(limits.idleMs, defaultIdleMs, 'idleMs');
    this.lifetimeMs = positive(limits.lifetimeMs, defaultLifetimeMs, 'lifetimeMs');
    this.sessionsMax = positive(limits.sessionsMax, defaultSessionsMax, 'sessionsMax');
    this.now = limits.now ?? Date.now;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** A new session; its id goes in the cookie and nowhere else. */
  create(): { readonly id: string; readonly session: ConsoleSession } {
    this.removeExpired();
    while (this.sessions.size >= this.sessionsMax) {
      let oldest: string | undefined;
      let oldestUse = Number.POSITIVE_INFINITY;
      for (const [key, entry] of this.sessions) {
        if (entry.session.lastUsedAt < oldestUse) [oldest, oldestUse] = [key, entry.session.lastUsedAt];
      }
      if (oldest === undefined) break;
      this.sessions.delete(oldest);
    }
    const id = randomBytes(idBytes).toString('base64url');
    const now = this.now();
    const session: ConsoleSession = {
      csrfToken: randomBytes(idBytes).toString('base64url'),
      createdAt: now,
      lastUsedAt: now,
    };
    const digest = digestOf(id);
    this.sessions.set(digest.toString('hex'), { digest, session });
    return { id, session };
  }

  /**
   * The live session `id` names, marked as used now (`touch`, the default) or left as it was (a
   * check that is not the user's doing, such as a live-update socket's); undefined when there is
   * none or it expired (an expired one is removed).
   */
  find(id: string | undefined, touch = true): ConsoleSession | undefined {
    if (id === undefined || id.length === 0) return undefined;
    const digest = digestOf(id);
    const key = digest.toString('hex');
    const entry = this.sessions.get(key);
    if (entry === undefined || !timingSafeEqual(entry.digest, digest)) return undefined;
    if (this.expired(entry.session)) {
      this.sessions.delete(key);
      return undefined;
    }
    if (touch) entry.session.lastUsedAt = this.now();
    return entry.session;
  }

  /** Ends the session `id` names (logout); nothing when there is none. */
  delete(id: string | undefined): void {
    if (id !== undefined) this.sessions.delete(digestOf(id).toString('hex'));
  }

  /** Whether `presented` is `session`'s CSRF token, compared in constant time (digests: equal lengths). */
  csrfMatches(session: ConsoleSession, presented: string | undefined): boolean {
    if (presented === undefined || presented.length === 0) return false;
    return timingSafeEqual(digestOf(presented), digestOf(session.csrfToken));
  }

  private expired(session: ConsoleSession): boolean {
    const now = this.now();
    return now - session.lastUsedAt >= this.idleMs || now - session.createdAt >= this.lifetimeMs;
  }

  private removeExpired(): void {
    for (const [key, entry] of this.sessions) if (this.expired(entry.session)) this.sessions.delete(key);
  }
}

function positive(value: number | undefined, fallback: number, field: string): number {
  if (value === undefined) return fallback;
  if (!(Number.isSafeInteger(value) && value > 0))
    throw new LedgerbusError(ErrorCode.BadConfig, `console ${field}: expected a positive integer`);
  return value;
}
