/**
 * A 4-organization network in the test process for the security suites, every hop over real TLS
 * sockets (as test/transfer.test.ts builds it), plus what an attacker needs: signed requests under
 * any key, and a raw TLS client that completes the pinned-key handshake as a registered (or
 * unregistered) key and then writes whatever bytes it likes.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import type { Readable } from 'node:stream';
import { connect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { ensureDevnetLayout } from '../../src/cli/devnet-layout.js';
import type { DevnetLayout } from '../../src/cli/devnet-layout.js';
import type { CborValue } from '../../src/codec/index.js';
import { loadConnectorConfig } from '../../src/connector/config.js';
import { Connector } from '../../src/connector/connector.js';
import type { ConnectorOptions } from '../../src/connector/connector.js';
import { startHttpApi } from '../../src/connector/http-api.js';
import type { HttpApiOptions, HttpApiServer } from '../../src/connector/http-api.js';
import { openStorage } from '../../src/connector/storage/index.js';
import { encodeClientRequest } from '../../src/consensus/pbft/messages.js';
import { decodeTransactionResult } from '../../src/contracts/results.js';
import type { TransactionResult } from '../../src/contracts/results.js';
import { decodeFetchRequest } from '../../src/contracts/fetch.js';
import { encodePublish } from '../../src/contracts/transactions.js';
import type { MessageMetadata } from '../../src/contracts/transactions.js';
import { encodeEnvelopeHeader, encryptPayload, loadEncryptionKey } from '../../src/crypto/envelope/index.js';
import type { EnvelopeHeader } from '../../src/crypto/envelope/index.js';
import { SigningDomain, loadSigningKey } from '../../src/crypto/index.js';
import type { Signer, SigningKeyPair } from '../../src/crypto/index.js';
import { isLedgerbusError } from '../../src/errors.js';
import { RpcPeer, connectFramed, rpcStream, tlsIdentityFor } from '../../src/net/index.js';
import { loadGenesisRegistry, loadNodeConfig } from '../../src/node/config.js';
import { createLogger } from '../../src/runtime/logger.js';
import type { Logger } from '../../src/runtime/logger.js';
import { LedgerbusNode } from '../../src/node/node.js';
import type { RateLimitConfig } from '../../src/node/rate-limit.js';
import { blockEvidenceSchema } from '../../src/proofs/index.js';
import type { NodeInfo } from '../../src/registry/types.js';
import { liveRegistryFromGenesis } from '../../src/registry/live-registry.js';
import { waitFor as poll } from '../support/processes.js';

export const GROUP = 'demo/0';

export interface NetworkOptions {
  /** Node ports are basePort+1..4, connector API ports basePort+101..104 (devnet layout). */
  readonly basePort: number;
  readonly name: string;
  /** Quota per node id; nodes not named run with the default. */
  readonly rateLimits?: Readonly<Record<string, RateLimitConfig>>;
  readonly messageBytesMax?: number;
  /** Another network whose organizations' keys this one reuses (it still gets its own network id). */
  readonly keysFrom?: SecurityNetwork;
  /** Connector `producer` settings per organization (how concurrent sends share batches). */
  readonly producers?: Readonly<Record<string, ConnectorOptions['producer']>>;
}

export class SecurityNetwork {
  readonly directory: string;
  readonly layout: DevnetLayout;
  readonly nodes: LedgerbusNode[] = [];
  readonly connectors = new Map<string, Connector>();
  /** Warnings the nodes logged (refusals must be logged), one JSON line each. */
  readonly warnings: string[] = [];
  private readonly apis: HttpApiServer[] = [];

  constructor(readonly options: NetworkOptions) {
    this.directory = mkdtempSync(join(tmpdir(), `ledgerbus-security-${options.name}-`));
    this.layout = ensureDevnetLayout({
      directory: this.directory,
      basePort: options.basePort,
      messageBytesMax: options.messageBytesMax ?? 1024 * 1024,
      ...(options.keysFrom === undefined ? {} : { keysFrom: options.keysFrom.directory }),
    });
  }

  async startNodes(): Promise<void> {
    for (let index = 0; index < 4; index++) {
      const config = loadNodeConfig(this.layout.nodeConfigs[index] as string);
      const rateLimit = this.options.rateLimits?.[config.nodeId];
      const node = new LedgerbusNode({
        nodeId: config.nodeId,
        key: loadSigningKey(config.keyFile),
        registry: loadGenesisRegistry(config.genesis),
        dataDirectory: config.dataDirectory,
        logger: this.capturingLogger(config.nodeId),
        ...(rateLimit === undefined ? {} : { rateLimit }),
      });
      await node.start();
      this.nodes.push(node);
    }
  }

  /** Starts organization `orgN`'s connector on its own node, filesystem storage. */
  async startConnector(organization: string): Promise<Connector> {
    const config = loadConnectorConfig(this.connectorConfigPath(organization));
    const connector = new Connector({
      organization: config.organization,
      signingKey: loadSigningKey(config.keyFile),
      encryptionKey: loadEncryptionKey(config.encryptionKeyFile),
      registry: liveRegistryFromGenesis(loadGenesisRegistry(config.genesis).genesis),
      storage: await openStorage(config.storage),
      dataDirectory: config.dataDirectory,
      logger: createLogger({ name: config.organization, level: 'error' }),
      fetchAttemptsMax: 2,
      ...(this.options.producers?.[organization] === undefined
        ? {}
        : { producer: this.options.producers[organization] }),
    });
    connector.start();
    this.connectors.set(organization, connector);
    return connector;
  }

  connector(organization: string): Connector {
    const connector = this.connectors.get(organization);
    if (connector === undefined) throw new Error(`${organization}'s connector is not running`);
    return connector;
  }

  /**
   * Serves `orgN`'s connector on its REST API at the devnet port (basePort + 100 + N) with the
   * devnet's token, as an application of that organization would reach it.
   */
  async startApi(
    organization: string,
    options: Partial<Omit<HttpApiOptions, 'api' | 'host' | 'port' | 'token'>> = {},
  ): Promise<ApiClient> {
    const config = loadConnectorConfig(this.connectorConfigPath(organization));
    const port = Number(config.api.listen.slice(config.api.listen.lastIndexOf(':') + 1));
    const server = await startHttpApi({
      api: this.connector(organization),
      host: '127.0.0.1',
      port,
      token: config.api.token,
      closeGraceMs: 500,
      ...options,
    });
    this.apis.push(server);
    return new ApiClient(server.url, config.api.token);
  }

  /**
   * How many payloads `orgN`'s connector keeps: files in its payload storage (objects and puts in
   * progress) and small payloads packed in its database.
   */
  storedPayloads(organization: string): number {
    const { dataDirectory } = loadConnectorConfig(this.connectorConfigPath(organization));
    const db = new Database(join(dataDirectory, 'connector.sqlite'), { readonly: true });
    try {
      const { packed } = db
        .prepare<[], { packed: number }>('SELECT COUNT(*) AS packed FROM packed_payloads')
        .get()!;
      return this.storageFiles(organization).length + packed;
    } finally {
      db.close();
    }
  }

  /** Every file under `orgN`'s payload storage directory (stored objects and puts in progress), with sizes. */
  storageFiles(organization: string): { path: string; bytes: number }[] {
    const storage = loadConnectorConfig(this.connectorConfigPath(organization)).storage;
    if (storage.kind !== 'filesystem') throw new Error(`${organization} does not store payloads in files`);
    const files: { path: string; bytes: number }[] = [];
    const walk = (directory: string): void => {
      for (const entry of readdirSync(directory, { withFileTypes: true })) {
        const path = join(directory, entry.name);
        if (entry.isDirectory()) walk(path);
        else files.push({ path, bytes: statSync(path).size });
      }
    };
    walk(storage.directory);
    return files;
  }

  async stop(): Promise<void> {
    for (const api of this.apis) await api.close();
    for (const connector of this.connectors.values()) await connector.stop();
    for (const node of this.nodes) await node.stop();
    rmSync(this.directory, { recursive: true, force: true });
  }

  node(nodeId: string): NodeInfo {
    const node = loadGenesisRegistry(join(this.directory, 'genesis.json')).node(nodeId);
    if (node === undefined) throw new Error(`no ${nodeId} in genesis`);
    return node;
  }

  nodePorts(): number[] {
    return [1, 2, 3, 4].map((index) => this.options.basePort + index);
  }

  /** The registered connector signing key of `orgN`. */
  connectorKey(organization: string): SigningKeyPair {
    return loadSigningKey(loadConnectorConfig(this.connectorConfigPath(organization)).keyFile);
  }

  /** This network's signing domain (genesis `network`). */
  get signing(): SigningDomain {
    return SigningDomain.of(this.layout.network.genesis.network);
  }

  /** `orgN`'s connector key bound to this network: what its connector signs with. */
  signer(organization: string): Signer {
    return this.signing.signer(this.connectorKey(organization));
  }

  /** An RPC session with `nodeId` authenticated as `key` (a connector's, a node's, or anyone's). */
  async dial(nodeId: string, key: SigningKeyPair, timeoutMs = 5_000): Promise<RpcPeer> {
    const node = this.node(nodeId);
    const connection = await connectFramed({
      host: node.host,
      port: node.port,
      identity: key,
      expectedPublicKey: node.publicKey,
      timeoutMs,
    });
    return new RpcPeer(connection, { requestTimeoutMs: 30_000 });
  }

  /** Node `nodeId`'s committed next offset of the demo partition (its `status` answer). */
  async nextOffset(peer: RpcPeer): Promise<number> {
    const status = (await peer.request('status', {})) as {
      partitions: { group: string; nextOffset: number }[];
    };
    const partition = status.partitions.find((entry) => entry.group === GROUP);
    if (partition === undefined) throw new Error(`no ${GROUP} in status`);
    return partition.nextOffset;
  }

  /** node1's committed next offset of the demo partition, asked over a link of its own. */
  async demoNextOffset(): Promise<number> {
    const peer = await this.dial('node1', this.connectorKey('org4'));
    try {
      return await this.nextOffset(peer);
    } finally {
      peer.close();
    }
  }

  private connectorConfigPath(organization: string): string {
    return this.layout.connectorConfigs[Number(organization.replace('org', '')) - 1] as string;
  }

  private capturingLogger(name: string): Logger {
    const logger = createLogger({ name, level: 'warn' });
    const hooked = logger.child({});
    hooked.warn = ((object: Record<string, unknown>, message?: string) => {
      this.warnings.push(JSON.stringify({ node: name, ...object, msg: message }));
    }) as typeof hooked.warn;
    return hooked;
  }
}

export function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  return poll(what, probe, timeoutMs, 100);
}

/** The stable code a promise fails with, or OK. */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'OK';
  } catch (error) {
    if (isLedgerbusError(error)) return error.code;
    throw error;
  }
}

/** Metadata of one message as a connector would publish it (the payload itself is irrelevant here). */
export function metadataOf(id: string, overrides: Partial<MessageMetadata> = {}): MessageMetadata {
  return {
    id,
    topic: 'demo',
    partition: 0,
    key: null,
    recipients: ['org2'],
    size: 10,
    contentRoot: new Uint8Array(32),
    contentType: 'text/plain',
    headers: {},
    ...overrides,
  };
}

let sequence = Date.now() * 1000;

/**
 * A signed client request (the bytes a connector sends to `publish`) wrapping an SDT operation,
 * signed by `signer` (any key may order; its network decides where the request verifies).
 */
export function clientRequest(operation: Uint8Array, signer: Signer, seq = ++sequence): Uint8Array {
  return encodeClientRequest({ group: GROUP, client: signer.publicKey, seq, operation }, signer.sign);
}

/** Publishes raw request bytes and decodes the contract's result from the acknowledgement's evidence. */
export async function publishRaw(
  peer: RpcPeer,
  request: Uint8Array,
): Promise<{ height: number; transactionIndex: number; result: TransactionResult }> {
  const answer = (await peer.request('publish', { group: GROUP, request })) as Record<string, CborValue>;
  const evidence = blockEvidenceSchema.parse(answer['evidence'], 'evidence');
  return {
    height: Number(answer['height']),
    transactionIndex: Number(answer['transactionIndex']),
    result: decodeTransactionResult(evidence.result),
  };
}

export const randomId = (prefix: string): string => `${prefix}-${randomBytes(6).toString('hex')}`;

/** A TLS 1.3 socket to `node` presenting `key`'s certificate, with nothing done past the handshake. */
export async function tlsSocket(
  node: NodeInfo,
  key: SigningKeyPair,
): Promise<{ socket: TLSSocket; closed: Promise<void> }> {
  const identity = await tlsIdentityFor(key, 'attacker');
  const socket = connect({
    host: node.host,
    port: node.port,
    key: identity.keyPem,
    cert: identity.certPem,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    rejectUnauthorized: false,
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, closed };
}

/**
 * A TLS 1.3 connection to a node presenting `key`'s certificate, past the node's link status byte
 * (accepted), as raw bytes: the attacker's view, free to send anything after the handshake.
 */
export async function rawLink(
  node: NodeInfo,
  key: SigningKeyPair,
): Promise<{ socket: TLSSocket; closed: Promise<void> }> {
  const { socket, closed } = await tlsSocket(node, key);
  const status = await new Promise<Buffer>((resolve, reject) => {
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 5) {
        socket.off('data', onData);
        resolve(received);
      }
    };
    socket.on('data', onData);
    void closed.then(() => reject(new Error('closed before the link status')));
  });
  // Frame of length 1 holding 0x01: the node accepted our key.
  if (!status.subarray(0, 5).equals(Buffer.from([0, 0, 0, 1, 1]))) {
    throw new Error(`link refused: ${status.toString('hex')}`);
  }
  return { socket, closed };
}

/** A frame: 4-byte big-endian length, then the payload (src/net/frames.ts). */
export function frame(payload: Uint8Array): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(payload.length, 0);
  return Buffer.concat([header, payload]);
}

/** Resolves true if `closed` settles within `ms`. */
export async function closesWithin(closed: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const result = await Promise.race([closed.then(() => true), timeout]);
  clearTimeout(timer);
  return result;
}

/** An application's HTTP view of one connector API: bearer token, JSON or raw bytes back. */
export class ApiClient {
  constructor(
    readonly url: string,
    readonly token: string,
  ) {}

  async call(
    method: string,
    path: string,
    options: { json?: unknown; body?: Uint8Array | string; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; headers: Headers; body: Buffer; json: () => unknown }> {
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(options.json === undefined ? {} : { 'content-type': 'application/json' }),
        ...options.headers,
      },
      ...(options.json !== undefined
        ? { body: JSON.stringify(options.json) }
        : options.body !== undefined
          ? { body: options.body }
          : {}),
    });
    const body = Buffer.from(await response.arrayBuffer());
    return {
      status: response.status,
      headers: response.headers,
      body,
      json: () => JSON.parse(body.toString('utf8')) as unknown,
    };
  }

  /** The JSON answer of a call that must succeed. */
  async json<T>(
    method: string,
    path: string,
    options: { json?: unknown; body?: Uint8Array | string } = {},
  ): Promise<T> {
    const answer = await this.call(method, path, options);
    if (answer.status !== 200)
      throw new Error(`${method} ${path}: HTTP ${answer.status} ${answer.body.toString()}`);
    return answer.json() as T;
  }
}

/** A payload sealed with the real envelope code, its ciphertext kept in a file to be served (or not). */
export interface SealedPayload {
  readonly header: EnvelopeHeader;
  readonly file: string;
  readonly ciphertextBytes: number;
}

/**
 * A member organization gone rogue: it holds its registered connector key and plays its connector's
 * part by hand. It publishes whatever metadata it likes (signed, so the contract accepts what its
 * rules allow) and answers the node's `servePayload` requests itself, with whatever bytes it likes.
 * `served` counts the bytes each payload's recipients actually pulled from it.
 */
export class HostileSender {
  readonly served = new Map<string, number>();
  private readonly payloads = new Map<string, { header: Uint8Array; body: () => Readable }>();
  private readonly directory = mkdtempSync(join(tmpdir(), 'ledgerbus-hostile-'));

  private constructor(
    readonly organization: string,
    private readonly net: SecurityNetwork,
    private readonly control: RpcPeer,
    private readonly serving: RpcPeer,
  ) {}

  /** Connects as `organization`'s connector to `nodeId` and offers to serve its payloads there. */
  static async connect(net: SecurityNetwork, organization: string, nodeId: string): Promise<HostileSender> {
    const key = net.connectorKey(organization);
    const control = await net.dial(nodeId, key);
    const serving = await net.dial(nodeId, key);
    const hostile = new HostileSender(organization, net, control, serving);
    serving.handle('servePayload', (body) => hostile.serve(body));
    await serving.request('serve', {});
    return hostile;
  }

  /** Encrypts `plaintext` for `recipients` exactly as a connector would, into a file. */
  async seal(options: {
    id: string;
    plaintext: Readable;
    recipients: readonly string[];
    contentType?: string;
  }): Promise<SealedPayload> {
    const registry = loadGenesisRegistry(join(this.net.directory, 'genesis.json'));
    const file = join(this.directory, `${options.id}.bin`);
    const { header, ciphertextBytes } = await encryptPayload({
      source: options.plaintext,
      sink: createWriteStream(file),
      signer: this.net.signer(this.organization),
      senderOrgId: this.organization,
      recipients: options.recipients.map((orgId) => {
        const publicKey = registry.encryptionKey(orgId);
        if (publicKey === undefined) throw new Error(`no encryption key for ${orgId}`);
        return { orgId, publicKey };
      }),
      payloadId: options.id,
      contentType: options.contentType ?? 'application/octet-stream',
    });
    return { header, file, ciphertextBytes };
  }

  /** What to answer when a recipient asks for `id`: `header`, then the bytes of `body()`. */
  offer(id: string, header: EnvelopeHeader, body: () => Readable): void {
    this.payloads.set(id, { header: encodeEnvelopeHeader(header), body });
  }

  /** Offers the sealed file as it is. */
  offerSealed(id: string, sealed: SealedPayload): void {
    this.offer(id, sealed.header, () => createReadStream(sealed.file));
  }

  /** Signs and publishes one message's metadata on demo/0; resolves with the contract's result. */
  async publish(metadata: MessageMetadata): Promise<TransactionResult> {
    const signer = this.net.signer(this.organization);
    const operation = encodePublish(
      { sender: this.organization, nonce: randomBytes(16), timestamp: Date.now(), messages: [metadata] },
      signer,
    );
    return (await publishRaw(this.control, clientRequest(operation, signer))).result;
  }

  close(): void {
    this.control.close();
    this.serving.close();
    rmSync(this.directory, { recursive: true, force: true });
  }

  private serve(body: CborValue): ReturnType<typeof rpcStream> {
    const request = decodeFetchRequest((body as Record<string, CborValue>)['fetchRequest'] as Uint8Array);
    const payload = this.payloads.get(request.id);
    if (payload === undefined) throw new Error(`nothing to serve for ${request.id}`);
    const counted = new Transform({
      transform: (chunk: Buffer, _encoding, callback) => {
        this.served.set(request.id, (this.served.get(request.id) ?? 0) + chunk.length);
        callback(null, chunk);
      },
    });
    const source = payload.body();
    source.on('error', (error) => counted.destroy(error));
    counted.once('close', () => source.destroy());
    return rpcStream(source.pipe(counted), { header: payload.header });
  }
}
