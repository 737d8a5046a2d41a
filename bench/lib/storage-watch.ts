/**
 * Watches a connector's filesystem payload storage from outside, to split a transfer's time into
 * phases without touching the connector. A put (src/connector/storage/filesystem.ts) streams into
 * `<payloads>/tmp/<random>`, fsyncs it, then renames it into `objects/<2 hex>/<sha256>`. A large
 * value travels in parts (src/connector/parts.ts), one put each, so what counts is the sum: bytes in
 * temporary files plus those of objects that appeared since `start`. The moment the sum reaches
 * the target is when the data is written (into the page cache), and the moment all of it is in
 * objects, with no temporary file left, is when every fsync and rename is done. Resolution is the
 * polling interval.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export interface StorageTimeline {
  /** performance.now() of the first sample that saw a temporary file. */
  readonly firstSeenAt: number | undefined;
  /** First sample at which temporary files and new objects held `targetBytes`. */
  readonly writtenAt: number | undefined;
  /** First sample at which new objects held `targetBytes` and no temporary file was left. */
  readonly goneAt: number | undefined;
}

export class StorageWatch {
  private firstSeenAt: number | undefined;
  private writtenAt: number | undefined;
  private goneAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Objects present before the watch started (warm-up payloads), by path. */
  private readonly before = new Set<string>();
  /** Sizes of the objects that appeared since, by path (an object never changes). */
  private readonly added = new Map<string, number>();
  /** Temporary files at the last sample: objects are listed only after one of them went away. */
  private temporaryNames = new Set<string>();
  private inObjects = 0;
  /** Bytes in temporary files and new objects at the last sample. */
  currentBytes = 0;

  constructor(
    private readonly storageDirectory: string,
    private readonly targetBytes: number,
  ) {}

  /** `<connector config directory>/payloads`, as the devnet layout configures storage. */
  static forOrganization(devnetDirectory: string, organization: string, targetBytes: number): StorageWatch {
    return new StorageWatch(join(devnetDirectory, organization, 'payloads'), targetBytes);
  }

  start(intervalMs = 100): void {
    for (const path of this.objectPaths()) this.before.add(path);
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  timeline(): StorageTimeline {
    return { firstSeenAt: this.firstSeenAt, writtenAt: this.writtenAt, goneAt: this.goneAt };
  }

  /**
   * Listing every object shard costs more CPU than the transfer can spare on a small machine, so
   * objects are listed only when a temporary file went away since the last sample (it was renamed
   * into objects, or deleted), or when `listObjects` says so.
   */
  sample(listObjects = false): void {
    const now = performance.now();
    const temporary = join(this.storageDirectory, 'tmp');
    let inTemporary = 0;
    const names = new Set<string>();
    for (const name of list(temporary)) {
      const size = sizeOf(join(temporary, name));
      if (size === undefined) continue; // renamed between readdir and stat
      inTemporary += size;
      names.add(name);
    }
    const wentAway = [...this.temporaryNames].some((name) => !names.has(name));
    this.temporaryNames = names;
    if (wentAway || listObjects) {
      for (const path of this.objectPaths()) {
        if (this.before.has(path) || this.added.has(path)) continue;
        const size = sizeOf(path);
        if (size !== undefined) this.added.set(path, size);
      }
      this.inObjects = 0;
      for (const size of this.added.values()) this.inObjects += size;
    }
    if (names.size > 0) this.firstSeenAt ??= now;
    this.currentBytes = inTemporary + this.inObjects;
    if (this.currentBytes >= this.targetBytes) this.writtenAt ??= now;
    if (this.inObjects >= this.targetBytes && names.size === 0) {
      this.firstSeenAt ??= now;
      this.goneAt ??= now;
    }
  }

  private objectPaths(): string[] {
    const objects = join(this.storageDirectory, 'objects');
    return list(objects).flatMap((shard) =>
      list(join(objects, shard)).map((name) => join(objects, shard, name)),
    );
  }
}

function list(directory: string): string[] {
  try {
    return readdirSync(directory);
  } catch {
    return []; // not created yet
  }
}

function sizeOf(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}
