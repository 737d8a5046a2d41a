/**
 * The files of a local development network: keys, genesis, one node.yaml and one connector.yaml per
 * organization, and `network.json` — what a user (and the CLI's --network option) needs to talk to
 * it: organizations with roles, connector URLs and tokens, node addresses, and the genesis that is
 * the trust bundle for offline verification. Written once; later runs reuse them (and the data).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { toHex } from '../codec/index.js';
import { generateSigningKey, saveSigningKey } from '../crypto/index.js';
import { generateEncryptionKey, saveEncryptionKey } from '../crypto/envelope/index.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { Genesis } from '../registry/genesis.js';
import { parseGenesis } from '../registry/genesis.js';

export interface NetworkFile {
  readonly format: 'ledgerbus-network/v1';
  readonly network: string;
  readonly organizations: readonly {
    readonly id: string;
    readonly roles: readonly string[];
    readonly connector: { readonly url: string; readonly token: string };
  }[];
  readonly nodes: readonly { readonly id: string; readonly organization: string; readonly address: string }[];
  /** The trust bundle: organizations' keys, nodes' keys, partitions' replica sets. */
  readonly genesis: Genesis;
}

export interface DevnetLayout {
  readonly directory: string;
  readonly network: NetworkFile;
  readonly nodeConfigs: string[];
  readonly connectorConfigs: string[];
}

export interface DevnetOptions {
  readonly directory: string;
  readonly organizations?: number;
  readonly basePort?: number;
  readonly messageBytesMax?: number;
}

/** Creates the devnet's files if `directory/network.json` does not exist yet, then returns them. */
export function ensureDevnetLayout(options: DevnetOptions): DevnetLayout {
  const directory = options.directory;
  const networkPath = join(directory, 'network.json');
  const count = options.organizations ?? 4;
  if (!existsSync(networkPath)) {
    if (count < 4)
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        'a devnet needs at least 4 organizations (one 4-replica partition)',
      );
    createLayout(
      directory,
      count,
      options.basePort ?? 7400,
      options.messageBytesMax ?? 8 * 1024 * 1024 * 1024,
    );
  }
  const network = readNetworkFile(networkPath);
  const ids = network.organizations.map((organization) => organization.id);
  return {
    directory,
    network,
    nodeConfigs: ids.map((id) => join(directory, id, 'node.yaml')),
    connectorConfigs: ids.map((id) => join(directory, id, 'connector.yaml')),
  };
}

export function readNetworkFile(path: string): NetworkFile {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (error) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `cannot read network file ${path}: ${(error as Error).message}`,
    );
  }
  const file = value as Partial<NetworkFile> | null;
  if (
    file === null ||
    typeof file !== 'object' ||
    file.format !== 'ledgerbus-network/v1' ||
    !Array.isArray(file.organizations)
  ) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `${path} is not a ledgerbus network file (format ledgerbus-network/v1)`,
    );
  }
  return { ...(file as NetworkFile), genesis: parseGenesis(file.genesis, `${path}: genesis`) };
}

function createLayout(directory: string, count: number, basePort: number, messageBytesMax: number): void {
  mkdirSync(directory, { recursive: true });
  const organizations: Genesis['organizations'][number][] = [];
  const nodes: Genesis['nodes'][number][] = [];
  const connectors: { id: string; url: string; token: string }[] = [];
  for (let index = 1; index <= count; index++) {
    const id = `org${index}`;
    const folder = join(directory, id);
    mkdirSync(join(folder, 'keys'), { recursive: true });
    const nodeKey = generateSigningKey();
    const connectorKey = generateSigningKey();
    const encryptionKey = generateEncryptionKey();
    saveSigningKey(join(folder, 'keys', 'node.key'), nodeKey);
    saveSigningKey(join(folder, 'keys', 'connector.key'), connectorKey);
    saveEncryptionKey(join(folder, 'keys', 'encryption.key'), encryptionKey);
    const roles = index === count ? ['member', 'supervisor'] : ['member'];
    organizations.push({
      id,
      roles: roles as ('member' | 'supervisor')[],
      signingKeys: [toHex(connectorKey.publicKey)],
      encryptionKey: toHex(encryptionKey.publicKey),
    });
    const nodePort = basePort + index;
    const apiPort = basePort + 100 + index;
    nodes.push({
      id: `node${index}`,
      organization: id,
      publicKey: toHex(nodeKey.publicKey),
      address: `127.0.0.1:${nodePort}`,
    });
    const token = randomBytes(24).toString('base64url');
    connectors.push({ id, url: `http://127.0.0.1:${apiPort}`, token });
    writeFileSync(
      join(folder, 'node.yaml'),
      toYaml({
        nodeId: `node${index}`,
        keyFile: 'keys/node.key',
        dataDirectory: 'node-data',
        genesis: '../genesis.json',
      }),
    );
    writeFileSync(
      join(folder, 'connector.yaml'),
      toYaml({
        organization: id,
        keyFile: 'keys/connector.key',
        encryptionKeyFile: 'keys/encryption.key',
        dataDirectory: 'connector-data',
        genesis: '../genesis.json',
        node: `node${index}`,
        storage: { kind: 'filesystem', directory: 'payloads' },
        api: { listen: `127.0.0.1:${apiPort}`, token },
      }),
      { mode: 0o600 },
    );
  }
  const members = organizations
    .filter((organization) => organization.roles.includes('member'))
    .map((organization) => organization.id);
  const genesis: Genesis = {
    network: `devnet-${randomBytes(4).toString('hex')}`,
    organizations,
    nodes,
    topics: [
      {
        name: 'demo',
        partitions: [{ replicas: nodes.slice(0, 4).map((node) => node.id) }],
        producers: members,
        consumers: members,
        policy: { messageBytesMax, ttlMs: 7 * 24 * 3600 * 1000, payloadRetentionMs: 24 * 3600 * 1000 },
      },
    ],
  };
  writeFileSync(join(directory, 'genesis.json'), `${JSON.stringify(genesis, null, 2)}\n`);
  const network: NetworkFile = {
    format: 'ledgerbus-network/v1',
    network: genesis.network,
    organizations: organizations.map((organization, index) => ({
      id: organization.id,
      roles: organization.roles,
      connector: { url: connectors[index]!.url, token: connectors[index]!.token },
    })),
    nodes: nodes.map((node) => ({ id: node.id, organization: node.organization, address: node.address })),
    genesis,
  };
  writeFileSync(join(directory, 'network.json'), `${JSON.stringify(network, null, 2)}\n`, { mode: 0o600 });
}
