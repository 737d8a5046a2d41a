import { closeSync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * fsyncs a directory so that entries created, renamed or removed in it survive a power loss; on
 * Linux a file's own fsync (SQLite's included) does not cover the directory entry that names it.
 */
export function fsyncDirectorySync(path: string): void {
  const descriptor = openSync(path, 'r');
  try {
    fsyncSync(descriptor);
  } finally {
    closeSync(descriptor);
  }
}

/**
 * Creates `path` and any missing parents, fsyncing each parent whose entries changed: without it a
 * power cut can take a new folder, and every file written durably inside it, away again (found by the
 * power-loss test, test/power-loss.e2e.test.ts).
 */
export function makeDirectoryDurableSync(path: string, mode?: number): void {
  const target = resolve(path);
  const firstCreated = mkdirSync(target, { recursive: true, ...(mode === undefined ? {} : { mode }) });
  if (firstCreated === undefined) return;
  // Every directory from the first one created down to `target` is new: its parent gained an entry.
  for (let directory = target; ; directory = dirname(directory)) {
    fsyncDirectorySync(dirname(directory));
    if (directory === resolve(firstCreated)) break;
  }
}

/** `fsyncDirectorySync` without blocking the event loop (the connector's payload storage). */
export async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** `makeDirectoryDurableSync` without blocking the event loop. */
export async function makeDirectoryDurable(path: string): Promise<void> {
  const target = resolve(path);
  const firstCreated = await mkdir(target, { recursive: true });
  if (firstCreated === undefined) return;
  for (let directory = target; ; directory = dirname(directory)) {
    await fsyncDirectory(dirname(directory));
    if (directory === resolve(firstCreated)) break;
  }
}
