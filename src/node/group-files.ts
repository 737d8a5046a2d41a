/**
 * Where a node keeps each group's SQLite file, and what a failure of that storage is.
 *
 * A group id is chosen by whoever creates a topic (249 characters of name, plus `topic:` or `/<n>`),
 * but a file name holds at most 255 bytes, and SQLite adds `-wal`, `-shm` or `-journal`. Naming a
 * file after the whole id let one valid admin transaction make every node fail to open its files.
 * So a file is named by a readable, sanitized prefix of the id (for people looking at the directory)
 * and a hash of the WHOLE id (so distinct ids never share a file): at most 104 bytes, 112 with a
 * suffix, whatever the id.
 *
 * Data directories written before hold `<id, URI-encoded>.sqlite`; `openGroupDatabase` renames such
 * a file (and its companions) to the new name the first time it opens it, so an upgraded node keeps
 * its data.
 */
import { createHash } from 'node:crypto';
import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { AssertionError, ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import { fsyncDirectorySync, makeDirectoryDurableSync } from '../runtime/durable-directory.js';

/** Characters of the id kept readable at the front of the name. */
const readableCharsMax = 64;
/** Hex digits of sha256 kept: 128 bits, so a collision among distinct ids is not a practical risk. */
const hashHexDigits = 32;
/** What SQLite may put beside a database file, by appending to its name. */
export const groupFileSuffixes = ['-wal', '-shm', '-journal'] as const;

/**
 * The file name (no directory) of group `groupId`'s database: `<prefix>-<sha256 prefix>.sqlite`,
 * where the prefix is the id's first 64 characters with anything but `[A-Za-z0-9._-]` made `_`, and
 * the hash covers the id's UTF-8 bytes. ASCII only, at most 104 bytes. Every node, tool and test
 * that finds a group's file by its id must use this function.
 */
export function groupFileName(groupId: string): string {
  const readable = groupId.slice(0, readableCharsMax).replace(/[^A-Za-z0-9._-]/g, '_');
  const digest = createHash('sha256').update(groupId, 'utf8').digest('hex').slice(0, hashHexDigits);
  return `${readable}-${digest}.sqlite`;
}

/** The name the same file had before names were bounded (may be too long to exist). */
export function legacyGroupFileName(legacyId: string): string {
  return `${encodeURIComponent(legacyId)}.sqlite`;
}

export interface GroupDatabaseOptions {
  /** The folder of this kind of file (`<data>/raft`, `<data>/global`, `<data>/partitions`); created. */
  readonly directory: string;
  readonly groupId: string;
  /** The id the legacy name was derived from, when it is not the group id (the global ledger's). */
  readonly legacyId?: string;
  /** What the file is, for messages: "raft database", "global ledger", "partition database". */
  readonly what: string;
}

/**
 * Opens (creating) the group's database at `groupFileName(groupId)` in `directory`, first renaming
 * a legacy-named file there to it when the new one does not exist yet. Throws a group storage error
 * (`isGroupStorageError`) naming the group if the file cannot be opened.
 */
export function openGroupDatabase(options: GroupDatabaseOptions): Database.Database {
  try {
    makeDirectoryDurableSync(options.directory);
    const path = join(options.directory, groupFileName(options.groupId));
    adoptLegacyFile(options.directory, legacyGroupFileName(options.legacyId ?? options.groupId), path);
    return new Database(path);
  } catch (error) {
    throw groupStorageError(`open the ${options.what}`, options.groupId, error);
  }
}

/**
 * Renames `<directory>/<legacyName>` to `path` if it exists and `path` does not. Companions first,
 * the database last: if this stops half-way the legacy database is still there, so the next open
 * finishes the job, and the new name never exists without the WAL that belongs to it (which would
 * lose the transactions not yet checkpointed into the database).
 */
export function adoptLegacyFile(directory: string, legacyName: string, path: string): boolean {
  const legacy = join(directory, legacyName);
  if (legacy === path || existsSync(path) || !existsSync(legacy)) return false;
  for (const suffix of groupFileSuffixes) {
    if (existsSync(legacy + suffix)) renameSync(legacy + suffix, path + suffix);
  }
  renameSync(legacy, path);
  // The renames are durable once the directory is: a crash must not bring the legacy name back
  // beside data already written under the new one.
  fsyncDirectorySync(directory);
  return true;
}

/**
 * A failure of this node's storage of one group, as opposed to bad input or
 * a bug: the group stops on this node and the rest of the node goes on. Retriable: the disk may
 * come back (space freed, permissions fixed), and a restart of the group replays its log.
 * A LedgerbusError (a corrupt file, say) and an AssertionError (a bug) pass through unchanged.
 */
export function groupStorageError(failed: string, groupId: string, cause: unknown): Error {
  if (cause instanceof LedgerbusError || cause instanceof AssertionError) return cause;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new LedgerbusError(ErrorCode.StorageUnavailable, `cannot ${failed} of group ${groupId}: ${reason}`, {
    retriable: true,
    cause,
  });
}

/** True for what `groupStorageError` makes of a storage failure. */
export function isGroupStorageError(error: unknown): error is LedgerbusError {
  return isLedgerbusError(error, ErrorCode.StorageUnavailable);
}

/**
 * Runs a write to a group's database (`what`: "the raft database", say); an SQLite failure (disk
 * full, I/O error, file gone) becomes a group storage error, anything else (a broken invariant)
 * propagates as it is.
 */
export function writingGroup<T>(what: string, groupId: string, write: () => T): T {
  try {
    return write();
  } catch (error) {
    if (error instanceof Database.SqliteError) throw groupStorageError(`write ${what}`, groupId, error);
    throw error;
  }
}
