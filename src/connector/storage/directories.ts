import { mkdir, open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * fsyncs a directory so that entries created, renamed or removed in it survive a power loss; on
 * Linux a file's own fsync does not cover the directory entry that names it.
 */
export async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Creates `path` and any missing parents, fsyncing each parent whose entries changed. */
export async function makeDirectoryDurable(path: string): Promise<void> {
  const target = resolve(path);
  const firstCreated = await mkdir(target, { recursive: true });
  if (firstCreated === undefined) return;
  // Every directory from the first one created down to `target` is new: its parent gained an entry.
  for (let directory = target; ; directory = dirname(directory)) {
    await fsyncDirectory(dirname(directory));
    if (directory === resolve(firstCreated)) break;
  }
}
