/**
 * Watches a connector's filesystem payload storage from outside, to split a transfer's time into
 * phases without touching the connector. A put (src/connector/storage/filesystem.ts) streams into
 * `<payloads>/tmp/<random>`, fsyncs it, then renames it into `objects/`; so the largest file in
 * `tmp/` shows how far the write is, the moment it reaches its final size is when the data is
 * written (into the page cache), and the moment it disappears is when fsync and rename are done.
 * Resolution is the polling interval.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export interface StorageTimeline {
  /** performance.now() of the first sample that saw a temporary file. */
  readonly firstSeenAt: number | undefined;
  /** First sample at which the temporary file had reached `targetBytes`. */
  readonly writtenAt: number | undefined;
  /** First sample, after the file was seen, at which it was gone (fsynced and renamed). */
  readonly goneAt: number | undefined;
}

export class StorageWatch {
  private firstSeenAt: number | undefined;
  private writtenAt: number | undefined;
  private goneAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Size of the largest temporary file at the last sample. */
  currentBytes = 0;

  constructor(
    private readonly temporaryDirectory: string,
    private readonly targetBytes: number,
  ) {}

  /** `<connector config directory>/payloads/tmp`, as the devnet layout configures storage. */
  static forOrganization(devnetDirectory: string, organization: string, targetBytes: number): StorageWatch {
    return new StorageWatch(join(devnetDirectory, organization, 'payloads', 'tmp'), targetBytes);
  }

  start(intervalMs = 100): void {
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

  sample(): void {
    const now = performance.now();
    let largest = -1;
    let names: string[] = [];
    try {
      names = readdirSync(this.temporaryDirectory);
    } catch {
      // not created yet
    }
    for (const name of names) {
      try {
        largest = Math.max(largest, statSync(join(this.temporaryDirectory, name)).size);
      } catch {
        // renamed between readdir and stat
      }
    }
    if (largest >= 0) {
      this.currentBytes = largest;
      this.firstSeenAt ??= now;
      if (largest >= this.targetBytes) this.writtenAt ??= now;
    } else if (this.firstSeenAt !== undefined && this.goneAt === undefined) {
      this.goneAt = now;
      this.writtenAt ??= now;
      this.currentBytes = this.targetBytes;
    }
  }
}
