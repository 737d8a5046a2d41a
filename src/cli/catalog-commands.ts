/**
 * `ledgerbus catalog ...` (DESIGN §8): the data catalog through an organization's connector (the
 * SDK's `Catalog`). An owner publishes a description of a dataset it loaded (`ledgerbus dataset
 * add`) — columns, row count, content hash, what its policy allows, never a row — and anyone in the
 * network finds it by a ranked full-text search that every node answers alike. The connector is
 * the `--as` organization's in the network file (default: the `ledgerbus dev` network's), or
 * `--connector` with `--token`.
 */
import { Command, InvalidArgumentError } from 'commander';
import { Catalog } from '../client/catalog.js';
import type { CatalogEntryJson, CatalogHitJson } from '../client/catalog.js';
import { catalogLimits } from '../registry/catalog.js';
import { devNetworkFile } from './audit-commands.js';
import { integerOption } from './option-parsers.js';
import { withUsageErrors } from './usage-errors.js';
import { optionsTransport } from './connector-target.js';

interface ConnectionOptions {
  readonly network?: string;
  readonly as?: string;
  readonly connector?: string;
  readonly token?: string;
  readonly json: boolean;
}

/** The SDK's catalog client for the connector the options name. BAD_CONFIG saying what to add when they name none. */
export function catalogFor(options: ConnectionOptions): Catalog {
  // A publish commits through Raft: allow it time.
  return new Catalog(optionsTransport(options, 60_000));
}

function print(json: boolean, data: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(data)}\n` : `${text}\n`);
}

function collect(value: string, previous: readonly string[]): string[] {
  return [...previous, value];
}

/** OWNER/NAME, as the catalog lists an entry. */
function datasetReference(value: string): { owner: string; dataset: string } {
  const match = /^([^/\s]+)\/([^/\s]+)$/.exec(value);
  if (match === null) throw new InvalidArgumentError('name the dataset OWNER/NAME, e.g. org2/loans');
  return { owner: match[1]!, dataset: match[2]! };
}

function subcommand(parent: Command, name: string, description: string): Command {
  const command = withUsageErrors(new Command(name).description(description), `catalog ${name}`)
    .option('--network <file>', `network.json of the network (default ${devNetworkFile})`)
    .option('--as <org>', 'the acting organization: its connector in the network file answers')
    .option('--connector <url>', "instead of --network/--as: the connector's API URL")
    .option('--token <token>', "with --connector: the connector's API token")
    .option('--json', 'print JSON', false);
  parent.addCommand(command);
  return command;
}

export function buildCatalogCommand(): Command {
  const catalog = withUsageErrors(
    new Command('catalog').description(
      'The data catalog: describe your datasets on the ledger (never their rows) and find anyone’s by a ranked full-text search.',
    ),
    'catalog',
  );

  subcommand(
    catalog,
    'publish',
    'Publish (or update, as its next version) the description of a dataset you loaded with `ledgerbus dataset add`: columns, row count, content hash and policy come from the dataset; you add the words.',
  )
    .requiredOption('--dataset <name>', 'the local dataset to describe')
    .requiredOption('--domain <domain>', 'its subject area, e.g. finance')
    .requiredOption('--title <title>', `a title (at most ${catalogLimits.titleLengthMax} characters)`)
    .requiredOption('--description <text>', 'what it holds, for people searching the catalog')
    .option('--tag <tag>', 'a keyword (repeat for more)', collect, [])
    .action(
      async (
        options: ConnectionOptions & {
          dataset: string;
          domain: string;
          title: string;
          description: string;
          tag: string[];
        },
      ) => {
        const entry = await catalogFor(options).publish({
          dataset: options.dataset,
          domain: options.domain,
          title: options.title,
          description: options.description,
          tags: options.tag,
        });
        print(
          options.json,
          entry,
          `published ${entry.owner}/${entry.dataset} version ${entry.version} (__system index ${entry.index}): ${entry.title}`,
        );
      },
    );

  subcommand(
    catalog,
    'search',
    'Search the catalog: words, "exact phrases", prefixes like loan*, AND / OR / NOT; best matches first. No query lists every entry.',
  )
    .argument('[query]', 'the search (quote it in the shell)', '')
    .option('--domain <domain>', 'only entries of this domain')
    .option('--owner <org>', 'only entries of this organization')
    .option(
      '--limit <n>',
      `hits at most (default 20, up to ${catalogLimits.searchResultsMax})`,
      integerOption('--limit', 1, catalogLimits.searchResultsMax),
    )
    .action(
      async (
        query: string,
        options: ConnectionOptions & { domain?: string; owner?: string; limit?: number },
      ) => {
        const result = await catalogFor(options).search({
          query,
          ...(options.domain === undefined ? {} : { domain: options.domain }),
          ...(options.owner === undefined ? {} : { owner: options.owner }),
          ...(options.limit === undefined ? {} : { limit: options.limit }),
        });
        print(
          options.json,
          result,
          result.hits.length === 0
            ? `no entries match${query.trim() === '' ? '' : ` ${JSON.stringify(query)}`}`
            : hitsTable(result.hits),
        );
      },
    );

  subcommand(
    catalog,
    'show',
    "One catalog entry: its description, columns and what its owner's policy allows.",
  )
    .argument('<owner/name>', 'the entry, as search lists it (e.g. org2/loans)', datasetReference)
    .action(async (reference: { owner: string; dataset: string }, options: ConnectionOptions) => {
      const entry = await catalogFor(options).entry(reference.owner, reference.dataset);
      print(options.json, entry, entryText(entry));
    });

  subcommand(
    catalog,
    'withdraw',
    'Withdraw your catalog entry for a dataset (publishing it again goes on from its last version).',
  )
    .argument('<name>', 'your dataset, as the catalog lists it')
    .action(async (name: string, options: ConnectionOptions) => {
      const result = await catalogFor(options).withdraw(name);
      print(
        options.json,
        result,
        `withdrew ${result.owner}/${result.dataset} (__system index ${result.index})`,
      );
    });

  return catalog;
}

/** Adds `ledgerbus catalog` to `program`. */
export function registerCatalogCommands(program: Command): Command {
  const command = buildCatalogCommand();
  program.addCommand(command);
  return command;
}

function hitsTable(hits: readonly CatalogHitJson[]): string {
  const header = ['RANK', 'DATASET', 'VERSION', 'DOMAIN', 'ROWS', 'SCORE', 'TITLE'];
  const rows = hits.map((hit) => [
    String(hit.rank),
    `${hit.entry.owner}/${hit.entry.dataset}`,
    String(hit.entry.version),
    hit.entry.domain,
    String(hit.entry.rowCount),
    hit.score,
    hit.entry.title,
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (row: readonly string[]): string =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ');
  const indent = ' '.repeat((widths[0] ?? 0) + 2);
  const lines = [line(header)];
  hits.forEach((hit, index) => {
    lines.push(line(rows[index]!));
    if (hit.snippet !== '' && hit.snippet !== hit.entry.title) lines.push(`${indent}${hit.snippet}`);
  });
  return lines.join('\n');
}

function entryText(entry: CatalogEntryJson): string {
  const policy = entry.policy;
  return [
    `${entry.owner}/${entry.dataset} version ${entry.version} (${entry.domain}), published ${new Date(entry.publishedAt).toISOString()} at __system index ${entry.index}`,
    `title        ${entry.title}`,
    `description  ${entry.description === '' ? '(none)' : entry.description}`,
    `tags         ${entry.tags.length === 0 ? '(none)' : entry.tags.join(', ')}`,
    `rows         ${entry.rowCount}`,
    `columns      ${entry.columns.map((column) => `${column.name} ${column.type}`).join(', ')}`,
    `sha256       ${entry.contentHash}`,
    `policy       columns ${policy.allowedColumns.join(', ')}; aggregates ${policy.aggregates.join(', ') || 'none'}; models ${policy.models.join(', ') || 'none'}; minimum group ${policy.minGroupSize}; approval ${policy.approval}`,
  ].join('\n');
}
