/**
 * What a node sees (DESIGN §9): one typed observation per thing an organization did or tried, as its
 * replicas and its client service saw it. The anomaly detectors learn from these; the node keeps only
 * a bounded window of them (see observation-buffer.ts) and counts them as metrics.
 *
 * `at` is wall-clock milliseconds as the observing node read it (or the block's timestamp for what a
 * committed block shows). `organization` is who acted: the organization whose key signed or whose
 * connection sent the request ('' when no registered organization owns the key, e.g. a Sybil key).
 */

/** How a payload fetch (or a read of a message's metadata) ended on this node. */
export type FetchOutcome =
  /** Served or relayed. */
  | 'served'
  /** The requester is not a recipient of the message (NOT_RECIPIENT). */
  | 'notRecipient'
  /** The fetch request's signature or signer key does not check out (BAD_SIGNATURE). */
  | 'badSignature'
  /** The fetch request's nonce was already used (a replayed fetch). */
  | 'replay'
  /** The fetch request is outside its freshness window or for another network. */
  | 'stale'
  /** No such committed message (MESSAGE_NOT_FOUND). */
  | 'notFound';

interface ObservationBase {
  /** Wall-clock ms when the node saw it (a committed block's observations: the block's timestamp). */
  readonly at: number;
  /** The node that observed it. */
  readonly node: string;
  /** The acting organization ('' when unknown). */
  readonly organization: string;
  /**
   * Where the request entered the network: the node its connector is connected to (for a forwarded
   * request, the forwarding node), or a remote address. Credential misuse shows as a new entry point.
   */
  readonly via?: string;
}

/** One message accepted on a partition this node replicates. */
export interface PublishObservation extends ObservationBase {
  readonly kind: 'publish';
  readonly topic: string;
  /** The message's declared payload size. */
  readonly bytes: number;
  readonly recipients: readonly string[];
}

/** A refusal by a stable reason code: a contract rejection (REPLAY, BAD_SIGNATURE, …) or a node's error code. */
export interface RejectObservation extends ObservationBase {
  readonly kind: 'reject';
  readonly topic?: string;
  /** `RejectReason`, `AdminReject` or `ErrorCode` value. */
  readonly reason: string;
  /** Where it was refused: in a committed block, in the Raft layer, or by the node before consensus. */
  readonly stage: 'contract' | 'admin' | 'node';
}

export interface FetchObservation extends ObservationBase {
  readonly kind: 'fetch';
  readonly topic?: string;
  readonly outcome: FetchOutcome;
}

/** A recipient confirmed delivery `delayMs` after the message was accepted. */
export interface ConfirmObservation extends ObservationBase {
  readonly kind: 'confirm';
  readonly topic: string;
  readonly delayMs: number;
}

/** An admin transaction applied by the Raft layer ('OK' or its reason code). */
export interface AdminObservation extends ObservationBase {
  readonly kind: 'admin';
  readonly action: string;
  readonly outcome: string;
}

/** A request refused RATE_LIMITED. */
export interface RateLimitedObservation extends ObservationBase {
  readonly kind: 'rateLimited';
  readonly method: string;
}

/** A request by an organization that is not APPROVED (a suspended one still trying). */
export interface NotApprovedObservation extends ObservationBase {
  readonly kind: 'notApproved';
  /** Its status: PENDING, SUSPENDED, REVOKED, or UNKNOWN. */
  readonly status: string;
  readonly method: string;
}

/** A connection or transaction with a key no registered organization or node holds (Sybil). */
export interface UnknownKeyObservation extends ObservationBase {
  readonly kind: 'unknownKey';
  /** Hex of the first 8 bytes of the key. */
  readonly key: string;
}

/** The registry changed (status, keys, nodes, topics): context, never an alert by itself. */
export interface RegistryObservation extends ObservationBase {
  readonly kind: 'registry';
  readonly change: string;
}

export type Observation =
  | PublishObservation
  | RejectObservation
  | FetchObservation
  | ConfirmObservation
  | AdminObservation
  | RateLimitedObservation
  | NotApprovedObservation
  | UnknownKeyObservation
  | RegistryObservation;

export type ObservationKind = Observation['kind'];

export const observationKinds: readonly ObservationKind[] = [
  'publish',
  'reject',
  'fetch',
  'confirm',
  'admin',
  'rateLimited',
  'notApproved',
  'unknownKey',
  'registry',
];

/** Where observations go: the node's anomaly service, or nowhere (tests, tools). */
export type ObservationSink = (observation: Observation) => void;
