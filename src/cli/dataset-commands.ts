/**
 * `ledgerbus dataset ...` (DESIGN §8, data owners): datasets loaded into an organization's
 * connector for compute-to-data — typed tables that only jobs read, in a child process, and whose
 * rows never leave the organization. The connector is the `--as` organization's in the network file
 * (default: the `ledgerbus dev` network's), or `--connector` with `--token`.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { Datasets, datasetFormatOf } from '../client/datasets.js';
import type { Transport } from '../client/transport.js';
import type { DatasetDescription, DatasetFormat } from '../connector/datashare/jobs-api.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { withUsageErrors } from './usage-errors.js';
import { optionsTransport } from './connector-target.js';

/** The network file `ledgerbus dev` writes, used when neither --network nor --connector is given. */
const devNetworkFile = join('.ledgerbus-dev', 'network.json');

export interface ConnectionOptions {
  readonly network?: string;
  readonly as?: string;
  readonly connector?: string;
  readonly token?: string;
  readonly json: boolean;
}

/**
 * A transport to the connector the options name: `--connector` with `--token`, or the `--as`
 * organization's in the network file. BAD_CONFIG saying what to add when they name none.
 */
export function transportFor(options: ConnectionOptions, requestTimeoutMs = 60_000): Transport {
  return optionsTransport(options, requestTimeoutMs);
}

/** A subcommand with the connection options every dataset and job command takes. */
export function connectedCommand(parent: Command, path: string, name: string, description: string): Command {
  const command = withUsageErrors(new Command(name).description(description), `${path} ${name}`)
    .option('--network <file>', `network.json of the network (default ${devNetworkFile})`)
    .option('--as <org>', 'the acting organization: its connector in the network file')
    .option('--connector <url>', "instead of --network/--as: the connector's API URL")
    .option('--token <token>', "with --connector: the connector's API token")
    .option('--json', 'print JSON', false);
  parent.addCommand(command);
  return command;
}

export function print(json: boolean, data: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(data)}\n` : `${text}\n`);
}

/** The JSON of a policy file; BAD_CONFIG naming the file when it cannot be read or parsed. */
export function readJsonFile(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new LedgerbusError(ErrorCode.BadConfig, `cannot read ${what} ${file}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new LedgerbusError(ErrorCode.BadConfig, `${what} ${file} is not JSON: ${(error as Error).message}`);
  }
}

function formatOption(value: string): DatasetFormat {
  if (value !== 'csv' && value !== 'jsonl') {
    throw new LedgerbusError(ErrorCode.SchemaMismatch, '--format must be csv or jsonl');
  }
  return value;
}

export function buildDatasetCommand(): Command {
  const dataset = withUsageErrors(
    new Command('dataset').description(
      "Datasets shared by compute-to-data: loaded into this organization's connector, read only by jobs, never sent.",
    ),
    'dataset',
  );

  connectedCommand(
    dataset,
    'dataset',
    'add',
    'Load a CSV (header line first) or JSON-lines file as a dataset; prints the inferred columns and types and the row count.',
  )
    .argument('<name>', 'the dataset name: a letter, then letters, digits, _ or - (jobs say FROM name)')
    .requiredOption('--file <path>', 'the data file')
    .option('--format <format>', 'csv or jsonl (default: from the file extension)', formatOption)
    .option('--key-column <column>', 'a column to index')
    .option(
      '--policy <file>',
      'a policy file (JSON): allowed columns and aggregates, minimum group size, limits, approval',
    )
    .action(
      async (
        name: string,
        options: ConnectionOptions & {
          file: string;
          format?: DatasetFormat;
          keyColumn?: string;
          policy?: string;
        },
      ) => {
        if (!existsSync(options.file) || !statSync(options.file).isFile()) {
          throw new LedgerbusError(ErrorCode.BadConfig, `--file ${options.file}: no such file`);
        }
        const format = options.format ?? datasetFormatOf(options.file);
        const policy = options.policy === undefined ? undefined : readJsonFile(options.policy, 'policy file');
        const added = await new Datasets(transportFor(options)).addFile(name, options.file, {
          format,
          ...(options.keyColumn === undefined ? {} : { keyColumn: options.keyColumn }),
          ...(policy === undefined ? {} : { policy }),
        });
        print(options.json, added, describe(added, 'loaded'));
      },
    );

  connectedCommand(dataset, 'dataset', 'list', 'The datasets loaded into this connector.').action(
    async (options: ConnectionOptions) => {
      const datasets = await new Datasets(transportFor(options)).list();
      print(options.json, datasets, datasets.length === 0 ? 'no datasets' : listTable(datasets));
    },
  );

  connectedCommand(
    dataset,
    'dataset',
    'show',
    'One dataset: its columns and types, row count, content hash and policy.',
  )
    .argument('<name>', 'the dataset')
    .action(async (name: string, options: ConnectionOptions) => {
      const described = await new Datasets(transportFor(options)).get(name);
      print(options.json, described, describe(described, 'dataset'));
    });

  connectedCommand(
    dataset,
    'dataset',
    'remove',
    'Remove a dataset: jobs that name it are rejected DATASET_NOT_FOUND.',
  )
    .argument('<name>', 'the dataset')
    .action(async (name: string, options: ConnectionOptions) => {
      const removed = await new Datasets(transportFor(options)).remove(name);
      print(
        options.json,
        removed,
        `removed ${name}; withdraw its catalog entry too: ledgerbus catalog withdraw ${name}`,
      );
    });

  connectedCommand(
    dataset,
    'dataset',
    'policy',
    "Replace a dataset's policy; jobs decided from now on follow it.",
  )
    .argument('<name>', 'the dataset')
    .requiredOption('--file <path>', 'the policy file (JSON)')
    .action(async (name: string, options: ConnectionOptions & { file: string }) => {
      const updated = await new Datasets(transportFor(options)).setPolicy(
        name,
        readJsonFile(options.file, 'policy file'),
      );
      print(
        options.json,
        updated,
        `${describe(updated, 'policy of')}\npublish it to the catalog again so requesters see it: ledgerbus catalog publish --dataset ${name} ...`,
      );
    });

  return dataset;
}

/** A dataset as text: the header line, the column table and the policy. */
function describe(dataset: DatasetDescription, verb: string): string {
  const { policy } = dataset;
  const width = Math.max(6, ...dataset.columns.map((column) => column.name.length));
  return [
    `${verb} ${dataset.name}: ${dataset.rowCount} rows, ${dataset.columns.length} columns (${dataset.format}), sha256 ${dataset.contentHash}`,
    `${'COLUMN'.padEnd(width)}  TYPE`,
    ...dataset.columns.map(
      (column) =>
        `${column.name.padEnd(width)}  ${column.type}${column.name === dataset.keyColumn ? '  (key)' : ''}`,
    ),
    `policy: columns ${policy.allowedColumns === '*' ? 'all' : policy.allowedColumns.join(', ')}; aggregates ${policy.aggregates.join(', ')}; models ${policy.models.length === 0 ? 'none' : policy.models.join(', ')}`,
    `        minimum group ${policy.minGroupSize}; at most ${policy.maxRows} rows, ${policy.timeLimitMs} ms, ${Math.round(policy.memoryBytesMax / 1048576)} MiB; approval ${policy.approval}; difference check ${policy.differenceCheck ? 'on' : 'off'}`,
  ].join('\n');
}

function listTable(datasets: readonly DatasetDescription[]): string {
  const header = ['NAME', 'ROWS', 'COLUMNS', 'FORMAT', 'APPROVAL', 'MIN GROUP', 'LOADED'];
  const rows = datasets.map((entry) => [
    entry.name,
    String(entry.rowCount),
    String(entry.columns.length),
    entry.format,
    entry.policy.approval,
    String(entry.policy.minGroupSize),
    new Date(entry.loadedAt).toISOString(),
  ]);
  return table(header, rows);
}

/** Rows as aligned columns, two spaces apart. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
