/**
 * Which connector a CLI command talks to. Every command that reaches a connector resolves it here —
 * from `--connector` and `--token`, or from the `--as` organization's entry in a network file — so
 * that an error coming back can say which connector, of which network, it came from (issue 19: a
 * CLI pointed at a port another devnet answers said only "wrong API token").
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Transport } from '../client/transport.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { readNetworkFile } from './devnet-layout.js';

/** The network file `ledgerbus dev` writes with its default `--dir`. */
export const devNetworkFile = join('.ledgerbus-dev', 'network.json');

export interface ConnectorTarget {
  readonly url: string;
  /** The organization whose entry of the network file named the connector (absent with --connector). */
  readonly organization?: string;
  readonly network?: string;
  readonly file?: string;
}

/** The connector the last transport made here points at: one per CLI process, read when it fails. */
let reached: ConnectorTarget | undefined;

export function lastConnectorTarget(): ConnectorTarget | undefined {
  return reached;
}

function transportTo(target: ConnectorTarget, token: string, requestTimeoutMs: number): Transport {
  reached = target;
  return new Transport({ connector: target.url, token, requestTimeoutMs });
}

/** The `organization`'s connector in the network file at `path`; BAD_CONFIG naming the ones it has. */
export function networkTransport(path: string, organization: string, requestTimeoutMs = 60_000): Transport {
  const network = readNetworkFile(path);
  const entry = network.organizations.find((candidate) => candidate.id === organization);
  if (entry === undefined) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `--as ${organization}: no such organization in ${path} (have ${network.organizations.map((o) => o.id).join(', ')})`,
    );
  }
  return transportTo(
    { url: entry.connector.url, organization, network: network.network, file: path },
    entry.connector.token,
    requestTimeoutMs,
  );
}

/** Options every command that reaches a connector takes. */
export interface ConnectorOptions {
  readonly network?: string;
  readonly as?: string;
  readonly connector?: string;
  readonly token?: string;
}

/**
 * The connector the options name: `--connector` with `--token`, or the `--as` organization's in
 * the network file (default the dev network's). BAD_CONFIG saying what to add when they name none.
 */
export function optionsTransport(options: ConnectorOptions, requestTimeoutMs = 60_000): Transport {
  if (options.connector !== undefined || options.token !== undefined) {
    if (options.connector === undefined || options.token === undefined) {
      throw new LedgerbusError(ErrorCode.BadConfig, '--connector and --token go together: give both');
    }
    return transportTo({ url: options.connector }, options.token, requestTimeoutMs);
  }
  const path = options.network ?? devNetworkFile;
  if (options.as === undefined) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      'name the acting organization with --as ORG (its connector in --network, default the dev network), or give --connector URL --token TOKEN',
    );
  }
  if (options.network === undefined && !existsSync(path)) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `no ${path} here: start a dev network (ledgerbus dev), or pass --network FILE or --connector URL --token TOKEN`,
    );
  }
  return networkTransport(path, options.as, requestTimeoutMs);
}

/**
 * What the CLI adds to an error once a command has picked its connector: which one, of which network
 * (from which file), and for a refused token the likely cause. Empty before any connector was picked.
 */
export function connectorText(code: string): string {
  const target = reached;
  if (target === undefined) return '';
  const who = target.organization === undefined ? target.url : `${target.organization}'s at ${target.url}`;
  const where = target.network === undefined ? '' : ` (network ${target.network}, from ${target.file})`;
  const hint =
    code === ErrorCode.Unauthorized
      ? target.file === undefined
        ? ': it refused --token'
        : `: it refused the token ${target.file} holds for ${target.organization} — is the network running there the one this file describes?`
      : '';
  return `  connector: ${who}${where}${hint}\n`;
}
