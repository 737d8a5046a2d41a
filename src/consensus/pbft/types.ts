/**
 * Shapes shared by the PBFT core and its drivers (the node runtime and the simulator).
 *
 * The core is a pure state machine in the style of etcd-io/raft: a driver feeds it inputs with
 * `step()` and gets back a `PbftReady` saying what to persist, store, send and execute. The core never
 * touches a clock, a socket, a disk or a random source; everything of that kind is injected or passed in.
 */
import type { ErrorCode } from '../../errors.js';
import type { BlockHeader, CertificateSignature } from '../../ledger/header.js';

/** A replica of the group, as listed in the group's configuration for one epoch. */
export interface ReplicaInfo {
  readonly id: string;
  readonly publicKey: Uint8Array;
}

export interface PbftConfig {
  /** Consensus group id, e.g. "demo/0". Every message names it; others are rejected. */
  readonly groupId: string;
  readonly configEpoch: number;
  /** The ordered replica set: index i is replica i; the primary of view v is v mod n. */
  readonly replicas: readonly ReplicaInfo[];
  /** Index of this replica in `replicas`. */
  readonly self: number;
  /** K in Castro & Liskov §4.3: a checkpoint is taken every K sequence numbers. */
  readonly checkpointInterval: number;
  /** L in §4.3: sequence numbers accepted are in (low, low + L]. A multiple of K. */
  readonly watermarkWindow: number;
  readonly batchRequestsMax: number;
  readonly batchBytesMax: number;
  /** A partial batch is proposed once its oldest request has waited this long. */
  readonly batchTicksMax: number;
  /** A backup starts a view change when a request it knows of is not executed within this. */
  readonly requestTimeoutTicks: number;
  /** How long to wait for a new view before moving on to the next; doubles on each try (§4.5.2). */
  readonly viewChangeTimeoutTicks: number;
  /** How often a replica broadcasts its status, which drives retransmission and state transfer. */
  readonly statusIntervalTicks: number;
  /** Client requests waiting to be proposed; more are refused. */
  readonly pendingRequestsMax: number;
  readonly requestBytesMax: number;
  /** How far ahead of the local clock a proposal's timestamp may be. */
  readonly clockSkewMaxMs: number;
  /** Blocks sent in one state-transfer reply. */
  readonly fetchBlocksMax: number;
  /**
   * A backup refuses a fresh proposal naming a registry index more than this far behind the one it
   * has applied itself, so a faulty primary cannot execute batches against a stale registry (say,
   * from before an organization was suspended). Default 64.
   */
  readonly registryLagMax?: number;
  /**
   * The block this epoch of the group continues from: the previous epoch's closing block, certified
   * by the previous replica set (the driver verified it against that set). It is this epoch's first
   * stable checkpoint, taken on trust from the configuration rather than re-verified with this
   * epoch's keys, which never signed it.
   */
  readonly base?: CertifiedHeader;
}

/**
 * Signing and hashing, injected so the core stays pure and the simulator can run fast. `sign` and
 * `verify` are bound to one network (the node's `SigningDomain`; the simulator's fixed one): block
 * votes made here form certificates that `verifyBlock` checks with the group's membership, in the
 * same network, and nothing signed in another network verifies.
 */
export interface PbftCrypto {
  /** Signs with this replica's key over the domain-separated payload, in this network's domain. */
  sign(type: string, payload: Uint8Array): Uint8Array;
  /** True if `signature` is `publicKey`'s over the payload in this network's domain. */
  verify(publicKey: Uint8Array, type: string, payload: Uint8Array, signature: Uint8Array): boolean;
  /** Domain-separated SHA-256. */
  hash(type: string, payload: Uint8Array): Uint8Array;
  /** RFC 9162 Merkle root over the leaves. */
  merkleRoot(leaves: readonly Uint8Array[]): Uint8Array;
}

/** What the primary proposes for one sequence number. Its digest is what replicas agree on. */
export interface Proposal {
  /** The view in which the batch was first proposed; kept when re-proposed after a view change. */
  readonly view: number;
  readonly proposer: string;
  readonly timestamp: number;
  /** Encoded, client-signed requests, in order. These are the block's transactions. */
  readonly requests: readonly Uint8Array[];
  /** Registry indexes the batch executes against (see BlockHeader); copied into the header. */
  readonly systemIndex?: number;
  readonly topicIndex?: number;
}

/** The registry indexes a driver has applied, fed with ticks; the primary names them in proposals. */
export interface RegistryIndexes {
  readonly system: number;
  readonly topic: number;
}

/** The ledger's block header; its height equals the PBFT sequence number. */
export type PbftBlockHeader = BlockHeader;
export type { CertificateSignature };

export interface CertifiedHeader {
  readonly header: PbftBlockHeader;
  readonly signatures: readonly CertificateSignature[];
}

/** A block with 2f+1 signatures over its header hash, and the proposal whose requests it holds. */
export interface CertifiedBlock extends CertifiedHeader {
  readonly proposal: Proposal;
}

export type PbftInput =
  /** One unit of logical time; `now` is the driver's clock in ms, used only to stamp and check proposals. */
  | { readonly kind: 'tick'; readonly now: number; readonly registry?: RegistryIndexes }
  /** A message from another replica, as received on the wire. */
  | { readonly kind: 'message'; readonly bytes: Uint8Array }
  /** A client request, as received on the wire. */
  | { readonly kind: 'request'; readonly bytes: Uint8Array }
  /** The driver executed `commit` entry `seq` and computed this results root. */
  | { readonly kind: 'executed'; readonly seq: number; readonly resultsRoot: Uint8Array };

/** A batch to execute, in sequence order, exactly once. */
export interface CommittedBatch {
  readonly seq: number;
  readonly proposal: Proposal;
  /** Set when the batch came by state transfer: the driver's header must hash to this block's. */
  readonly certified?: CertifiedHeader;
}

export interface Outbound {
  /** Replica index, or every other replica. */
  readonly to: number | 'all';
  readonly bytes: Uint8Array;
}

/** One durable record. Keys are unique; a later put replaces an earlier one. */
export interface PersistRecord {
  readonly key: string;
  /** Sequence number the record belongs to, or 0 for records that garbage collection keeps. */
  readonly seq: number;
  readonly bytes: Uint8Array;
}

export type PersistOp =
  | { readonly op: 'put'; readonly record: PersistRecord }
  /** Delete every record with 0 < seq < belowSeq: they are covered by a stable checkpoint. */
  | { readonly op: 'truncate'; readonly belowSeq: number };

/** Input the replica refused; the refused input changed nothing. */
export interface Rejection {
  readonly code: ErrorCode;
  readonly reason: string;
  /**
   * True when the same input may succeed if tried again later, after a view change, or at another
   * replica (a full queue, a view or window not reached yet); false when the input is wrong in
   * itself (malformed, badly signed, a replay, a protocol violation) and will be refused again.
   * Drivers decide on retries from this flag, never from `code` or `reason`.
   */
  readonly retriable: boolean;
}

/**
 * What the driver must do after a step, IN THIS ORDER:
 * 1. apply `persist` durably (fsync) — votes are persisted BEFORE they are sent;
 * 2. store `certified` blocks durably (they may be acknowledged to clients afterwards);
 * 3. send `send`, answer `serve` and `alreadyCommitted`;
 * 4. execute `commit` in order and report each with an `executed` input.
 */
export interface PbftReady {
  readonly persist: PersistOp[];
  readonly certified: CertifiedBlock[];
  readonly send: Outbound[];
  readonly commit: CommittedBatch[];
  /** Requests that were already committed: the driver re-sends their reply from its ledger. */
  readonly alreadyCommitted: { readonly request: Uint8Array; readonly seq: number }[];
  readonly rejected: Rejection[];
  /**
   * State-transfer requests to answer from the ledger (after storing this step's certified blocks):
   * send `to` the blocks from `fromSeq` on, at most `count`, with `PbftReplica.encodeBlocks`.
   */
  readonly serve: { readonly to: number; readonly fromSeq: number; readonly count: number }[];
}

/** What a restarting replica gets back from its driver. */
export interface PbftRestore {
  /** Every record persisted and not truncated, in any order. */
  readonly records: readonly PersistRecord[];
  /** The last block in the ledger (executed and certified), if any. */
  readonly head?: CertifiedHeader;
  /** The ledger's last block whose height is a multiple of K: the stable checkpoint. */
  readonly stable?: CertifiedHeader;
}
