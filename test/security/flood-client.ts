/**
 * The flooding organization of flooding.test.ts, in a process of its own so that building and
 * sending the flood does not share a CPU thread with the nodes it attacks. It opens several
 * connections to one node with its (registered) connector key and keeps many `publish` requests in
 * flight on each: a third garbage bytes, a third well-formed requests with a bad signature, a third
 * valid signed publishes. It stops when its stdin closes (or after `maxMs`) and prints one JSON line.
 *
 * Usage: node --import tsx flood-client.ts '<json options>'
 */
import { randomBytes } from 'node:crypto';
import { connectFramed, RpcPeer } from '../../src/net/index.js';
import { encodePublish } from '../../src/contracts/transactions.js';
import { fromHex } from '../../src/codec/index.js';
import { SigningDomain, loadSigningKey } from '../../src/crypto/index.js';
import { isLedgerbusError } from '../../src/errors.js';
import { GROUP, clientRequest, metadataOf } from './support.js';

interface FloodOptions {
  readonly host: string;
  readonly port: number;
  readonly nodeKey: string;
  readonly keyFile: string;
  /** The network the flood signs for (genesis `network` of the node it floods). */
  readonly network: string;
  readonly sender: string;
  readonly connections: number;
  readonly inFlightPerConnection: number;
  readonly maxMs: number;
}

export interface FloodReport {
  readonly attempts: number;
  readonly durationMs: number;
  /** "kind:CODE" → count, kind one of garbage, badSignature, valid. */
  readonly codes: Record<string, number>;
  /** Latencies (ms) of requests the node admitted and refused for being invalid. */
  readonly invalidRejectionMs: number[];
}

const options = JSON.parse(process.argv[2] ?? '{}') as FloodOptions;
const key = loadSigningKey(options.keyFile);
const signer = SigningDomain.of(options.network).signer(key);
const kinds = ['garbage', 'badSignature', 'valid'] as const;

// Built before the flood starts, so the flood rate is not bounded by our own signing speed.
const garbage = Array.from({ length: 64 }, () => randomBytes(200));
const badSignature = Array.from({ length: 64 }, () => {
  const request = clientRequest(
    encodePublish(
      {
        sender: options.sender,
        nonce: randomBytes(16),
        timestamp: Date.now(),
        messages: [metadataOf(`bad-${randomBytes(6).toString('hex')}`)],
      },
      signer,
    ),
    signer,
  );
  const tampered = Uint8Array.from(request);
  tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 0x01;
  return tampered;
});
let validMade = 0;
function validRequest(): Uint8Array {
  validMade += 1;
  const id = `flood-${validMade}-${randomBytes(4).toString('hex')}`;
  return clientRequest(
    encodePublish(
      { sender: options.sender, nonce: randomBytes(16), timestamp: Date.now(), messages: [metadataOf(id)] },
      signer,
    ),
    signer,
  );
}

const peers: RpcPeer[] = [];
for (let index = 0; index < options.connections; index++) {
  const connection = await connectFramed({
    host: options.host,
    port: options.port,
    identity: key,
    expectedPublicKey: fromHex(options.nodeKey),
  });
  peers.push(new RpcPeer(connection, { requestTimeoutMs: 60_000, inFlightMax: 4096 }));
}

let stopping = false;
process.stdin.on('end', () => (stopping = true));
process.stdin.on('close', () => (stopping = true));
process.stdin.resume();
const hardStop = setTimeout(() => (stopping = true), options.maxMs);

let attempts = 0;
const codes: Record<string, number> = {};
const invalidRejectionMs: number[] = [];
const started = performance.now();

async function worker(peer: RpcPeer): Promise<void> {
  while (!stopping) {
    const kind = kinds[attempts % kinds.length] ?? 'garbage';
    attempts += 1;
    const request =
      kind === 'garbage'
        ? garbage[attempts % garbage.length]
        : kind === 'badSignature'
          ? badSignature[attempts % badSignature.length]
          : validRequest();
    const sent = performance.now();
    let code = 'OK';
    try {
      await peer.request('publish', { group: GROUP, request: request ?? new Uint8Array(0) });
    } catch (error) {
      code = isLedgerbusError(error) ? error.code : 'THROWN';
    }
    if (kind !== 'valid' && code !== 'RATE_LIMITED' && code !== 'OK')
      invalidRejectionMs.push(performance.now() - sent);
    codes[`${kind}:${code}`] = (codes[`${kind}:${code}`] ?? 0) + 1;
  }
}

await Promise.all(
  peers.flatMap((peer) => Array.from({ length: options.inFlightPerConnection }, () => worker(peer))),
);
clearTimeout(hardStop);
const report: FloodReport = { attempts, durationMs: performance.now() - started, codes, invalidRejectionMs };
process.stdout.write(`${JSON.stringify(report)}\n`);
for (const peer of peers) peer.close();
