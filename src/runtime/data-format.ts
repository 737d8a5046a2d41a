/**
 * The format marker of a node's or a connector's data directory: `ledgerbus-data.json`, written
 * (durably) the first time a process uses the directory and checked on every start, before any
 * database in it is opened.
 *
 * Why it exists: what the directory holds is signed — blocks and their certificates, Raft entries
 * with admin transactions, the global ledger, proofs and envelope headers — and format 2 changed
 * every signature (the signing domain names the network, "ledgerbus/v1/<network>/<type>"). Data
 * written before cannot be verified after, so a process that found it would half-start: replicas
 * that refuse their own stored certificates, a Raft log that replays into rejections. Instead it
 * refuses to start, at once, with DATA_FORMAT_UNSUPPORTED and what to do. The marker also names the
 * network, so a data directory of one network is never opened with another network's genesis
 * (WRONG_NETWORK).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { fsyncDirectorySync, makeDirectoryDurableSync } from './durable-directory.js';

/** Format 2: every signature names its network. Format 1 (no marker) signed without it. */
export const dataFormat = 'ledgerbus-data/2';
export const dataFormatMarker = 'ledgerbus-data.json';

interface Marker {
  readonly format: string;
  readonly role: DataDirectoryRole;
  readonly network: string;
}

export type DataDirectoryRole = 'node' | 'connector';

/**
 * What a node or connector keeps in its data directory: an entry of these names there means data
 * was written, by this format or an older one. Other entries (a `lost+found` of a mount point, a
 * payload folder the storage config put inside) say nothing.
 */
const dataEntries: Readonly<Record<DataDirectoryRole, readonly string[]>> = {
  node: ['partitions', 'raft', 'global'],
  connector: ['connector.sqlite'],
};

export interface DataDirectory {
  readonly directory: string;
  readonly role: DataDirectoryRole;
  /** The genesis `network` the process serves. */
  readonly network: string;
}

/**
 * Checks that `directory` holds data of this format and network, or none. Read-only: `ledgerbus
 * dev` checks every directory of a devnet this way before it starts any process. Throws
 * LedgerbusError: DATA_FORMAT_UNSUPPORTED (data of another format, or data with no marker: written
 * before markers, format 1), WRONG_NETWORK (another network's data), BAD_CONFIG (another role's
 * directory), STORAGE_CORRUPT (an unreadable marker). Returns true if the marker is there, false if
 * the directory is new (absent, or without data).
 */
export function checkDataDirectory(options: DataDirectory): boolean {
  const markerPath = join(options.directory, dataFormatMarker);
  if (!existsSync(markerPath)) {
    const found = dataEntries[options.role].filter((name) => existsSync(join(options.directory, name)));
    if (found.length > 0) {
      throw new LedgerbusError(
        ErrorCode.DataFormatUnsupported,
        `${options.role} data directory ${options.directory} holds data (${found.join(', ')}) written by an older ledgerbus, whose signatures did not name their network; this version (${dataFormat}) cannot verify it. Start from an empty data directory: move ${options.directory} away, or set another dataDirectory`,
      );
    }
    return false;
  }
  const marker = readMarker(markerPath);
  if (marker.format !== dataFormat) {
    throw new LedgerbusError(
      ErrorCode.DataFormatUnsupported,
      `${options.role} data directory ${options.directory} is in format ${marker.format}; this version reads ${dataFormat} only. Start from an empty data directory, or run the ledgerbus version that wrote it`,
    );
  }
  if (marker.role !== options.role) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `data directory ${options.directory} belongs to a ${marker.role}, not a ${options.role}: give each process its own dataDirectory`,
    );
  }
  if (marker.network !== options.network) {
    throw new LedgerbusError(
      ErrorCode.WrongNetwork,
      `${options.role} data directory ${options.directory} belongs to network ${marker.network}, but the genesis is of network ${options.network}: point dataDirectory at this network's data`,
    );
  }
  return true;
}

/**
 * `checkDataDirectory`, then, for a new directory, creates it (0700) and writes the marker durably
 * (temporary file, fsync, rename, fsync of the directory) BEFORE anything else is written there, so
 * that after a crash a directory holding data always holds its marker too. Call it first thing at
 * start, before any database in the directory is opened. Throws as `checkDataDirectory` does.
 */
export function claimDataDirectory(options: DataDirectory): void {
  if (checkDataDirectory(options)) return;
  makeDirectoryDurableSync(options.directory, 0o700);
  const marker: Marker = { format: dataFormat, role: options.role, network: options.network };
  const temporary = join(options.directory, `.${dataFormatMarker}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    writeFileSync(fd, `${JSON.stringify(marker)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, join(options.directory, dataFormatMarker));
  fsyncDirectorySync(options.directory);
}

function readMarker(path: string): Marker {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (error) {
    throw new LedgerbusError(
      ErrorCode.StorageCorrupt,
      `cannot read the data format marker ${path}: ${(error as Error).message}`,
    );
  }
  const marker = value as Partial<Marker> | null;
  if (
    marker === null ||
    typeof marker !== 'object' ||
    typeof marker.format !== 'string' ||
    (marker.role !== 'node' && marker.role !== 'connector') ||
    typeof marker.network !== 'string'
  ) {
    throw new LedgerbusError(
      ErrorCode.StorageCorrupt,
      `the data format marker ${path} is not {format, role, network}`,
    );
  }
  return marker as Marker;
}
