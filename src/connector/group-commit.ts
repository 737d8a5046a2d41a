/**
 * Group commit for the connector's database: writes queued in the same turn of the event loop commit
 * in one SQLite transaction, so concurrent sends pay one fsync between them instead of one each
 * (better-sqlite3 commits synchronously, so every fsync also stalls the event loop). Each write runs
 * in its own savepoint: one that throws is undone alone and rejects alone.
 */
import { assert } from '../errors.js';
import type { ConnectorDatabase } from './connector-database.js';

interface Queued {
  readonly work: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (reason: unknown) => void;
}

export class GroupCommit {
  /** Writes of the current turn of the event loop: the next `flush` takes them all. */
  private queue: Queued[] = [];
  private scheduled = false;

  constructor(private readonly database: Pick<ConnectorDatabase, 'transaction' | 'inTransaction'>) {}

  /**
   * Runs `work` in the next group's transaction; resolves with its result once that is durable.
   * `work` is synchronous (SQLite's transaction is): one returning a promise is a bug, refused.
   */
  run<T>(work: () => T extends PromiseLike<unknown> ? never : T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const group = this.queue;
    this.queue = [];
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      this.database.transaction(() => {
        for (const { work } of group) {
          try {
            // Nested: a savepoint, rolled back alone if the work throws.
            const value = this.database.transaction(work);
            assert(!isThenable(value), 'a group-commit work must be synchronous');
            outcomes.push({ ok: true, value });
          } catch (error) {
            // Some SQLite errors (disk full, I/O) end the whole transaction, not just the savepoint:
            // the works after it would then commit on their own, outside the group. Stop here.
            if (!this.database.inTransaction) throw error;
            outcomes.push({ ok: false, error });
          }
        }
      });
    } catch (error) {
      // The commit itself failed: nothing of the group is durable.
      for (const { reject } of group) reject(error);
      return;
    }
    group.forEach(({ resolve, reject }, index) => {
      const outcome = outcomes[index]!;
      if (outcome.ok) resolve(outcome.value);
      else reject(outcome.error);
    });
  }
}

function isThenable(value: unknown): boolean {
  return (
    typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
  );
}
