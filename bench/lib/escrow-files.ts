/**
 * Large files through a real devnet: one file org1 → org2 on a standard topic (the plain transfer),
 * and the same size on escrow topics with different chunk sizes, each then audited by the dev
 * network's auditor (org4) with org3's approval, and rebuilt from the holders' chunks and the
 * released key shares.
 *
 * Every file is a different window of the deterministic bench payload (lib/payload.ts), so no
 * storage can skip work by recognizing bytes it already holds; its sha256 is taken while it is
 * uploaded, and the receiver's and the auditor's sha256 must equal it.
 */
import { createHash, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Transform } from 'node:stream';
import type { Readable } from 'node:stream';
import { latestSequence, postStreamed, waitForReceived } from './connector-http.js';
import type { ConnectorTarget } from './connector-http.js';
import {
  approveAudit,
  auditStatus,
  fetchAudited,
  listAudits,
  placementTiming,
  pollFor,
  requestAudit,
  retrying,
} from './escrow-api.js';
import type { PlacementTiming } from './escrow-api.js';
import { payloadStream } from './payload.js';

export interface FileParties {
  readonly sender: ConnectorTarget;
  readonly recipient: ConnectorTarget;
  readonly recipientId: string;
  readonly auditor: ConnectorTarget;
  readonly approver: ConnectorTarget;
  readonly senderLog: string;
  readonly check: () => void;
  readonly timeoutMs: number;
}

/** A window of the bench payload and, once it has been read to the end, its sha256. */
function hashedPayload(start: number, bytes: number): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  let digest: string | undefined;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      digest = hash.digest('hex');
      done();
    },
  });
  return {
    stream: payloadStream(start, start + bytes).pipe(tap),
    sha256: () => {
      if (digest === undefined) throw new Error('the payload was not read to its end');
      return digest;
    },
  };
}

interface Delivered {
  readonly id: string;
  readonly sha256: string;
  /** From the start of the POST to its answer. */
  readonly answerSeconds: number;
  /** From the start of the POST to org2 listing the message as received (verified, decrypted, stored). */
  readonly receivedSeconds: number;
}

async function deliver(
  parties: FileParties,
  topic: string,
  start: number,
  bytes: number,
): Promise<Delivered> {
  const after = await latestSequence(parties.recipient);
  const id = `${topic}-${randomUUID()}`;
  const payload = hashedPayload(start, bytes);
  let sendFailure: Error | undefined;
  const t0 = performance.now();
  const sending = postStreamed(parties.sender, {
    topic,
    to: parties.recipientId,
    id,
    source: payload.stream,
    bytes,
  });
  sending.catch((error: Error) => {
    sendFailure = error;
  });
  const [sent, received] = await Promise.all([
    sending,
    waitForReceived(parties.recipient, {
      topic,
      id,
      after,
      timeoutMs: parties.timeoutMs,
      check: () => {
        parties.check();
        if (sendFailure !== undefined) throw sendFailure;
      },
    }),
  ]);
  const sha256 = payload.sha256();
  if (received.message.sha256 !== sha256) {
    throw new Error(
      `${id}: ${parties.recipientId} stored sha256 ${received.message.sha256}, the file has ${sha256}`,
    );
  }
  return {
    id,
    sha256,
    answerSeconds: (sent.acknowledgedAt - t0) / 1000,
    receivedSeconds: (received.at - t0) / 1000,
  };
}

export interface PlainRun {
  readonly bytes: number;
  readonly topic: string;
  readonly answerSeconds: number;
  readonly receivedSeconds: number;
}

/** The plain transfer: `bytes` org1 → org2 on a standard topic, timed until org2 lists it. */
export async function measurePlain(
  parties: FileParties,
  options: { readonly topic: string; readonly start: number; readonly bytes: number },
): Promise<PlainRun> {
  const delivered = await deliver(parties, options.topic, options.start, options.bytes);
  return {
    bytes: options.bytes,
    topic: options.topic,
    answerSeconds: delivered.answerSeconds,
    receivedSeconds: delivered.receivedSeconds,
  };
}

export interface EscrowFileRun extends PlacementTiming {
  readonly bytes: number;
  readonly topic: string;
  readonly chunkBytes: number;
  /** Chunks asked for (--chunks); `chunks` is what the placer cut. */
  readonly chunksWanted: number;
  readonly answerSeconds: number;
  readonly receivedSeconds: number;
  /** From the send's answer to the message's escrow status VERIFIED (every share holder attested). */
  readonly attestSeconds: number;
  /** From the audit request to `threshold` share releases seen by the auditor. */
  readonly releaseSeconds: number;
  /** The auditor's own figure: first chunk request to verified plaintext stored. */
  readonly regenerationMs: number;
  /** Wall time of the fetch call (shares verified, key rebuilt, chunks fetched, file rebuilt). */
  readonly fetchSeconds: number;
  readonly sha256Matches: boolean;
  readonly badShares: readonly string[];
  readonly badHolders: readonly string[];
}

/**
 * Sends `bytes` on escrow topic `topic`, waits until org2 received it and every share holder
 * attested, then has the auditor request an audit, the approver approve it, waits for the
 * releases, and fetches. Throws if the rebuilt file's sha256 is not the sent one's.
 */
export async function measureEscrowFile(
  parties: FileParties,
  options: {
    readonly topic: string;
    readonly start: number;
    readonly bytes: number;
    readonly chunkBytes: number;
    readonly chunksWanted: number;
    readonly threshold: number;
  },
): Promise<EscrowFileRun> {
  const delivered = await deliver(parties, options.topic, options.start, options.bytes);
  const timing = await placementTiming(parties.senderLog, delivered.id);
  const attestStarted = performance.now();
  const status = await pollFor(
    `the holders to attest ${delivered.id}`,
    parties.timeoutMs,
    async () => {
      const current = await auditStatus(parties.auditor, delivered.id);
      return current !== undefined && current.status !== 'PENDING' ? current : undefined;
    },
    200,
    parties.check,
  );
  if (status.status !== 'VERIFIED')
    throw new Error(`${delivered.id}: escrow status ${status.status}, not VERIFIED`);
  const attestSeconds = (performance.now() - attestStarted) / 1000;
  const releaseStarted = performance.now();
  const { requestId } = await requestAudit(parties.auditor, delivered.id, 'bench:escrow regeneration');
  // The request must have reached the approver's view of the escrow log before it can approve.
  await retrying(`approving audit ${requestId}`, 60_000, () => approveAudit(parties.approver, requestId));
  await pollFor(
    `${options.threshold} share releases for audit ${requestId}`,
    parties.timeoutMs,
    async () => {
      const audit = (await listAudits(parties.auditor)).find((entry) => entry.requestId === requestId);
      return audit !== undefined && audit.releases.length >= options.threshold ? audit : undefined;
    },
    100,
    parties.check,
  );
  const releaseSeconds = (performance.now() - releaseStarted) / 1000;
  const fetchStarted = performance.now();
  const fetched = await fetchAudited(parties.auditor, delivered.id, requestId);
  const fetchSeconds = (performance.now() - fetchStarted) / 1000;
  const sha256Matches = fetched.sha256 === delivered.sha256 && fetched.size === options.bytes;
  if (!sha256Matches) {
    throw new Error(
      `${delivered.id}: the auditor rebuilt ${fetched.size} bytes with sha256 ${fetched.sha256}; the file has ${options.bytes} bytes and ${delivered.sha256}`,
    );
  }
  return {
    bytes: options.bytes,
    topic: options.topic,
    chunkBytes: options.chunkBytes,
    chunksWanted: options.chunksWanted,
    ...timing,
    answerSeconds: delivered.answerSeconds,
    receivedSeconds: delivered.receivedSeconds,
    attestSeconds,
    releaseSeconds,
    regenerationMs: fetched.regenerationMs,
    fetchSeconds,
    sha256Matches,
    badShares: fetched.badShares,
    badHolders: fetched.badHolders,
  };
}

/**
 * The chunk size that cuts a file of `bytes` into `chunks` chunks: the escrowed blob is the
 * envelope header (a few hundred bytes plus 32 per MiB) and the ciphertext (16 bytes of tag per
 * MiB more than the file), so that overhead is added before dividing; at least 4 KiB, the
 * contract's smallest chunk.
 */
export function chunkBytesFor(bytes: number, chunks: number): number {
  const mebibytes = Math.ceil(bytes / 2 ** 20);
  const overhead = 4096 + 48 * mebibytes;
  return Math.max(4096, Math.ceil((bytes + overhead) / chunks));
}
