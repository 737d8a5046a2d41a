/**
 * The commands a user of a running network types: `node` and `connector` (the two processes),
 * `dev` (a whole local network), and `send`, `consume`, `receipt`, `verify`.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { join, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Command, InvalidArgumentError } from 'commander';
import cliProgress from 'cli-progress';
import { loadSigningKey } from '../crypto/index.js';
import { loadEncryptionKey } from '../crypto/envelope/index.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import { Connector } from '../connector/connector.js';
import { loadConnectorConfig } from '../connector/config.js';
import { startHttpApi } from '../connector/http-api.js';
import { openStorage } from '../connector/storage/index.js';
import { loadGenesisRegistry, loadNodeConfig } from '../node/config.js';
import { checkDataDirectory } from '../runtime/data-format.js';
import { createLogger } from '../runtime/logger.js';
import { startNodeFromConfig } from '../node/node.js';
import {
  AUDIT_RECORD_FORMAT,
  decodeDeliveryReceipt,
  receiptSummary,
  verifyAuditRecordBundle,
  verifyDeliveryReceipt,
} from '../proofs/index.js';
import type { AuditRecordSummary } from '../proofs/index.js';
import { JOB_RECEIPT_TYPE, verifyJobReceipt } from '../proofs/job-receipt.js';
import type { JobReceiptSummary } from '../proofs/job-receipt.js';
import { GenesisRegistry } from '../registry/genesis.js';
import { proofTrustOf } from '../registry/trust.js';
import { liveRegistryFromGenesis } from '../registry/live-registry.js';
import type { Transport } from '../client/transport.js';
import { ensureDevnetLayout, readNetworkFile } from './devnet-layout.js';
import type { DevnetLayout, NetworkFile } from './devnet-layout.js';
import { invalidVerdict } from './error-output.js';
import { networkTransport } from './connector-target.js';

const progressThresholdBytes = 4 * 1024 * 1024;

function positiveNumber(name: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!Number.isSafeInteger(parsed) || parsed < 1)
      throw new InvalidArgumentError(`${name} must be a positive integer`);
    return parsed;
  };
}

function nonNegativeNumber(name: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!Number.isSafeInteger(parsed) || parsed < 0)
      throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return parsed;
  };
}

/**
 * A file name for a message id, which its sender chose: kept as it is when it is a plain name, else
 * percent-encoded, so that no id ('..', 'a/b', '.hidden') names a file outside the directory.
 */
export function fileNameOf(id: string): string {
  if (/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(id)) return id;
  return Array.from(Buffer.from(id, 'utf8'), (byte) =>
    /[A-Za-z0-9_-]/.test(String.fromCharCode(byte))
      ? String.fromCharCode(byte)
      : `%${byte.toString(16).padStart(2, '0').toUpperCase()}`,
  ).join('');
}

function untilSignal(): Promise<string> {
  return new Promise((resolveSignal) => {
    const handler = (signal: string): void => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
      resolveSignal(signal);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}

// ---- processes ----

export function buildNodeCommand(): Command {
  return new Command('node')
    .description("Run a node: hosts PBFT partition replicas and serves its organization's connectors.")
    .requiredOption('--config <file>', 'node.yaml (nodeId, keyFile, dataDirectory, genesis, listen)')
    .action(async (options: { config: string }) => {
      const { node } = await startNodeFromConfig(options.config);
      await untilSignal();
      await node.stop();
    });
}

export function buildConnectorCommand(): Command {
  return new Command('connector')
    .description(
      "Run an organization's connector: keys, storage, encryption, and the local REST/WebSocket API.",
    )
    .requiredOption('--config <file>', 'connector.yaml (organization, keys, storage, node, api)')
    .action(async (options: { config: string }) => {
      const config = loadConnectorConfig(options.config);
      const logger = createLogger({
        name: `connector-${config.organization}`,
        level: config.logLevel ?? 'info',
      });
      const storage = await openStorage(config.storage);
      const connector = new Connector({
        organization: config.organization,
        signingKey: loadSigningKey(config.keyFile),
        encryptionKey: loadEncryptionKey(config.encryptionKeyFile),
        registry: liveRegistryFromGenesis(loadGenesisRegistry(config.genesis).genesis),
        storage,
        dataDirectory: config.dataDirectory,
        ...(config.node === undefined ? {} : { nodeId: config.node }),
        ...(config.nodes === undefined ? {} : { nodes: config.nodes }),
        ...(config.balancer === undefined ? {} : { balancer: config.balancer }),
        ...(config.producer === undefined ? {} : { producer: config.producer }),
        logger,
      });
      connector.start();
      const [host, port] = splitAddress(config.api.listen);
      const api = await startHttpApi({ api: connector, host, port, token: config.api.token, logger });
      logger.info({ url: api.url, organization: config.organization }, 'connector API listening');
      await untilSignal();
      await api.close();
      await connector.stop();
    });
}

function splitAddress(address: string): [string, number] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon), Number(address.slice(colon + 1))];
}

// ---- dev ----

export function buildDevCommand(): Command {
  return new Command('dev')
    .description(
      'Start a whole local network: 4 organizations (org4 also supervisor and auditor), one node (or --nodes-per-org) and one connector each, topic "demo".',
    )
    .option(
      '--dir <directory>',
      'where keys, configs, data and network.json live (reused on the next run)',
      '.ledgerbus-dev',
    )
    .option(
      '--base-port <port>',
      'when creating the network: nodes listen on base+1.., connector APIs on base+101.., node metrics on base+301..',
      positiveNumber('--base-port'),
      7400,
    )
    .option(
      '--nodes-per-org <n>',
      'when creating the network (default 1): nodes of each organization (the first hosts the partitions; connectors balance over all, see docs/load-balancing.md)',
      positiveNumber('--nodes-per-org'),
    )
    .option('--json', 'print the ready line as JSON', false)
    .action(async (options: { dir: string; basePort: number; nodesPerOrg?: number; json: boolean }) => {
      const directory = resolve(options.dir);
      const layout = ensureDevnetLayout({
        directory,
        basePort: options.basePort,
        metricsBasePort: options.basePort + 300,
        ...(options.nodesPerOrg === undefined ? {} : { nodesPerOrganization: options.nodesPerOrg }),
      });
      checkDevnetData(layout, options.dir);
      // Before any process starts: a port another devnet or program holds is one clear error, not
      // processes exiting one by one while the CLI talks to whoever answers on that port.
      await checkPortsFree(devnetPorts(layout.network), options.dir);
      mkdirSync(join(directory, 'logs'), { recursive: true });
      const children: ChildProcess[] = [];
      const entry = process.argv[1] as string;
      let stopping = false;
      let reportExit: (message: string) => void = () => undefined;
      // The first process to exit on its own takes the whole devnet down: half a network is no network.
      const firstExit = new Promise<string>((resolveExit) => (reportExit = resolveExit));
      const start = (name: string, args: string[]): void => {
        const logPath = join(directory, 'logs', `${name}.log`);
        const log = openSync(logPath, 'a');
        const child = spawn(process.execPath, [...process.execArgv, entry, ...args], {
          stdio: ['ignore', log, log],
        });
        child.on('exit', (code, signal) => {
          if (!stopping) reportExit(`${name} exited (${signal ?? code}); see ${logPath}`);
        });
        children.push(child);
      };
      const stopAll = async (): Promise<void> => {
        stopping = true;
        await Promise.all(
          children.map(
            (child) =>
              new Promise<void>((done) => {
                if (child.exitCode !== null || child.signalCode !== null) return done();
                child.once('exit', () => done());
                child.kill('SIGTERM');
                setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
              }),
          ),
        );
      };
      layout.nodeConfigs.forEach((config, index) =>
        start(layout.network.nodes[index]?.id ?? `node${index + 1}`, ['node', '--config', config]),
      );
      layout.connectorConfigs.forEach((config, index) =>
        start(`connector-org${index + 1}`, ['connector', '--config', config]),
      );
      let failure: unknown;
      let settled = false;
      // The readiness poll stops once the race is decided, so a failed start exits at once.
      const readiness = waitForReady(layout.network, 60_000, () => settled);
      readiness.catch(() => undefined);
      try {
        const exited = await Promise.race([readiness.then(() => undefined), firstExit]);
        if (exited !== undefined) {
          failure = new LedgerbusError(
            ErrorCode.ProcessExited,
            `${exited}; the devnet was stopped before it was ready`,
          );
        }
      } catch (error) {
        failure = error;
      }
      settled = true;
      if (failure !== undefined) {
        await stopAll();
        throw failure;
      }
      const networkPath = join(directory, 'network.json');
      const consoles = layout.network.organizations.map((organization) => ({
        organization: organization.id,
        url: `${organization.connector.url}/console/`,
        tokenFile: join(directory, organization.id, 'api-token'),
      }));
      const line = options.json
        ? JSON.stringify({
            status: 'ready',
            network: networkPath,
            organizations: layout.network.organizations.map((organization) => organization.id),
            consoles,
          })
        : `ledgerbus devnet ready: ${layout.network.organizations.length} organizations, ${layout.network.nodes.length} nodes, topic demo; network file ${networkPath}\n` +
          consoles
            .map(
              ({ organization, url, tokenFile }) =>
                `  ${organization} console: ${url} (log in with the token in ${tokenFile})`,
            )
            .join('\n');
      process.stdout.write(`${line}\n`);
      const exited = await Promise.race([untilSignal().then(() => undefined), firstExit]);
      await stopAll();
      if (exited !== undefined) {
        throw new LedgerbusError(ErrorCode.ProcessExited, `${exited}; the rest of the devnet was stopped`);
      }
      process.stdout.write('devnet stopped\n');
    });
}

/**
 * Checks every node and connector data directory of the devnet before any process starts, so that
 * a devnet whose data this version cannot verify (written before signatures named their network)
 * is refused at once with what to do, never left half-started with processes that exit one by one.
 */
function checkDevnetData(layout: DevnetLayout, dirOption: string): void {
  const network = layout.network.genesis.network;
  const directories = [
    ...layout.nodeConfigs.map((path) => ({
      role: 'node' as const,
      path: loadNodeConfig(path).dataDirectory,
    })),
    ...layout.connectorConfigs.map((path) => ({
      role: 'connector' as const,
      path: loadConnectorConfig(path).dataDirectory,
    })),
  ];
  for (const { role, path } of directories) {
    try {
      checkDataDirectory({ directory: path, role, network });
    } catch (error) {
      if (!isLedgerbusError(error) || error.code !== ErrorCode.DataFormatUnsupported) throw error;
      throw new LedgerbusError(
        error.code,
        `the devnet in ${layout.directory} was made by an older ledgerbus and this one cannot verify its data (${path}): remove ${dirOption} to start a new devnet, or pass another --dir`,
        { cause: error },
      );
    }
  }
}

/** Every address the devnet's processes will listen on, with who listens there. */
function devnetPorts(network: NetworkFile): { owner: string; host: string; port: number }[] {
  const ports = network.nodes.flatMap((node) => {
    const [host, port] = splitAddress(node.address);
    const listens = [{ owner: node.id, host, port }];
    if (node.metrics !== undefined) {
      const url = new URL(node.metrics);
      listens.push({ owner: `${node.id} metrics`, host: url.hostname, port: Number(url.port) });
    }
    return listens;
  });
  for (const organization of network.organizations) {
    const url = new URL(organization.connector.url);
    ports.push({ owner: `connector of ${organization.id}`, host: url.hostname, port: Number(url.port) });
  }
  return ports;
}

/** Binds and releases each address: one held by anything else is BAD_CONFIG naming it and what to do. */
async function checkPortsFree(
  ports: readonly { owner: string; host: string; port: number }[],
  dirOption: string,
): Promise<void> {
  // A devnet's ports lie within 400 of its base: a base 1,000 above this one's clears them all.
  const suggestedBase = Math.min(...ports.map(({ port }) => port)) - 1 + 1000;
  const taken: string[] = [];
  for (const { owner, host, port } of ports) {
    const free = await new Promise<boolean>((resolveFree) => {
      const probe = createNetServer();
      probe.once('error', () => resolveFree(false));
      probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolveFree(true)));
    });
    if (!free) taken.push(`${host}:${port} (${owner})`);
  }
  if (taken.length > 0) {
    throw new LedgerbusError(
      ErrorCode.BadConfig,
      `the devnet in ${dirOption} cannot start: ${taken.join(', ')} ${taken.length === 1 ? 'is' : 'are'} already in use, ` +
        `probably by another devnet; stop it, or make this one elsewhere with --dir <new directory> --base-port <another base, e.g. ${suggestedBase}>`,
    );
  }
}

/**
 * Ready means every node answers its /readyz (when it serves one) and every connector its /readyz,
 * and each connector proves it is this devnet's: it accepts this devnet's token for its organization.
 */
async function waitForReady(
  network: NetworkFile,
  timeoutMs: number,
  cancelled: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const poll = async (what: string, check: () => Promise<string | undefined>): Promise<void> => {
    let last: string;
    for (;;) {
      if (cancelled()) throw new Error('no longer waited for');
      try {
        const problem = await check();
        if (problem === undefined) return;
        last = problem;
      } catch (error) {
        last = (error as Error).message;
      }
      if (Date.now() > deadline)
        throw new LedgerbusError(
          ErrorCode.Timeout,
          `${what} was not ready after ${timeoutMs / 1000} s (${last}); see the logs directory`,
          {
            retriable: false,
          },
        );
      await new Promise((done) => setTimeout(done, 250));
    }
  };
  for (const node of network.nodes) {
    if (node.metrics === undefined) continue;
    await poll(node.id, async () => {
      const response = await fetch(`${node.metrics}/readyz`);
      return response.ok ? undefined : `readyz ${response.status}: ${(await response.text()).trim()}`;
    });
  }
  for (const organization of network.organizations) {
    const { url, token } = organization.connector;
    await poll(`the connector of ${organization.id}`, async () => {
      const health = await fetch(`${url}/healthz`, { headers: { authorization: `Bearer ${token}` } });
      const body = (await health.json()) as { authenticated?: boolean; organization?: string };
      if (body.authenticated !== true || body.organization !== organization.id) {
        return `${url} answers, but not as ${organization.id} of this devnet (it refused this devnet's token)`;
      }
      const ready = await fetch(`${url}/readyz`);
      return ready.ok ? undefined : `readyz ${ready.status}: ${(await ready.text()).trim()}`;
    });
  }
}

// ---- clients of a connector ----

/**
 * The HTTP client of `--as <org>`'s connector, from network.json. The SDK's transport does the
 * authentication, the error mapping and the streamed uploads, so the CLI behaves as an SDK user would.
 */
function connectorFor(networkPath: string, organization: string): Transport {
  return networkTransport(networkPath, organization, 60_000);
}

function progressStream(total: number, label: string): Transform {
  const bar =
    total >= progressThresholdBytes && process.stderr.isTTY
      ? new cliProgress.SingleBar({
          format: `${label} [{bar}] {percentage}% {value}/{total} MiB`,
          stream: process.stderr,
        })
      : undefined;
  bar?.start(Math.ceil(total / 1048576), 0);
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      bar?.update(Math.floor(seen / 1048576));
      callback(null, chunk);
    },
    flush(callback) {
      bar?.update(Math.ceil(total / 1048576));
      bar?.stop();
      callback();
    },
  });
}

export function buildSendCommand(): Command {
  return new Command('send')
    .description('Send a file or a value to other organizations through the network (end-to-end encrypted).')
    .requiredOption('--network <file>', 'network.json of the network')
    .requiredOption('--as <org>', 'the sending organization (its connector does the work)')
    .requiredOption('--topic <topic>', 'topic to publish on')
    .requiredOption('--to <orgs>', 'recipient organizations, comma-separated')
    .option('--file <file>', 'payload file (streamed)')
    .option('--value <text>', 'payload given inline')
    .option('--key <key>', 'partitioning key')
    .option('--json', 'print JSON', false)
    .action(
      async (options: {
        network: string;
        as: string;
        topic: string;
        to: string;
        file?: string;
        value?: string;
        key?: string;
        json: boolean;
      }) => {
        if ((options.file === undefined) === (options.value === undefined)) {
          throw new LedgerbusError(ErrorCode.SchemaMismatch, 'give exactly one of --file or --value');
        }
        const connector = connectorFor(options.network, options.as);
        const size =
          options.file === undefined ? Buffer.byteLength(options.value ?? '') : statSync(options.file).size;
        const source =
          options.file === undefined
            ? Readable.from([Buffer.from(options.value ?? '')])
            : createReadStream(options.file);
        const body = source.pipe(progressStream(size, 'send'));
        const response = await connector.request(
          'POST',
          `/v1/topics/${encodeURIComponent(options.topic)}/messages`,
          {
            query: {
              to: options.to,
              key: options.key === undefined ? undefined : Buffer.from(options.key).toString('base64'),
            },
            headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
            body: Readable.toWeb(body) as ReadableStream,
            // The answer comes once the whole payload is encrypted, stored and committed.
            timeoutMs: null,
          },
        );
        const result = (await response.json()) as {
          id: string;
          partition: number;
          offset: number;
          height: number;
        };
        const summary = {
          id: result.id,
          partition: result.partition,
          offset: result.offset,
          height: result.height,
        };
        process.stdout.write(
          options.json
            ? `${JSON.stringify(summary)}\n`
            : `sent ${summary.id}: partition ${summary.partition}, offset ${summary.offset}, block ${summary.height}\n`,
        );
      },
    );
}

export function buildConsumeCommand(): Command {
  return new Command('consume')
    .description(
      'Print (and save) messages delivered to an organization: verified, decrypted and stored by its connector.',
    )
    .requiredOption('--network <file>', 'network.json of the network')
    .requiredOption('--as <org>', 'the receiving organization')
    .requiredOption('--topic <topic>', 'topic to read')
    .option(
      '--from-beginning',
      'start from the first delivered message (default: where this --group left off)',
      false,
    )
    .option('--count <n>', 'stop after n messages', positiveNumber('--count'))
    .option('--out <directory>', 'write each payload to DIRECTORY/<partition>/<id>')
    .option('--group <id>', 'consumer group whose position is kept', 'ledgerbus-cli')
    .option('--timeout <ms>', 'give up after this long without the wanted count', positiveNumber('--timeout'))
    .option('--json', 'print one JSON line per message', false)
    .action(
      async (options: {
        network: string;
        as: string;
        topic: string;
        fromBeginning: boolean;
        count?: number;
        out?: string;
        group: string;
        timeout?: number;
        json: boolean;
      }) => {
        const connector = connectorFor(options.network, options.as);
        const groupPath = `/v1/consumer-groups/${encodeURIComponent(options.group)}/topics/${encodeURIComponent(options.topic)}`;
        let after = options.fromBeginning
          ? 0
          : (await connector.json<{ sequence: number }>('GET', groupPath)).sequence;
        if (options.out !== undefined) mkdirSync(options.out, { recursive: true });
        const deadline = options.timeout === undefined ? Infinity : Date.now() + options.timeout;
        let seen = 0;
        while (options.count === undefined || seen < options.count) {
          if (Date.now() > deadline)
            throw new LedgerbusError(
              ErrorCode.Timeout,
              `only ${seen} message(s) arrived within ${options.timeout} ms`,
              { retriable: true },
            );
          const page = await connector.json<{
            messages: {
              sequence: number;
              id: string;
              sender: string;
              partition: number;
              offset: number;
              size: number;
              sha256: string;
            }[];
          }>('GET', '/v1/received', {
            query: { topic: options.topic, after, limit: 100, waitMs: 5000 },
          });
          for (const message of page.messages) {
            let file: string | undefined;
            if (options.out !== undefined) {
              // Ids are unique per partition only, and the sender chose them: one directory per
              // partition, and a file name that cannot leave it.
              mkdirSync(join(options.out, String(message.partition)), { recursive: true });
              file = join(options.out, String(message.partition), fileNameOf(message.id));
              const response = await connector.request(
                'GET',
                `/v1/received/${encodeURIComponent(options.topic)}/${message.partition}/${encodeURIComponent(message.id)}/payload`,
              );
              const hash = createHash('sha256');
              const check = new Transform({
                transform(chunk: Buffer, _encoding, callback) {
                  hash.update(chunk);
                  callback(null, chunk);
                },
              });
              await pipeline(
                Readable.fromWeb(response.body as never),
                progressStream(message.size, message.id),
                check,
                createWriteStream(file),
              );
              if (hash.digest('hex') !== message.sha256)
                throw new LedgerbusError(
                  ErrorCode.PayloadCorrupt,
                  `downloaded ${message.id} does not match its sha256`,
                );
            }
            const line = {
              id: message.id,
              sender: message.sender,
              partition: message.partition,
              offset: message.offset,
              size: message.size,
              sha256: message.sha256,
              ...(file === undefined ? {} : { file }),
            };
            process.stdout.write(
              options.json
                ? `${JSON.stringify(line)}\n`
                : `${line.id} from ${line.sender} (partition ${line.partition}, offset ${line.offset}, ${line.size} bytes, sha256 ${line.sha256})\n`,
            );
            after = message.sequence;
            await connector.json('PUT', groupPath, { json: { sequence: after } });
            seen += 1;
            if (options.count !== undefined && seen >= options.count) break;
          }
        }
      },
    );
}

export function buildReceiptCommand(): Command {
  return new Command('receipt')
    .description(
      'Build the delivery-proof bundle of a message (acceptance + deliveries), checkable offline with `ledgerbus verify`.',
    )
    .requiredOption('--network <file>', 'network.json of the network')
    .requiredOption('--as <org>', 'an organization that sent or received the message')
    .option('--topic <topic>', 'topic of the message', 'demo')
    .option(
      '--partition <n>',
      'partition of the message, when messages received on several partitions of the topic have this id',
      nonNegativeNumber('--partition'),
    )
    .option('--out <file>', 'write the bundle here (default: stdout)')
    .option(
      '--source <source>',
      "global (the topic's global ledger: any node of the topic answers), partition, or best (both; the one with more deliveries)",
      'best',
    )
    .option('--json', 'print JSON', false)
    .argument('<id>', 'message id')
    .action(
      async (
        id: string,
        options: {
          network: string;
          as: string;
          topic: string;
          partition?: number;
          out?: string;
          json: boolean;
          source: string;
        },
      ) => {
        if (!['global', 'partition', 'best'].includes(options.source)) {
          throw new InvalidArgumentError('--source must be global, partition or best');
        }
        const bundle = await connectorFor(options.network, options.as).json<Record<string, unknown>>(
          'GET',
          `/v1/topics/${encodeURIComponent(options.topic)}/messages/${encodeURIComponent(id)}/receipt`,
          { query: { source: options.source, partition: options.partition } },
        );
        const text = `${JSON.stringify(bundle, null, options.json ? undefined : 2)}\n`;
        if (options.out === undefined) process.stdout.write(text);
        else {
          writeFileSync(options.out, text);
          process.stderr.write(`receipt written to ${options.out}\n`);
        }
      },
    );
}

export function buildDeleteReceivedCommand(): Command {
  return new Command('delete-received')
    .description(
      "Delete a message this organization received, and its payload, from its connector (once its delivery is confirmed on-chain). The ledger keeps the message's proofs.",
    )
    .requiredOption('--network <file>', 'network.json of the network')
    .requiredOption('--as <org>', 'the organization that received the message')
    .option('--topic <topic>', 'topic of the message', 'demo')
    .requiredOption(
      '--partition <n>',
      'partition of the message (ids are unique per partition)',
      nonNegativeNumber('--partition'),
    )
    .option('--json', 'print JSON', false)
    .argument('<id>', 'message id')
    .action(
      async (
        id: string,
        options: { network: string; as: string; topic: string; partition: number; json: boolean },
      ) => {
        const deleted = await connectorFor(options.network, options.as).json<{
          id: string;
          topic: string;
          partition: number;
        }>(
          'DELETE',
          `/v1/received/${encodeURIComponent(options.topic)}/${options.partition}/${encodeURIComponent(id)}`,
        );
        if (options.json) process.stdout.write(`${JSON.stringify(deleted)}\n`);
        else
          process.stdout.write(
            `deleted ${deleted.id} (${deleted.topic}/${deleted.partition}) and its payload\n`,
          );
      },
    );
}

export function buildVerifyCommand(): Command {
  return new Command('verify')
    .description(
      "Check a receipt, an audit record or a job receipt offline against the network's trust bundle. Exit 0 when valid; 1 with the reason when not.",
    )
    .argument(
      '<file>',
      'receipt file written by `ledgerbus receipt`, audit record by `ledgerbus audit record`, or job receipt by `ledgerbus job receipt`',
    )
    .requiredOption('--network <file>', 'network.json (its genesis is the trust bundle)')
    .option('--json', 'print JSON', false)
    .action((file: string, options: { network: string; json: boolean }) => {
      const network = readNetworkFile(options.network);
      const registry = new GenesisRegistry(network.genesis);
      const fail = (code: string, reason: string): void => {
        process.stdout.write(invalidVerdict(options.json, code, reason));
        process.exitCode = 1;
      };
      let bundle: Record<string, unknown>;
      try {
        bundle = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      } catch (error) {
        return fail('MALFORMED_ENCODING', `${file} is not a JSON receipt: ${(error as Error).message}`);
      }
      if (typeof bundle === 'object' && bundle !== null && bundle['format'] === AUDIT_RECORD_FORMAT) {
        try {
          const summary = verifyAuditRecordBundle(bundle, proofTrustOf(registry));
          process.stdout.write(
            options.json
              ? `${JSON.stringify({ valid: true, ...summary })}\n`
              : `${auditRecordText(summary)}\n`,
          );
        } catch (error) {
          if (!isLedgerbusError(error)) throw error;
          fail(error.code, error.message);
        }
        return;
      }
      if (typeof bundle === 'object' && bundle !== null && bundle['type'] === JOB_RECEIPT_TYPE) {
        try {
          const summary = verifyJobReceipt(bundle, proofTrustOf(registry));
          process.stdout.write(
            options.json
              ? `${JSON.stringify({ valid: true, ...summary })}\n`
              : `${jobReceiptText(summary)}\n`,
          );
        } catch (error) {
          if (!isLedgerbusError(error)) throw error;
          fail(error.code, error.message);
        }
        return;
      }
      if (bundle['format'] !== 'ledgerbus-receipt/v1' || typeof bundle['proof'] !== 'string') {
        return fail('SCHEMA_MISMATCH', 'not a ledgerbus-receipt/v1 bundle');
      }
      if (bundle['network'] !== network.network)
        return fail(
          'WRONG_GROUP',
          `the receipt is from network ${String(bundle['network'])}, not ${network.network}`,
        );
      try {
        const receipt = decodeDeliveryReceipt(Buffer.from(bundle['proof'], 'base64'));
        const verified = verifyDeliveryReceipt(receipt, proofTrustOf(registry));
        const claimed = bundle['message'] as Record<string, unknown> | undefined;
        const message = verified.message;
        const actual = receiptSummary(message);
        if (JSON.stringify(claimed) !== JSON.stringify(actual))
          return fail('BAD_PROOF', 'the summary does not match what the proof proves');
        const deliveredTo = verified.deliveries.map((delivery) => delivery.recipient);
        if (JSON.stringify(bundle['deliveredTo']) !== JSON.stringify(deliveredTo))
          return fail('BAD_PROOF', 'deliveredTo does not match the proven deliveries');
        const result = { valid: true, ...actual, deliveredTo, deliveries: verified.deliveries };
        process.stdout.write(
          options.json
            ? `${JSON.stringify(result)}\n`
            : `VALID: message ${message.id} from ${message.sender} accepted at ${message.partitionId} offset ${message.offset} (block ${message.height}); delivered to ${deliveredTo.join(', ') || 'nobody yet'}\n`,
        );
      } catch (error) {
        const code = (error as { code?: string }).code ?? 'BAD_PROOF';
        fail(code, (error as Error).message);
      }
    });
}

/** What a valid job receipt proves, in a few lines. */
function jobReceiptText(summary: JobReceiptSummary): string {
  const decision =
    summary.decision === null
      ? 'not decided yet'
      : `${summary.decision} by ${summary.owner} (${summary.decisionReason ?? ''})`;
  const result =
    summary.result === null
      ? 'no result recorded yet'
      : `${summary.result} (${summary.resultCode ?? ''})${summary.resultHash === null ? '' : `, result hash ${summary.resultHash}`}`;
  return [
    `VALID: job ${summary.jobId} on ${summary.group}: ${summary.requester} asked ${summary.owner} for a ${summary.jobKind} job on ${summary.dataset} v${summary.datasetVersion} (plan hash ${summary.planHash})`,
    `state ${summary.state}; ${decision}; ${result}`,
  ].join('\n');
}

/** What a valid audit record proves, in a few lines. */
function auditRecordText(summary: AuditRecordSummary): string {
  const list = (items: readonly string[]): string => (items.length === 0 ? 'none' : items.join(', '));
  const { outcome } = summary;
  return [
    `VALID: audit ${summary.requestId} of message ${summary.id} from ${summary.sender} (${summary.topic}/${summary.partition}), requested by ${summary.auditor}: ${summary.reason}`,
    `state ${summary.state}; approved by ${list(summary.approvals)}; key shares released by ${list(summary.releases)}`,
    outcome === null
      ? 'no outcome recorded yet'
      : `outcome ${outcome.outcome}${outcome.contentRoot === null ? '' : ` (content root ${outcome.contentRoot})`}; bad shares: ${list(outcome.badShares)}; bad holders: ${list(outcome.badHolders)}${outcome.detail === '' ? '' : `; ${outcome.detail}`}`,
  ].join('\n');
}
