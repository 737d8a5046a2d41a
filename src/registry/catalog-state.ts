/**
 * The data catalog as the __system state machine holds it (DESIGN §8; the entries' shape is
 * catalog.ts'): one mutable map beside the registry versions, not a part of them. Registry versions
 * are kept whole for every index because PBFT batches execute against old ones; nothing ever reads
 * an old catalog (searches read the latest, the contracts read none of it), so copying a catalog of
 * 100k entries into each version would only cost memory and snapshot bytes.
 *
 * Besides the live entries it remembers the last version of every withdrawn entry, so a dataset
 * published again after a withdrawal continues its version numbers and an old description can never
 * come back under a version number it already had.
 *
 * Listeners (a node's full-text index) hear each change once it is applied: `put` and `delete` as
 * they happen, `reset` when a snapshot replaced everything.
 */
import { t } from '../codec/index.js';
import type { Infer } from '../codec/index.js';
import { AdminReject } from './admin-transactions.js';
import type { AdminAction } from './admin-transactions.js';
import { catalogEntrySchema, catalogKey } from './catalog.js';
import type { CatalogEntry } from './catalog.js';

export type CatalogChange =
  | { readonly type: 'put'; readonly key: string; readonly entry: CatalogEntry }
  | { readonly type: 'delete'; readonly key: string; readonly entry?: undefined }
  /** Everything was replaced (a snapshot was restored): `entries` is the whole catalog now. */
  | { readonly type: 'reset'; readonly entries: readonly CatalogEntry[] };

export type CatalogListener = (change: CatalogChange) => void;

type PublishAction = Extract<AdminAction, { kind: 'catalogPublish' }>;

/** Why a catalog action is refused: a registry reason code and a sentence for the publisher. */
export interface CatalogProblem {
  readonly reason: string;
  readonly detail: string;
}

/** The catalog in a __system snapshot; optional there, so snapshots from before it still decode. */
export const catalogSnapshotSchema = t.record({
  /** Live entries, by key. */
  entries: t.array(catalogEntrySchema, { maxItems: 10_000_000 }),
  /** The last version of each withdrawn entry, by key. */
  withdrawn: t.array(
    t.record({ key: t.string({ minLength: 1, maxLength: 260 }), version: t.uint({ min: 1 }) }),
    {
      maxItems: 10_000_000,
    },
  ),
});
export type CatalogSnapshot = Infer<typeof catalogSnapshotSchema>;

export class CatalogState {
  /** One per published (owner, dataset): grows with catalog publications only. */
  private readonly entries = new Map<string, CatalogEntry>();
  /** One per dataset ever withdrawn and not published again: kept for good (see above), admin-paced. */
  private readonly withdrawnVersions = new Map<string, number>();
  /** One per subscriber, removed by the function `onChange` returns. */
  private readonly listeners = new Set<CatalogListener>();

  get size(): number {
    return this.entries.size;
  }

  get(owner: string, dataset: string): CatalogEntry | undefined {
    return this.entries.get(catalogKey(owner, dataset));
  }

  /** Every live entry, in no particular order (callers that need one sort). */
  all(): IterableIterator<CatalogEntry> {
    return this.entries.values();
  }

  /** The version an entry's next publish follows: its live version, or the last before withdrawal. */
  lastVersion(owner: string, dataset: string): number | undefined {
    const key = catalogKey(owner, dataset);
    return this.entries.get(key)?.version ?? this.withdrawnVersions.get(key);
  }

  /** Called with each change once applied. */
  onChange(listener: CatalogListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Why `owner` may not publish `action`, or undefined. The version must follow the entry's last one
   * (1 for a dataset never published), and the policy may allow only columns the dataset has.
   */
  publishProblem(owner: string, action: PublishAction): CatalogProblem | undefined {
    const key = catalogKey(owner, action.dataset);
    const last = this.lastVersion(owner, action.dataset);
    const expected = (last ?? 0) + 1;
    if (action.version !== expected) {
      const state =
        last === undefined
          ? 'is not in the catalog'
          : this.entries.has(key)
            ? `is at version ${last}`
            : `was withdrawn at version ${last}`;
      return {
        reason: AdminReject.VersionConflict,
        detail: `${key} ${state}: publish version ${expected}, not ${action.version}`,
      };
    }
    const names = new Set<string>();
    for (const column of action.columns) {
      if (names.has(column.name)) {
        return { reason: AdminReject.Malformed, detail: `column ${column.name} is listed twice` };
      }
      names.add(column.name);
    }
    const unknown = action.policy.allowedColumns.filter((column) => !names.has(column));
    if (unknown.length > 0) {
      return {
        reason: AdminReject.BadPolicy,
        detail: `the policy allows ${unknown.slice(0, 5).join(', ')}, not a column of ${action.dataset}`,
      };
    }
    return undefined;
  }

  /** Why `owner` may not withdraw `dataset`, or undefined. */
  withdrawProblem(owner: string, dataset: string): CatalogProblem | undefined {
    if (this.entries.has(catalogKey(owner, dataset))) return undefined;
    const key = catalogKey(owner, dataset);
    return {
      reason: AdminReject.DatasetUnknown,
      detail: this.withdrawnVersions.has(key)
        ? `${key} is already withdrawn`
        : `${key} is not in the catalog`,
    };
  }

  /** Records `entry` (checked by `publishProblem`) and returns the change for the listeners. */
  put(entry: CatalogEntry): CatalogChange {
    const key = catalogKey(entry.owner, entry.dataset);
    this.withdrawnVersions.delete(key);
    this.entries.set(key, entry);
    return { type: 'put', key, entry };
  }

  /** Withdraws a live entry (checked by `withdrawProblem`), remembering its version. */
  withdraw(owner: string, dataset: string): CatalogChange {
    const key = catalogKey(owner, dataset);
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      this.entries.delete(key);
      this.withdrawnVersions.set(key, entry.version);
    }
    return { type: 'delete', key };
  }

  notify(change: CatalogChange): void {
    for (const listener of this.listeners) listener(change);
  }

  /** The whole catalog in key order, so equal catalogs snapshot to equal bytes. */
  toSnapshot(): CatalogSnapshot {
    return {
      entries: [...this.entries.keys()].sort().map((key) => this.entries.get(key)!),
      withdrawn: [...this.withdrawnVersions.keys()]
        .sort()
        .map((key) => ({ key, version: this.withdrawnVersions.get(key)! })),
    };
  }

  get empty(): boolean {
    return this.entries.size === 0 && this.withdrawnVersions.size === 0;
  }

  /** Replaces everything with `snapshot` (or an empty catalog) and tells the listeners. */
  restore(snapshot: CatalogSnapshot | undefined): void {
    this.entries.clear();
    this.withdrawnVersions.clear();
    for (const entry of snapshot?.entries ?? [])
      this.entries.set(catalogKey(entry.owner, entry.dataset), entry);
    for (const { key, version } of snapshot?.withdrawn ?? []) this.withdrawnVersions.set(key, version);
    this.notify({ type: 'reset', entries: [...this.entries.values()] });
  }
}
