/**
 * Expected failures carry a stable `code` that crosses the wire and reaches the CLI, plus a
 * `retriable` flag (as KafkaJS's `KafkaJSError`) so callers know whether trying again can help.
 * A broken internal invariant is NOT one of these: it is an `AssertionError` that throws loudly.
 */
export const ErrorCode = {
  /** Input is not well-formed CBOR, or not in canonical (deterministic) form. */
  MalformedEncoding: 'MALFORMED_ENCODING',
  /** Well-formed input whose shape does not match the expected schema (missing/unknown field, wrong type). */
  SchemaMismatch: 'SCHEMA_MISMATCH',
  /** Input is larger than the limit for its kind. */
  Oversize: 'OVERSIZE',
  /** A signature does not verify against the claimed signer's key. */
  BadSignature: 'BAD_SIGNATURE',
  /** A key file could not be parsed as a key of the expected kind. */
  KeyFileCorrupt: 'KEY_FILE_CORRUPT',
  /** A key file is readable by users other than its owner. */
  KeyFilePermissions: 'KEY_FILE_PERMISSIONS',
  /** A key file does not exist. */
  KeyFileMissing: 'KEY_FILE_MISSING',
  /** A certificate is malformed, expired, or not signed by the organization it names. */
  BadCertificate: 'BAD_CERTIFICATE',
  /** A Merkle inclusion proof does not lead to the expected root. */
  BadProof: 'BAD_PROOF',
  /** A block's certificate has fewer than 2f+1 distinct member signatures. */
  InsufficientSignatures: 'INSUFFICIENT_SIGNATURES',
  /** A signature in a certificate is from a replica that is not a member of the group. */
  NonMember: 'NON_MEMBER',
  /** The same signer appears more than once in a certificate. */
  DuplicateSigner: 'DUPLICATE_SIGNER',
  /** A block does not link to its predecessor (wrong previous hash or height). */
  BrokenChain: 'BROKEN_CHAIN',
  /** A block's transactions or results root does not match its contents. */
  RootMismatch: 'ROOT_MISMATCH',
  /** A block at this height is already stored with different contents. */
  ConflictingBlock: 'CONFLICTING_BLOCK',
  /** A consensus message is for a view this replica is not in. */
  WrongView: 'WRONG_VIEW',
  /** A consensus message's sequence number is outside the low/high watermarks. */
  OutOfWindow: 'OUT_OF_WINDOW',
  /** A consensus message's digest does not match its contents or conflicts with an accepted one. */
  WrongDigest: 'WRONG_DIGEST',
  /** A message is for another consensus group. */
  WrongGroup: 'WRONG_GROUP',
  /** A message was already processed (replay). */
  Replay: 'REPLAY',
  /** A message that only the primary of the view may send came from another replica. */
  NotPrimary: 'NOT_PRIMARY',
  /** Only the Raft leader serves this request; the message names the known leader, if any. */
  NotLeader: 'NOT_LEADER',
  /** A view-change or new-view message carries an invalid proof. */
  BadViewChange: 'BAD_VIEW_CHANGE',
  /** A bounded queue is full; try again later. */
  Overloaded: 'OVERLOADED',
  /**
   * The calling organization is over its request quota on this node (node config `rateLimit`);
   * retriable: back off and retry, as the message says.
   */
  RateLimited: 'RATE_LIMITED',
  /** A proposal's timestamp is further ahead of the local clock than the allowed skew. */
  ClockSkew: 'CLOCK_SKEW',
  /** Configuration is invalid; the message names the field. */
  BadConfig: 'BAD_CONFIG',
  /** A stored file or database is unreadable or inconsistent. */
  StorageCorrupt: 'STORAGE_CORRUPT',
  /** A payload key is not 64 lowercase hex characters (the sha256 of the content). */
  InvalidKey: 'INVALID_KEY',
  /** A byte range starts outside the stored object. */
  InvalidRange: 'INVALID_RANGE',
  /** No payload is stored under this key. */
  PayloadNotFound: 'PAYLOAD_NOT_FOUND',
  /** Received content does not hash to the sha256 the sender announced. */
  HashMismatch: 'HASH_MISMATCH',
  /** Payload storage (disk or database) cannot be reached or refused the operation; may pass. */
  StorageUnavailable: 'STORAGE_UNAVAILABLE',
  /** A network connection closed, or could not be opened, before the operation completed. */
  ConnectionClosed: 'CONNECTION_CLOSED',
  /** A peer's TLS key is not the pinned or registered key for that connection. */
  PeerNotAuthorized: 'PEER_NOT_AUTHORIZED',
  /** A peer did not answer within the allowed time. */
  Timeout: 'TIMEOUT',
  /** A peer reported an error code this version does not know; the message carries it. */
  RemoteError: 'REMOTE_ERROR',
  /** A peer failed on an unexpected error while serving a request; the details stay in its log. */
  Internal: 'INTERNAL',
  /** A request named a method the peer does not serve. */
  UnknownMethod: 'UNKNOWN_METHOD',
  /** The requesting organization is not a recipient of the message (payload fetch, receipt). */
  NotRecipient: 'NOT_RECIPIENT',
  /** No committed message has this id on the partition asked (it may not be committed yet). */
  MessageNotFound: 'MESSAGE_NOT_FOUND',
  /** The partition refused a published message; the message names the contract's reason code. */
  MessageRejected: 'MESSAGE_REJECTED',
  /** The Raft layer refused an admin transaction; the message names the reason code and what to fix. */
  AdminRejected: 'ADMIN_REJECTED',
  /** No topic has this name (it may not be created yet). */
  TopicNotFound: 'TOPIC_NOT_FOUND',
  /** A payload did not verify against its signed envelope header or the on-chain root. */
  PayloadCorrupt: 'PAYLOAD_CORRUPT',
  /** An application's API token is missing or wrong. */
  Unauthorized: 'UNAUTHORIZED',
  /**
   * The calling organization is not APPROVED (pending, suspended or revoked): only approved
   * organizations act or read. A supervisor decides (`ledgerbus org approve`).
   */
  NotApproved: 'NOT_APPROVED',
  /**
   * Something names another network than this process serves: a signed request made for (or
   * captured from) another consortium, a registry offered by another network's node, or a data
   * directory written for another network.
   */
  WrongNetwork: 'WRONG_NETWORK',
  /** A signed request is past its expiry (or claims a lifetime longer than allowed); sign a new one. */
  RequestExpired: 'REQUEST_EXPIRED',
  /** Several received messages have this id (ids are unique per partition): name the topic and partition. */
  AmbiguousMessageId: 'AMBIGUOUS_MESSAGE_ID',
  /**
   * A data directory holds data in a format this version cannot verify (written before signatures
   * named their network); the process refuses to start: start from an empty data directory.
   */
  DataFormatUnsupported: 'DATA_FORMAT_UNSUPPORTED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class LedgerbusError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  constructor(code: ErrorCode, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LedgerbusError';
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

export function isLedgerbusError(error: unknown, code?: ErrorCode): error is LedgerbusError {
  return error instanceof LedgerbusError && (code === undefined || error.code === code);
}

/** Throws when an internal invariant is broken: such a failure is a bug, never bad input. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export class AssertionError extends Error {
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = 'AssertionError';
  }
}
