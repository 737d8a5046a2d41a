/**
 * One partition of `npm run bench:scale`: a PBFT group of `PbftReplica` cores, each on its own
 * simulated machine (see scale-sim.ts), driven by the shared `applyReady` contract, with its own
 * closed-loop clients and real Ed25519. It also serves the global ledger's fetches of certified
 * blocks, from one of its replicas.
 */
import { encodeWith, t } from '../../src/codec/index.js';
import { encodeClientRequest } from '../../src/consensus/pbft/messages.js';
import { PbftReplica, defaultPbftTuning } from '../../src/consensus/pbft/replica.js';
import { applyPersistOp, applyReady, toTransferred } from '../../src/consensus/pbft/driver.js';
import type { ReplicaHost } from '../../src/consensus/pbft/driver.js';
import type {
  CertifiedBlock,
  PbftConfig,
  PbftCrypto,
  PbftInput,
  PersistRecord,
} from '../../src/consensus/pbft/types.js';
import { headerSchema } from '../../src/ledger/header.js';
import { blockHash } from '../../src/ledger/block.js';
import type { GroupMembership } from '../../src/ledger/block.js';
import { hexKey } from '../../src/consensus/pbft/quorum.js';
import { SimApplication } from '../../src/sim/app.js';
import type { SimKeyring, SimSigner } from '../../src/sim/sim-crypto.js';
import type { Machine, World } from './scale-sim.js';

/** The proposal timestamps are real-looking epoch milliseconds: virtual time 0 is this instant. */
const epochBaseMs = 1_700_000_000_000;
/** Bytes of one reply to a client (status, offset, replica signature). */
const replyBytesPerRequest = 128;
/** Framing of a fetch request or reply. */
const fetchOverheadBytes = 64;

/** A certified block as the global ledger carries it: header, 2f+1 signatures, the requests. */
export const ledgerBlockSchema = t.record({
  header: headerSchema,
  signatures: t.array(
    t.record({ signer: t.string({ minLength: 1, maxLength: 256 }), signature: t.bytes({ length: 64 }) }),
    { maxItems: 64 },
  ),
  requests: t.array(t.bytes({ maxLength: 1024 * 1024 }), { maxItems: 100_000 }),
});

export function encodeLedgerBlock(block: CertifiedBlock): Uint8Array {
  return encodeWith(ledgerBlockSchema, {
    header: block.header,
    signatures: block.signatures,
    requests: block.proposal.requests,
  });
}

export interface PartitionOptions {
  readonly index: number;
  readonly replicas: number;
  readonly batchRequestsMax: number;
  readonly clients: number;
  readonly tickMs: number;
  /** Replica the global ledger fetches blocks from. */
  readonly fetchReplica: number;
}

export function groupIdOf(index: number): string {
  return `scale/${index}`;
}

/**
 * Pre-signs `count` requests for partition `index` (before anything is timed): request j is client
 * (j mod clients)'s next one, so each client has one outstanding.
 */
export function presignRequests(
  keyring: SimKeyring,
  index: number,
  count: number,
  clients: number,
  payloadBytes: number,
): Uint8Array[] {
  const group = groupIdOf(index);
  const signers = Array.from({ length: clients }, (_, c) => keyring.identity(`scale/p${index}/client-${c}`));
  const requests: Uint8Array[] = [];
  for (let j = 0; j < count; j++) {
    const client = signers[j % clients]!;
    const operation = new Uint8Array(payloadBytes).fill(j & 0xff);
    requests.push(
      encodeClientRequest(
        { group, client: client.publicKey, seq: Math.floor(j / clients) + 1, operation },
        client.sign,
      ),
    );
  }
  return requests;
}

interface Replica {
  readonly index: number;
  readonly machine: Machine;
  readonly core: PbftReplica;
  readonly app: SimApplication;
  readonly plainCrypto: PbftCrypto;
  readonly persisted: Map<string, PersistRecord>;
  readonly ledger: CertifiedBlock[];
  readonly executedResults: Map<number, Uint8Array[]>;
  certifiedRequests: number;
  host?: ReplicaHost;
}

export class Partition {
  readonly groupId: string;
  readonly membership: GroupMembership;
  /** Virtual time at which each height (index height - 1) was first certified at some replica. */
  readonly certifiedAt: number[] = [];
  /** The same, at the replica the global ledger fetches from. */
  readonly certifiedAtFetchReplica: number[] = [];
  private readonly replicas: Replica[] = [];
  private readonly clientEndpoint: string;
  private nextRequest = 0;
  private ackedHeight = 0;
  acknowledged = 0;
  startedAt = 0;
  lastAckAt = 0;
  messages = 0;
  messageBytes = 0;
  readonly rejected = new Map<string, number>();

  constructor(
    private readonly world: World,
    keyring: SimKeyring,
    private readonly options: PartitionOptions,
    private readonly requests: readonly Uint8Array[],
  ) {
    this.groupId = groupIdOf(options.index);
    this.clientEndpoint = `p${options.index}/clients`;
    const signers: SimSigner[] = Array.from({ length: options.replicas }, (_, i) =>
      keyring.identity(`scale/p${options.index}/replica-${i}`),
    );
    const infos = signers.map((signer, i) => ({ id: `r${i}`, publicKey: signer.publicKey }));
    this.membership = {
      partitionId: this.groupId,
      configEpoch: 1,
      members: new Map(infos.map((info) => [info.id, info.publicKey])),
    };
    signers.forEach((signer, i) => {
      const config: PbftConfig = {
        ...defaultPbftTuning,
        groupId: this.groupId,
        configEpoch: 1,
        replicas: infos,
        self: i,
        batchRequestsMax: options.batchRequestsMax,
        pendingRequestsMax: Math.max(defaultPbftTuning.pendingRequestsMax, 2 * options.clients),
      };
      this.replicas.push({
        index: i,
        machine: world.machine(`p${options.index}/r${i}`),
        core: new PbftReplica(config, signer.crypto),
        app: new SimApplication(),
        plainCrypto: signer.crypto,
        persisted: new Map(),
        ledger: [],
        executedResults: new Map(),
        certifiedRequests: 0,
      });
    });
  }

  get totalRequests(): number {
    return this.requests.length;
  }

  /** Every replica has certified every request. */
  get done(): boolean {
    return this.replicas.every((replica) => replica.certifiedRequests === this.requests.length);
  }

  /** The partition's ledger (replica 0's; `checkAgreement` checks that the others hold the same). */
  get ledger(): readonly CertifiedBlock[] {
    return this.replicas[0]!.ledger;
  }

  get machines(): readonly Machine[] {
    return this.replicas.map((replica) => replica.machine);
  }

  /** Starts the replicas' ticks now and the clients at `clientsAt`. */
  start(clientsAt: number): void {
    for (const replica of this.replicas) {
      this.world.every(replica.machine, this.options.tickMs, this.world.events.now, (now) =>
        this.step(replica, { kind: 'tick', now: epochBaseMs + Math.floor(now) }),
      );
    }
    this.world.events.schedule(clientsAt, () => {
      this.startedAt = this.world.events.now;
      this.submit(Math.min(this.options.clients, this.requests.length));
    });
  }

  /**
   * A fetch of certified blocks from `fromHeight` (at most `maxBlocks`), sent by `requester` during its
   * work; the replica answers with the encoded blocks, which `onBlocks` handles on the requester.
   */
  fetch(
    requester: Machine,
    fromHeight: number,
    maxBlocks: number,
    onBlocks: (blocks: readonly Uint8Array[], now: number) => void,
  ): void {
    const replica = this.replicas[this.options.fetchReplica]!;
    // Served from the block store ahead of queued consensus input (its CPU cost is still charged).
    requester.sendTo(
      replica.machine,
      fetchOverheadBytes,
      () => {
        const blocks = replica.ledger
          .slice(fromHeight - 1, fromHeight - 1 + maxBlocks)
          .map(encodeLedgerBlock);
        const size = blocks.reduce((sum, bytes) => sum + bytes.length, fetchOverheadBytes);
        replica.machine.sendTo(requester, size, (now) => onBlocks(blocks, now));
      },
      true,
    );
  }

  /** Every replica holds the same chain and executed every request exactly once. */
  checkAgreement(): void {
    const reference = this.replicas[0]!;
    for (const replica of this.replicas) {
      if (replica.ledger.length !== reference.ledger.length) {
        throw new Error(
          `${this.groupId}: r${replica.index} has ${replica.ledger.length} blocks, r0 has more`,
        );
      }
      replica.ledger.forEach((block, i) => {
        const expected = reference.ledger[i]!;
        if (hexKey(blockHash(block.header)) !== hexKey(blockHash(expected.header))) {
          throw new Error(`${this.groupId}: r${replica.index} disagrees with r0 at height ${i + 1}`);
        }
      });
      if (replica.app.offsets !== this.requests.length) {
        throw new Error(
          `${this.groupId}: r${replica.index} executed ${replica.app.offsets} requests, not ${this.requests.length}`,
        );
      }
    }
  }

  describe(): string {
    return this.replicas
      .map(
        (r) =>
          `r${r.index}:v${r.core.view}/e${r.core.lastExecuted}/c${r.core.lastCertified}/p${r.core.pendingRequests}/q${r.machine.backlog}`,
      )
      .join(' ');
  }

  /** Closed loop: the clients send the next `count` pre-signed requests, each to every replica. */
  private submit(count: number): void {
    const at = this.world.events.now;
    for (let i = 0; i < count && this.nextRequest < this.requests.length; i++) {
      const bytes = this.requests[this.nextRequest++]!;
      for (const replica of this.replicas) {
        this.world.network.transmit(this.clientEndpoint, replica.machine.id, bytes.length, at, () =>
          replica.machine.deliver(() => this.step(replica, { kind: 'request', bytes })),
        );
      }
    }
  }

  private step(replica: Replica, input: PbftInput): void {
    const host = this.hostOf(replica);
    applyReady(host, host.step(input));
  }

  private hostOf(replica: Replica): ReplicaHost {
    if (replica.host !== undefined) return replica.host;
    const send = (to: number, bytes: Uint8Array): void => {
      const peer = this.replicas[to]!;
      this.messages += 1;
      this.messageBytes += bytes.length;
      replica.machine.sendTo(peer.machine, bytes.length, () => this.step(peer, { kind: 'message', bytes }));
    };
    replica.host = {
      step: (input) => replica.core.step(input),
      persist: (op) => applyPersistOp(replica.persisted, op),
      storeCertified: (block) => this.storeCertified(replica, block),
      send: (to, bytes) => {
        if (to !== 'all') return send(to, bytes);
        for (let peer = 0; peer < this.replicas.length; peer++) if (peer !== replica.index) send(peer, bytes);
      },
      readBlocks: (fromSeq, count) =>
        replica.ledger.slice(fromSeq - 1, fromSeq - 1 + count).map(toTransferred),
      encodeBlocks: (blocks) => replica.core.encodeBlocks(blocks),
      alreadyCommitted: () => undefined,
      rejected: (code) => this.rejected.set(code, (this.rejected.get(code) ?? 0) + 1),
      execute: (batch) => {
        const results = replica.app.execute(batch.proposal);
        replica.executedResults.set(batch.seq, results);
        return replica.plainCrypto.merkleRoot(results);
      },
    };
    return replica.host;
  }

  private storeCertified(replica: Replica, block: CertifiedBlock): void {
    const height = block.header.height;
    if (height !== replica.ledger.length + 1) {
      throw new Error(
        `${this.groupId}/r${replica.index}: block ${height} does not follow ${replica.ledger.length}`,
      );
    }
    if (!replica.executedResults.delete(height)) {
      throw new Error(`${this.groupId}/r${replica.index}: certified block ${height} it did not execute`);
    }
    replica.ledger.push(block);
    replica.certifiedRequests += block.proposal.requests.length;
    if (replica.index === this.options.fetchReplica) {
      replica.machine.afterWork((finish) => (this.certifiedAtFetchReplica[height - 1] = finish));
    }
    if (height <= this.ackedHeight) return;
    // The first replica to certify a block answers its clients, who each send their next request.
    this.ackedHeight = height;
    const count = block.proposal.requests.length;
    replica.machine.afterWork((finish) => {
      this.certifiedAt[height - 1] = finish;
      this.acknowledged += count;
      this.lastAckAt = finish;
    });
    replica.machine.sendToEndpoint(this.clientEndpoint, replyBytesPerRequest * count, () =>
      this.submit(count),
    );
  }
}
