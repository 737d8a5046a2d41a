/**
 * Payloads as files: `<dir>/objects/<first 2 hex>/<64 hex>`. A put streams into `<dir>/tmp/<random>`
 * while hashing, fsyncs it, renames it into place (atomic: readers see the whole object or none) and
 * fsyncs the shard directory, so a key reported stored survives a crash or power loss. Anything in
 * `tmp/` at open was interrupted before being reported, so it is removed.
 *
 * One process owns a directory at a time: the open-time cleanup would otherwise delete another
 * process's in-flight temporary files.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { fsyncDirectory, makeDirectoryDurable } from '../../runtime/durable-directory.js';
import { guarded, storageFailure, systemCode } from './failures.js';
import { checkExpected, ContentMeter } from './metering.js';
import type { ByteRange, PayloadStorage, PutOptions, StoredObject } from './types.js';
import { checkKey, checkRangeStart, checkSizeMax } from './validation.js';

const shardCount = 256;

export async function openFilesystemStorage(directory: string): Promise<PayloadStorage> {
  const root = resolve(directory);
  const objects = join(root, 'objects');
  const temporary = join(root, 'tmp');
  await guarded('open its directory', async () => {
    await makeDirectoryDurable(objects);
    await makeDirectoryDurable(temporary);
    // Leftovers of puts interrupted by a crash. Their removal need not be durable: one that reappears
    // after a power loss is removed again at the next open.
    for (const name of await readdir(temporary))
      await rm(join(temporary, name), { recursive: true, force: true });
    // Shards are made up front so that a put never adds (and must fsync) an entry in `objects/`.
    const present = new Set(await readdir(objects));
    for (let shard = 0; shard < shardCount; shard += 1) {
      const name = shard.toString(16).padStart(2, '0');
      if (!present.has(name)) await mkdir(join(objects, name), { recursive: true });
    }
    // Unconditionally: a previous run may have created shards and died before this fsync.
    await fsyncDirectory(objects);
  });
  return new FilesystemStorage(objects, temporary);
}

class FilesystemStorage implements PayloadStorage {
  readonly kind = 'filesystem';
  readonly #objects: string;
  readonly #temporary: string;
  #closed = false;

  constructor(objects: string, temporary: string) {
    this.#objects = objects;
    this.#temporary = temporary;
  }

  async put(source: Readable, options: PutOptions = {}): Promise<StoredObject> {
    this.#checkOpen();
    const expected =
      options.expectedSha256 === undefined ? undefined : checkKey(options.expectedSha256, 'expectedSha256');
    const meter = new ContentMeter(checkSizeMax(options.sizeMax));
    const temporaryPath = join(this.#temporary, randomUUID());
    let handle: FileHandle | undefined;
    let placed = false;
    try {
      const file = await guarded('create a temporary file', () => open(temporaryPath, 'wx', 0o600));
      handle = file;
      // Each chunk is written before the next is read: the source is paused by the pipeline meanwhile.
      await pipeline(source, async (chunks: AsyncIterable<unknown>) => {
        for await (const chunk of chunks) {
          const bytes = meter.update(chunk);
          await guarded('write', () => writeAll(file, bytes));
        }
      });
      const stored = meter.finish();
      checkExpected(stored, expected);
      const target = this.#pathOf(stored.key);
      const existing = await statIfPresent(target);
      // A same-sized file under the same hash name is the same content (it was only ever renamed into
      // place whole); anything else is damage, which a fresh copy repairs.
      if (existing?.size !== stored.size) {
        await guarded('fsync', () => file.sync());
        handle = undefined;
        await guarded('close', () => file.close());
        await guarded('rename into place', () => rename(temporaryPath, target));
        placed = true;
      }
      // Even when the object was already there, its directory entry may not be durable yet (another
      // put of the same content still in flight, or a process killed before its fsync).
      await guarded('fsync the object directory', () => fsyncDirectory(join(target, '..')));
      return stored;
    } finally {
      await handle?.close().catch(() => undefined);
      if (!placed) await rm(temporaryPath, { force: true }).catch(() => undefined);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    this.#checkOpen();
    const path = this.#pathOf(checkKey(key));
    // Opening first pins the file: a concurrent delete cannot cut the stream short on POSIX.
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      if (systemCode(error) === 'ENOENT') throw notFound(key);
      throw storageFailure('open the object', error);
    }
    try {
      const { size } = await handle.stat();
      const start = checkRangeStart(range, size);
      return handle.createReadStream({ start, autoClose: true, highWaterMark: 256 * 1024 });
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw storageFailure('read the object', error);
    }
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    this.#checkOpen();
    const found = await statIfPresent(this.#pathOf(checkKey(key)));
    return found === undefined ? undefined : { key, size: found.size };
  }

  async delete(key: string): Promise<boolean> {
    this.#checkOpen();
    const path = this.#pathOf(checkKey(key));
    try {
      await unlink(path);
    } catch (error) {
      if (systemCode(error) === 'ENOENT') return false;
      throw storageFailure('delete the object', error);
    }
    await guarded('fsync the object directory', () => fsyncDirectory(join(path, '..')));
    return true;
  }

  /** The sizes of the objects and of the puts in progress (their temporary files take room too). */
  async usage(): Promise<number> {
    this.#checkOpen();
    return (await directoryBytes(this.#objects)) + (await directoryBytes(this.#temporary));
  }

  async close(): Promise<void> {
    // Every put fsyncs before resolving, so there is nothing to flush.
    this.#closed = true;
  }

  #pathOf(key: string): string {
    return join(this.#objects, key.slice(0, 2), key);
  }

  #checkOpen(): void {
    if (this.#closed)
      throw new LedgerbusError(ErrorCode.StorageUnavailable, 'payload storage is closed', {
        retriable: false,
      });
  }
}

/** Files stat-ed at once by directoryBytes: enough to keep the thread pool busy, few promises at a time. */
const statBatch = 256;

/**
 * The summed sizes of the files under `directory`. A file or directory removed while the walk runs
 * (a delete, a put renamed into place) counts nothing rather than failing the walk.
 */
async function directoryBytes(directory: string): Promise<number> {
  let entries: Dirent[];
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch (error) {
    if (systemCode(error) === 'ENOENT') return 0;
    throw storageFailure('list a directory', error);
  }
  let total = 0;
  const files: string[] = [];
  for (const entry of entries) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) total += await directoryBytes(path);
    else if (entry.isFile()) files.push(path);
  }
  for (let start = 0; start < files.length; start += statBatch) {
    const sizes = await Promise.all(
      files.slice(start, start + statBatch).map(async (path) => (await statIfPresent(path))?.size ?? 0),
    );
    for (const size of sizes) total += size;
  }
  return total;
}

/** FileHandle.write may write less than asked; loop so no byte is silently dropped. */
async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

async function statIfPresent(path: string): Promise<{ size: number } | undefined> {
  try {
    const found = await stat(path);
    return { size: found.size };
  } catch (error) {
    if (systemCode(error) === 'ENOENT') return undefined;
    throw storageFailure('stat the object', error);
  }
}

function notFound(key: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.PayloadNotFound, `no payload stored under ${key}`);
}
