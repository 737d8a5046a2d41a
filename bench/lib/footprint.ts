/**
 * Where an organization's disk goes, by component (issue 18): the bytes a node and a connector keep,
 * as allocated on disk (st_blocks × 512, what `du` counts: a 200-byte file costs its 4 KiB block).
 *
 * SQLite files are split by table with the `dbstat` virtual table (the pages each table and index
 * owns); what no table owns — free pages, the write-ahead log and its index — is `sqliteSlack`, so
 * a component is not charged for a checkpoint that has not run yet. A database is opened read-only
 * while its owner writes it (WAL lets a reader see a consistent snapshot).
 */
import { lstatSync, readdirSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import Database from 'better-sqlite3';

export const nodeComponents = [
  'blocks',
  'contractState',
  'consensusRecords',
  'raftLog',
  'globalLedgerBlocks',
  'globalLedgerIndex',
  'otherNodeState',
] as const;
export const connectorComponents = [
  'sentRecords',
  'receivedRecords',
  'packedPayloads',
  'otherConnectorRecords',
  'payloadFiles',
] as const;
export type Component =
  (typeof nodeComponents)[number] | (typeof connectorComponents)[number] | 'sqliteSlack';

export type Footprint = Record<Component, number>;

export function emptyFootprint(): Footprint {
  const footprint = { sqliteSlack: 0 } as Footprint;
  for (const name of [...nodeComponents, ...connectorComponents]) footprint[name] = 0;
  return footprint;
}

export function totalBytes(footprint: Footprint): number {
  return Object.values(footprint).reduce((sum, bytes) => sum + bytes, 0);
}

function allocated(path: string): number {
  try {
    return lstatSync(path).blocks * 512;
  } catch {
    return 0;
  }
}

/** Every regular file under `directory`, recursively (symbolic links are not followed). */
function filesUnder(directory: string): string[] {
  let entries;
  try {
    entries = readdirSync(directory, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) return filesUnder(path);
    return entry.isFile() ? [path] : [];
  });
}

/** Which component a table of a node's database belongs to, by the folder the file is in. */
function nodeTableComponent(folder: string, table: string): Component {
  if (folder === 'partitions') {
    if (table === 'contract_state') return 'contractState';
    if (table === 'pbft_records' || table === 'consensus_epoch') return 'consensusRecords';
    return 'blocks';
  }
  if (folder === 'raft') return 'raftLog';
  if (folder === 'global') return table === 'blocks' ? 'globalLedgerBlocks' : 'globalLedgerIndex';
  return 'otherNodeState';
}

function connectorTableComponent(table: string): Component {
  if (table === 'packed_payloads') return 'packedPayloads';
  if (table === 'sent' || table.startsWith('sent_')) return 'sentRecords';
  if (table.startsWith('received')) return 'receivedRecords';
  return 'otherConnectorRecords';
}

/** The table (or index) names in a database's pages: indexes count with their table. */
function pagesByTable(path: string): Map<string, number> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const owners = new Map(
      (
        db.prepare("SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')").all() as {
          name: string;
          tbl_name: string;
        }[]
      ).map((row) => [row.name, row.tbl_name]),
    );
    const rows = db.prepare('SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name').all() as {
      name: string;
      bytes: number;
    }[];
    const byTable = new Map<string, number>();
    for (const row of rows) {
      // Internal indexes (sqlite_autoindex_<table>_N) belong to their table too.
      const auto = /^sqlite_autoindex_(.+)_\d+$/.exec(row.name)?.[1];
      const table = owners.get(row.name) ?? auto ?? row.name;
      byTable.set(table, (byTable.get(table) ?? 0) + row.bytes);
    }
    return byTable;
  } finally {
    db.close();
  }
}

function addDatabase(footprint: Footprint, path: string, componentOf: (table: string) => Component): void {
  let owned = 0;
  try {
    for (const [table, bytes] of pagesByTable(path)) {
      footprint[componentOf(table)] += bytes;
      owned += bytes;
    }
  } catch {
    // Unreadable right now (being created): all of it counts as slack this time.
  }
  const fileBytes = allocated(path) + allocated(`${path}-wal`) + allocated(`${path}-shm`);
  footprint.sqliteSlack += Math.max(0, fileBytes - owned);
}

const isDatabase = (path: string): boolean => path.endsWith('.sqlite') || path.endsWith('.db');
const isDatabaseCompanion = (path: string): boolean => /\.(sqlite|db)-(wal|shm|journal)$/.test(path);

/** A node's data directory (`node-data`): partitions/, raft/, global/ and the rest. */
export function nodeFootprint(dataDirectory: string): Footprint {
  const footprint = emptyFootprint();
  for (const path of filesUnder(dataDirectory)) {
    if (isDatabaseCompanion(path)) continue;
    const folder = relative(dataDirectory, dirname(path)).split('/')[0] ?? '';
    if (isDatabase(path)) addDatabase(footprint, path, (table) => nodeTableComponent(folder, table));
    else footprint.otherNodeState += allocated(path);
  }
  return footprint;
}

/** A connector's data directory and its filesystem payload storage. */
export function connectorFootprint(dataDirectory: string, payloadDirectory: string): Footprint {
  const footprint = emptyFootprint();
  for (const path of filesUnder(dataDirectory)) {
    if (isDatabaseCompanion(path)) continue;
    if (isDatabase(path)) {
      const connectorDatabase = basename(path) === 'connector.sqlite';
      addDatabase(footprint, path, (table) =>
        connectorDatabase ? connectorTableComponent(table) : 'otherConnectorRecords',
      );
    } else footprint.otherConnectorRecords += allocated(path);
  }
  for (const path of filesUnder(payloadDirectory)) footprint.payloadFiles += allocated(path);
  return footprint;
}

/** Sum of footprints, component by component. */
export function addFootprints(...footprints: readonly Footprint[]): Footprint {
  const sum = emptyFootprint();
  for (const footprint of footprints)
    for (const [name, bytes] of Object.entries(footprint)) sum[name as Component] += bytes;
  return sum;
}
