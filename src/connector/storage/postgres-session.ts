import type { Pool, PoolClient, QueryResultRow } from 'pg';
import { guarded } from './failures.js';

/**
 * One pooled connection held for a transaction. It listens for the connection's 'error' event: the
 * pool stops listening once a client is checked out, and a connection dropped while we wait on the
 * payload source (no query in flight) would otherwise crash the process as an unhandled 'error'.
 */
export class Session {
  readonly #client: PoolClient;
  #failure: unknown;
  readonly #onError = (error: unknown): void => {
    this.#failure ??= error;
  };

  private constructor(client: PoolClient) {
    this.#client = client;
    client.on('error', this.#onError);
  }

  static async open(pool: Pool): Promise<Session> {
    return new Session(await guarded('connect', () => pool.connect()));
  }

  async query<Row extends QueryResultRow = QueryResultRow>(
    text: string,
    values: unknown[] = [],
  ): Promise<{ rows: Row[]; rowCount: number }> {
    try {
      const result = await this.#client.query<Row>(text, values);
      return { rows: result.rows, rowCount: result.rowCount ?? 0 };
    } catch (error) {
      this.#failure ??= error;
      throw error;
    }
  }

  /**
   * Rolls back whatever was not committed (a no-op after COMMIT) and returns the connection to the
   * pool — or destroys it if it failed, rather than hand a broken connection to the next caller.
   */
  async release(): Promise<void> {
    if (this.#failure === undefined) await this.query('rollback').catch(() => undefined);
    this.#client.off('error', this.#onError);
    const failure = this.#failure;
    this.#client.release(failure === undefined ? undefined : failure instanceof Error ? failure : true);
  }
}
