/**
 * Group commit for the connector's database: writes queued in the same turn of the event loop commit
 * in one SQLite transaction, so concurrent sends pay one fsync between them instead of one each
 * (better-sqlite3 commits synchronously, so every fsync also stalls the event loop). Each write runs
 * in its own savepoint: one that throws is undone alone and rejects alone.
 */
import type { ConnectorDatabase } from './connector-database.js';

interface Queued {
  readonly work: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (reason: unknown) => void;
}

export class GroupCommit {
  private queue: Queued[] = [];
  private scheduled = false;

  constructor(private readonly database: Pick<ConnectorDatabase, 'transaction'>) {}

  /** Runs `work` in the next group's transaction; resolves with its result once that is durable. */
  run<T>(work: () => T): Promise<T> {
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
            outcomes.push({ ok: true, value: this.database.transaction(work) });
          } catch (error) {
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
