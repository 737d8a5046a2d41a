/**
 * The files of a local development network: keys, genesis, one node.yaml and one connector.yaml per
 * organization, and `network.json` — what a user (and the CLI's --network option) needs to talk to
 * it: organizations with roles (all members; the last, org4 by default, also supervisor and
 * auditor), connector URLs and tokens, node addresses, and the genesis that is the trust bundle for
 * offline verification. Written once; later runs reuse them (and the data).
 *
 * Everything in it is for its owner only: files 0600, directories 0700 (keys and tokens are secrets,
 * and the databases, logs and payload folders tell other local users what the organizations
 * exchange). genesis.json is public in principle, but it is 0600 too, like the rest of the folder.
 * The modes are set here explicitly, not left to the umask, because tests and tools call this as a
 * library; the CLI also sets its umask to 077 so the nodes' and connectors' own files follow.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fchmodSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
import type { Stats } from 'node:fs';
import { basename, join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { toHex } from '../codec/index.js';
import { generateSigningKey, loadSigningKey, saveSigningKey } from '../crypto/index.js';
import { generateEncryptionKey, loadEncryptionKey, saveEncryptionKey } from '../crypto/envelope/index.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { Genesis } from '../registry/genesis-schema.js';
import { parseGenesis } from '../registry/genesis.js';

export interface NetworkFile {
  readonly format: 'ledgerbus-network/v1';
  readonly network: string;
  readonly organizations: readonly {
    readonly id: string;
    readonly roles: readonly string[];
    readonly connector: { readonly url: string; readonly token: string };
  }[];
  readonly nodes: readonly {
    readonly id: string;
    readonly organization: string;
    readonly address: string;
    /** Where the node serves Prometheus metrics, `/healthz` and `/readyz` (node.yaml `metrics.listen`). */
    readonly metrics?: string;
  }[];
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
  /**
   * Nodes of each organization (default 1). The first of org<i> is node<i> at base+i, as always; the
   * others are org<i>-node2.. at the ports after every first node (base+count+1..), each with its
   * own key, `org<i>/<id>.yaml` and `org<i>/<id>-data`. Partitions keep one replica per organization
   * (the first nodes); the others serve connectors and forward what they do not host.
   */
  readonly nodesPerOrganization?: number;
  /**
   * When set, node n serves Prometheus metrics, /healthz and /readyz at 127.0.0.1:metricsBasePort+n
   * (node.yaml `metrics.listen`; network.json names the URL). `ledgerbus dev` sets base+300, so the
   * nodes of the default devnet serve them at 7701..; tests leave it out, their port ranges are tight.
   */
  readonly metricsBasePort?: number;
  /**
   * A devnet directory whose organizations' keys (node, connector, encryption) this one reuses
   * instead of generating its own; the new devnet still gets its own network id. It stands for an
   * organization that uses one key in two consortia (a test and a production one), which is what the
   * cross-network security test needs. Read only when the devnet is created.
   */
  readonly keysFrom?: string;
}

const directoryMode = 0o700;
const fileMode = 0o600;

/**
 * Creates the devnet's files if `directory/network.json` does not exist yet, then returns them. Either
 * way it leaves the devnet's own entries owner-only (see restrictDevnetModes), so a devnet written by
 * an older version, at 0644/0755, is fixed when it is resumed rather than refused.
 */
export function ensureDevnetLayout(options: DevnetOptions): DevnetLayout {
  const directory = options.directory;
  const networkPath = join(directory, 'network.json');
  const count = options.organizations ?? 4;
  const perOrganization = options.nodesPerOrganization ?? 1;
  if (!existsSync(networkPath)) {
    if (count < 4)
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        'a devnet needs at least 4 organizations (one 4-replica partition)',
      );
    // Node ports run from base+1 and connector APIs from base+101: nodes must stay below the APIs.
    if (!Number.isSafeInteger(perOrganization) || perOrganization < 1 || count * perOrganization > 99)
      throw new LedgerbusError(
        ErrorCode.BadConfig,
        `nodes per organization must be at least 1 and at most 99 nodes in all (have ${count} organizations × ${perOrganization})`,
      );
    createLayout({
      directory,
      count,
      perOrganization,
      basePort: options.basePort ?? 7400,
      messageBytesMax: options.messageBytesMax ?? 8 * 1024 * 1024 * 1024,
      ...(options.metricsBasePort === undefined ? {} : { metricsBasePort: options.metricsBasePort }),
      ...(options.keysFrom === undefined ? {} : { keysFrom: options.keysFrom }),
    });
  }
  const network = readNetworkFile(networkPath);
  const ids = network.organizations.map((organization) => organization.id);
  // A devnet is resumed as it was made: asking for another shape must not be ignored in silence.
  if (options.nodesPerOrganization !== undefined && network.nodes.length !== ids.length * perOrganization)
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `the devnet in ${directory} has ${network.nodes.length} nodes for ${ids.length} organizations, not ${perOrganization} per organization: remove the directory to make a new devnet, or leave out --nodes-per-org`,
    );
  writeTokenFiles(directory, network);
  restrictDevnetModes(directory, ids);
  return {
    directory,
    network,
    nodeConfigs: network.nodes.map((node) => nodeConfigPath(directory, network, node)),
    connectorConfigs: ids.map((id) => join(directory, id, 'connector.yaml')),
  };
}

/**
 * Each connector's API token alone in `org<i>/api-token`, for tools that read a secret from a file
 * (Prometheus's `credentials_file`, see docs/prometheus-devnet.yml). Written for resumed devnets too.
 */
function writeTokenFiles(directory: string, network: NetworkFile): void {
  for (const organization of network.organizations) {
    const path = join(directory, organization.id, 'api-token');
    if (!existsSync(path)) writePrivateFile(path, organization.connector.token);
  }
}

/**
 * The node.yaml of `node`: the organization's first node has `org/node.yaml`, any other
 * `org/<id>.yaml` (see DevnetOptions.nodesPerOrganization).
 */
function nodeConfigPath(directory: string, network: NetworkFile, node: NetworkFile['nodes'][number]): string {
  const first = network.nodes.find((candidate) => candidate.organization === node.organization);
  return join(directory, node.organization, first?.id === node.id ? 'node.yaml' : `${node.id}.yaml`);
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
  const genesis = parseGenesis(file.genesis, `${path}: genesis`);
  // What the file calls its network is what its genesis (the trust bundle) says: signatures are
  // checked in the genesis network's domain, so the two must never disagree.
  if (file.network !== genesis.network) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `${path}: network ${JSON.stringify(file.network)} differs from its genesis network ${JSON.stringify(genesis.network)}`,
    );
  }
  return { ...(file as NetworkFile), genesis };
}

/**
 * Takes every group and other permission bit off what a devnet holds: `directory` itself, its
 * genesis.json and network.json, and everything under logs/ and under each organization's folder
 * (configs, keys, node and connector databases, payloads). Only those entries: `directory` may be a
 * folder the user keeps other things in. Entries of another owner and symlinks (whose target may be
 * outside the devnet) are left alone. Idempotent; a no-op on Windows, which has no such bits.
 */
export function restrictDevnetModes(directory: string, organizations: readonly string[]): void {
  if (process.platform === 'win32') return;
  restrictMode(directory, false);
  for (const name of ['genesis.json', 'network.json']) restrictMode(join(directory, name), false);
  // An id is a folder name here; one that is not a plain name would lead out of the devnet.
  const folders = organizations.filter((id) => id === basename(id) && id !== '.' && id !== '..');
  for (const name of ['logs', ...folders]) restrictMode(join(directory, name), true);
}

function restrictMode(path: string, recursive: boolean): void {
  let stats: Stats;
  try {
    stats = lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (stats.isSymbolicLink() || stats.uid !== process.getuid?.()) return;
  if ((stats.mode & 0o077) !== 0) chmodSync(path, stats.mode & 0o700);
  if (recursive && stats.isDirectory()) {
    for (const entry of readdirSync(path)) restrictMode(join(path, entry), true);
  }
}

/** Writes `text` to `path` with mode 0600 whatever the umask, and whether or not `path` existed. */
function writePrivateFile(path: string, text: string): void {
  const fd = openSync(path, 'w', fileMode);
  try {
    // Before the first byte, so a file left by an interrupted earlier run is private before it is filled.
    fchmodSync(fd, fileMode);
    writeFileSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

function createLayout(options: {
  directory: string;
  count: number;
  perOrganization: number;
  basePort: number;
  messageBytesMax: number;
  metricsBasePort?: number;
  keysFrom?: string;
}): void {
  const { directory, count, perOrganization, basePort, messageBytesMax, metricsBasePort, keysFrom } = options;
  const metricsListen = (nodeNumber: number): { metrics?: { listen: string } } =>
    metricsBasePort === undefined ? {} : { metrics: { listen: `127.0.0.1:${metricsBasePort + nodeNumber}` } };
  mkdirSync(directory, { recursive: true, mode: directoryMode });
  // Made here rather than by whoever runs the processes, so they are 0700 whatever that one's umask.
  mkdirSync(join(directory, 'logs'), { recursive: true, mode: directoryMode });
  const organizations: Genesis['organizations'][number][] = [];
  const nodes: Genesis['nodes'][number][] = [];
  const connectors: { id: string; url: string; token: string }[] = [];
  for (let index = 1; index <= count; index++) {
    const id = `org${index}`;
    const folder = join(directory, id);
    for (const name of ['keys', 'node-data', 'connector-data', 'payloads']) {
      mkdirSync(join(folder, name), { recursive: true, mode: directoryMode });
    }
    const reused = keysFrom === undefined ? undefined : join(keysFrom, id, 'keys');
    const nodeKey = reused === undefined ? generateSigningKey() : loadSigningKey(join(reused, 'node.key'));
    const connectorKey =
      reused === undefined ? generateSigningKey() : loadSigningKey(join(reused, 'connector.key'));
    const encryptionKey =
      reused === undefined ? generateEncryptionKey() : loadEncryptionKey(join(reused, 'encryption.key'));
    saveSigningKey(join(folder, 'keys', 'node.key'), nodeKey);
    saveSigningKey(join(folder, 'keys', 'connector.key'), connectorKey);
    saveEncryptionKey(join(folder, 'keys', 'encryption.key'), encryptionKey);
    // DESIGN §7: in a devnet the last organization (org4 by default) is also the supervisor and
    // the auditor, so escrow audits can be tried without registering anyone.
    const roles: Genesis['organizations'][number]['roles'] =
      index === count ? ['member', 'supervisor', 'auditor'] : ['member'];
    organizations.push({
      id,
      roles,
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
    writePrivateFile(
      join(folder, 'node.yaml'),
      toYaml({
        nodeId: `node${index}`,
        keyFile: 'keys/node.key',
        dataDirectory: 'node-data',
        genesis: '../genesis.json',
        ...metricsListen(index),
      }),
    );
    writePrivateFile(
      join(folder, 'connector.yaml'),
      toYaml({
        organization: id,
        keyFile: 'keys/connector.key',
        encryptionKeyFile: 'keys/encryption.key',
        dataDirectory: 'connector-data',
        genesis: '../genesis.json',
        // Every node of the organization; one is named as before, so one-node devnets are unchanged.
        ...(perOrganization === 1
          ? { node: `node${index}` }
          : {
              nodes: [
                `node${index}`,
                ...Array.from({ length: perOrganization - 1 }, (_, extra) => `${id}-node${extra + 2}`),
              ],
            }),
        storage: { kind: 'filesystem', directory: 'payloads' },
        api: { listen: `127.0.0.1:${apiPort}`, token },
      }),
    );
  }
  // Further nodes of each organization, after every first node: the first nodes keep their ids
  // and ports, and the partitions below keep their replicas (nodes.slice(0, 4)).
  for (let extra = 2; extra <= perOrganization; extra++) {
    for (let index = 1; index <= count; index++) {
      const organization = `org${index}`;
      const id = `${organization}-node${extra}`;
      const folder = join(directory, organization);
      const nodeKey = generateSigningKey();
      saveSigningKey(join(folder, 'keys', `${id}.key`), nodeKey);
      mkdirSync(join(folder, `${id}-data`), { recursive: true, mode: directoryMode });
      const nodeNumber = nodes.length + 1;
      nodes.push({
        id,
        organization,
        publicKey: toHex(nodeKey.publicKey),
        address: `127.0.0.1:${basePort + nodeNumber}`,
      });
      writePrivateFile(
        join(folder, `${id}.yaml`),
        toYaml({
          nodeId: id,
          keyFile: `keys/${id}.key`,
          dataDirectory: `${id}-data`,
          genesis: '../genesis.json',
          ...metricsListen(nodeNumber),
        }),
      );
    }
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
      {
        // Carries compute-to-data jobs (DESIGN §8): their requests, decisions and result hashes.
        name: 'datashare',
        partitions: [{ replicas: nodes.slice(0, 4).map((node) => node.id) }],
        producers: members,
        consumers: members,
        policy: { messageBytesMax, ttlMs: 7 * 24 * 3600 * 1000, payloadRetentionMs: 24 * 3600 * 1000 },
      },
    ],
  };
  writePrivateFile(join(directory, 'genesis.json'), `${JSON.stringify(genesis, null, 2)}\n`);
  const network: NetworkFile = {
    format: 'ledgerbus-network/v1',
    network: genesis.network,
    organizations: organizations.map((organization, index) => ({
      id: organization.id,
      roles: organization.roles,
      connector: { url: connectors[index]!.url, token: connectors[index]!.token },
    })),
    nodes: nodes.map((node, index) => ({
      id: node.id,
      organization: node.organization,
      address: node.address,
      ...(metricsBasePort === undefined
        ? {}
        : { metrics: `http://127.0.0.1:${metricsBasePort + index + 1}` }),
    })),
    genesis,
  };
  writePrivateFile(join(directory, 'network.json'), `${JSON.stringify(network, null, 2)}\n`);
}
