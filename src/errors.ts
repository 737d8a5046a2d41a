/**
 * Expected failures carry a stable `code` that crosses the wire and reaches the CLI, plus a
 * `retriable` flag (as KafkaJS's `KafkaJSError`) so callers know whether trying again can help.
 * `errorTable` below (KafkaJS's `protocol/error.js` is the model) gives each code its default
 * retriable flag, its HTTP status and a remedy sentence: the CLI, the REST API and the retry
 * decisions all read it, so nothing parses message text.
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
  /** A message only the primary of the view (PBFT) or the leader of the term (Raft) may send came from another replica. */
  NotPrimary: 'NOT_PRIMARY',
  /** Only the Raft leader serves this request; `details.leader` (and the message) name the known leader, if any. */
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
  /**
   * A received message whose delivery this connector has not confirmed on-chain yet cannot be
   * deleted: its sender still waits for the confirmation. Retriable: it is confirmed in moments.
   */
  MessageNotConfirmed: 'MESSAGE_NOT_CONFIRMED',
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
  /** A process the CLI started (a devnet's node or connector) exited on its own; the message names its log. */
  ProcessExited: 'PROCESS_EXITED',
  /** A proof or receipt names a format version this verifier does not know (a newer ledgerbus wrote it). */
  UnsupportedProofVersion: 'UNSUPPORTED_PROOF_VERSION',
  /** The caller's organization lacks the role or standing the action needs (an audit by a non-auditor). */
  Forbidden: 'FORBIDDEN',
  /** An audit's data was asked for before enough member organizations approved the request. */
  AuditNotApproved: 'AUDIT_NOT_APPROVED',
  /** An escrow topic needs more distinct holder organizations (other than the sender) than the network has. */
  NotEnoughHolders: 'NOT_ENOUGH_HOLDERS',
  /** A holder's complaint recorded on-chain: the sender's key shares do not match its commitments. */
  EscrowInvalid: 'ESCROW_INVALID',
  /** An audit could not rebuild the message: too few valid shares, or a chunk no holder served intact. */
  AuditFailed: 'AUDIT_FAILED',
  /** A job or catalog entry names a dataset its owner does not have (or no longer publishes). */
  DatasetNotFound: 'DATASET_NOT_FOUND',
  /** A job's query or model is malformed, or names a column or aggregate the owner's policy does not allow. */
  QueryRejected: 'QUERY_REJECTED',
  /** Every group of an aggregate job's result was smaller than the owner's minimum group size. */
  MinGroupSize: 'MIN_GROUP_SIZE',
  /** A job's filter differs from an earlier one so little that the two results would isolate a small group. */
  DifferenceCheck: 'DIFFERENCE_CHECK',
  /** A job ran past its time, memory or row limit and was killed. */
  JobLimitExceeded: 'JOB_LIMIT_EXCEEDED',
  /** A dataset's owner (or a person on its behalf) refused a job. */
  JobRejected: 'JOB_REJECTED',
  /** A job failed at its owner for a reason other than the ones above. */
  JobFailed: 'JOB_FAILED',
  /** An alert id the registry does not hold, or one the caller may not see. */
  AlertNotFound: 'ALERT_NOT_FOUND',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** What every caller of an error code needs besides the code itself. */
export interface ErrorInfo {
  /** Whether trying the same thing again may succeed; the default for `LedgerbusError.retriable`. */
  readonly retriable: boolean;
  /** The REST API's status for the code. */
  readonly httpStatus: number;
  /** One sentence for a person: what to do about it. The CLI prints it under the error. */
  readonly remedy: string;
}

/*
 * Statuses are the ones the REST API answered before this table existed (500 for every code it had
 * no specific mapping for); changing one is an API change, not a refactoring.
 */
const nobodyToFix =
  'Nothing to do as a client; if it persists, report the replica that sent it (it may be faulty).';
const fetchAgain =
  'Do not trust this data: fetch it again from another node, and report the node that served it.';

/** Every code's default retriable flag, HTTP status and remedy; a missing code does not compile. */
export const errorTable = {
  [ErrorCode.MalformedEncoding]: {
    retriable: false,
    httpStatus: 400,
    remedy:
      'Send well-formed input (canonical CBOR, or valid JSON to the REST API); if a peer sent it, check that both run the same ledgerbus version.',
  },
  [ErrorCode.SchemaMismatch]: {
    retriable: false,
    httpStatus: 400,
    remedy: 'Fix the field the message names; `--help` and /v1/openapi.json show the expected shape.',
  },
  [ErrorCode.Oversize]: {
    retriable: false,
    httpStatus: 400,
    remedy: 'Send less at once: split the batch or the message below the limit the message names.',
  },
  [ErrorCode.BadSignature]: {
    retriable: false,
    httpStatus: 500,
    remedy:
      "Check that the signer's key file matches the public key registered for it, and that it signed for this network.",
  },
  [ErrorCode.KeyFileCorrupt]: {
    retriable: false,
    httpStatus: 500,
    remedy:
      'Restore the key file from a backup, or generate a new key (`ledgerbus keys generate`) and register its public key.',
  },
  [ErrorCode.KeyFilePermissions]: {
    retriable: false,
    httpStatus: 500,
    remedy: 'Make the key file readable by its owner only: `chmod 600 <file>`.',
  },
  [ErrorCode.KeyFileMissing]: {
    retriable: false,
    httpStatus: 500,
    remedy: 'Check the key path in the configuration, or create the key with `ledgerbus keys generate`.',
  },
  [ErrorCode.BadCertificate]: {
    retriable: false,
    httpStatus: 500,
    remedy:
      'Issue a new certificate for this network and organization (`ledgerbus cert issue`) and check its validity dates.',
  },
  [ErrorCode.BadProof]: { retriable: false, httpStatus: 500, remedy: fetchAgain },
  [ErrorCode.InsufficientSignatures]: { retriable: false, httpStatus: 500, remedy: fetchAgain },
  [ErrorCode.NonMember]: { retriable: false, httpStatus: 500, remedy: fetchAgain },
  [ErrorCode.DuplicateSigner]: { retriable: false, httpStatus: 500, remedy: fetchAgain },
  [ErrorCode.BrokenChain]: {
    retriable: false,
    httpStatus: 500,
    remedy:
      'Fetch the missing blocks from another replica (a node does this itself); if stored data is affected, restore the data directory from a replica.',
  },
  [ErrorCode.RootMismatch]: { retriable: false, httpStatus: 500, remedy: fetchAgain },
  [ErrorCode.ConflictingBlock]: {
    retriable: false,
    httpStatus: 500,
    remedy:
      "Stop the node and compare its data directory with the other replicas': two blocks at one height is a fault to investigate.",
  },
  [ErrorCode.WrongView]: { retriable: false, httpStatus: 500, remedy: nobodyToFix },
  [ErrorCode.OutOfWindow]: {
    retriable: false,
    httpStatus: 500,
    remedy:
      'Nothing to do: a replica that is behind catches up by state transfer; if it persists, check its connectivity.',
  },
  [ErrorCode.WrongDigest]: { retriable: false, httpStatus: 500, remedy: nobodyToFix },
  [ErrorCode.WrongGroup]: {
    retriable: false,
    httpStatus: 500,
    remedy:
      "Check the partition or group the request names against the node's configuration and the registry.",
  },
  [ErrorCode.Replay]: {
    retriable: false,
    httpStatus: 500,
    remedy: 'Send a new request with a fresh id or sequence number; an old one is never processed twice.',
  },
  [ErrorCode.NotPrimary]: { retriable: false, httpStatus: 500, remedy: nobodyToFix },
  [ErrorCode.NotLeader]: {
    retriable: true,
    httpStatus: 500,
    remedy:
      'Retry: send the request to the current leader (the error names it when known) once one is elected.',
  },
  [ErrorCode.BadViewChange]: { retriable: false, httpStatus: 500, remedy: nobodyToFix },
  [ErrorCode.Overloaded]: {
    retriable: true,
    httpStatus: 429,
    remedy: 'Retry later with back-off, or send less at once.',
  },
  [ErrorCode.RateLimited]: {
    retriable: true,
    httpStatus: 429,
    remedy:
      "Back off and retry; if this is routine, ask the node's operator to raise the organization's `rateLimit`.",
  },
  [ErrorCode.ClockSkew]: {
    retriable: false,
    httpStatus: 500,
    remedy: "Synchronize this machine's clock (NTP) with the other nodes', then retry.",
  },
  [ErrorCode.BadConfig]: {
    retriable: false,
    httpStatus: 400,
    remedy: 'Fix the field or option the message names, then start again.',
  },
  [ErrorCode.StorageCorrupt]: {
    retriable: false,
    httpStatus: 500,
    remedy:
      'Stop the process and restore its data directory from a backup or another replica; do not edit stored files by hand.',
  },
  [ErrorCode.InvalidKey]: {
    retriable: false,
    httpStatus: 500,
    remedy: 'Name the payload by the sha256 of its content: 64 lowercase hex characters.',
  },
  [ErrorCode.InvalidRange]: {
    retriable: false,
    httpStatus: 500,
    remedy: "Ask for a byte range that starts inside the object's size.",
  },
  [ErrorCode.PayloadNotFound]: {
    retriable: false,
    httpStatus: 404,
    remedy: 'Check the key; if the message is recent, wait until its payload is stored and ask again.',
  },
  [ErrorCode.HashMismatch]: {
    retriable: false,
    httpStatus: 500,
    remedy: 'Send the content again: what arrived does not hash to the sha256 announced for it.',
  },
  [ErrorCode.StorageUnavailable]: {
    retriable: true,
    httpStatus: 500,
    remedy: 'Check that the payload storage (disk or database) is reachable and has space, then retry.',
  },
  [ErrorCode.ConnectionClosed]: {
    retriable: true,
    httpStatus: 503,
    remedy: 'Check that the peer (connector or node) is running and reachable, then retry.',
  },
  [ErrorCode.PeerNotAuthorized]: {
    retriable: false,
    httpStatus: 500,
    remedy:
      "Check that the peer's TLS key is the one registered (or pinned) for it; register the node again if its key changed.",
  },
  [ErrorCode.Timeout]: {
    retriable: true,
    httpStatus: 503,
    remedy: "Retry; if it keeps happening, check the peer's load and the network in between.",
  },
  [ErrorCode.RemoteError]: {
    retriable: false,
    httpStatus: 500,
    remedy:
      'Upgrade this side: the peer runs a newer ledgerbus and reported a code this version does not know.',
  },
  [ErrorCode.Internal]: {
    retriable: false,
    httpStatus: 500,
    remedy: "Look in the serving process's log for the cause, and report it: this is a bug.",
  },
  [ErrorCode.UnknownMethod]: {
    retriable: false,
    httpStatus: 404,
    remedy:
      'Check the route or method name; the peer may run another ledgerbus version (see /v1/openapi.json).',
  },
  [ErrorCode.NotRecipient]: {
    retriable: false,
    httpStatus: 403,
    remedy: 'Ask as an organization the message was addressed to.',
  },
  [ErrorCode.MessageNotFound]: {
    retriable: false,
    httpStatus: 404,
    remedy:
      'Check the topic, partition and id; if the message was just sent, wait until it commits and ask again.',
  },
  [ErrorCode.MessageNotConfirmed]: {
    retriable: true,
    httpStatus: 409,
    remedy:
      'Wait until the delivery is confirmed (its status shows this organization DELIVERED) and delete it then.',
  },
  [ErrorCode.MessageRejected]: {
    retriable: false,
    httpStatus: 422,
    remedy: "Fix what the contract's reason code names (topic policy, recipients, size), then send again.",
  },
  // 409, not 403: the API token was fine; the network's registry state refused the change (not
  // allowed for this organization, already exists, wrong partition count...), as the message says.
  [ErrorCode.AdminRejected]: {
    retriable: false,
    httpStatus: 409,
    remedy: 'Read the reason code: act as an organization allowed to do this (`--as`), or fix the request.',
  },
  [ErrorCode.TopicNotFound]: {
    retriable: false,
    httpStatus: 404,
    remedy: 'Check the topic name, or create the topic first (`ledgerbus topic create`).',
  },
  [ErrorCode.PayloadCorrupt]: {
    retriable: false,
    httpStatus: 500,
    remedy: 'Do not use this copy: fetch the payload again, from another node or from the sender.',
  },
  [ErrorCode.Unauthorized]: {
    retriable: false,
    httpStatus: 401,
    remedy:
      "Send the application's API token as `Authorization: Bearer <token>` (it is in the connector's configuration).",
  },
  // 403: the organization is pending, suspended or revoked; a supervisor must approve it first.
  [ErrorCode.NotApproved]: {
    retriable: false,
    httpStatus: 403,
    remedy: 'Ask a supervisor organization to approve this one (`ledgerbus org approve`).',
  },
  [ErrorCode.WrongNetwork]: {
    retriable: false,
    httpStatus: 500,
    remedy: 'Check that the request, registry or data directory belongs to this network (genesis `network`).',
  },
  [ErrorCode.RequestExpired]: {
    retriable: true,
    httpStatus: 500,
    remedy: 'Sign a new request (with a lifetime within the allowed maximum) and send it again.',
  },
  // 409: the request is fine but names several messages; the answer lists them to choose from.
  [ErrorCode.AmbiguousMessageId]: {
    retriable: false,
    httpStatus: 409,
    remedy: 'Name the topic and partition too: use one of the paths the answer lists in `candidates`.',
  },
  [ErrorCode.DataFormatUnsupported]: {
    retriable: false,
    httpStatus: 500,
    remedy:
      'Move the old data directory away and start from an empty one: this version cannot verify its data.',
  },
  [ErrorCode.ProcessExited]: {
    retriable: false,
    httpStatus: 500,
    remedy:
      'Read the log the message names: it says why the process stopped (a port, a key, a data directory).',
  },
  [ErrorCode.UnsupportedProofVersion]: {
    retriable: false,
    httpStatus: 400,
    remedy:
      'Verify it with a ledgerbus version that knows this proof version (upgrade), or ask for a proof in a version this one lists.',
  },
  [ErrorCode.Forbidden]: {
    retriable: false,
    httpStatus: 403,
    remedy:
      'Act as an organization that holds the role (a supervisor grants it: ledgerbus org approve ORG --roles ...).',
  },
  [ErrorCode.AuditNotApproved]: {
    retriable: true,
    httpStatus: 409,
    remedy:
      'Wait for member organizations to approve the request (ledgerbus audit approve REQUEST_ID), then fetch again.',
  },
  [ErrorCode.NotEnoughHolders]: {
    retriable: false,
    httpStatus: 409,
    remedy:
      "Register and approve more organizations, or lower the topic's escrow replicas or shares (ledgerbus topic describe shows them).",
  },
  [ErrorCode.EscrowInvalid]: {
    retriable: false,
    httpStatus: 409,
    remedy:
      'A holder complained that the sender escrowed shares that do not match its commitments: audit the sender with ledgerbus audit status.',
  },
  [ErrorCode.AuditFailed]: {
    retriable: true,
    httpStatus: 502,
    remedy:
      "Start more holders' connectors or wait for more share releases, then run ledgerbus audit fetch again; audit status names the bad holders.",
  },
  [ErrorCode.DatasetNotFound]: {
    retriable: false,
    httpStatus: 404,
    remedy: 'Find the dataset with ledgerbus catalog search and name it OWNER/NAME as the catalog shows it.',
  },
  [ErrorCode.QueryRejected]: {
    retriable: false,
    httpStatus: 400,
    remedy:
      "Fix the query: use only the columns and aggregates the catalog entry's policy lists (ledgerbus catalog show OWNER/NAME), in the SQL subset docs/datashare.md describes.",
  },
  [ErrorCode.MinGroupSize]: {
    retriable: false,
    httpStatus: 422,
    remedy:
      'Group by fewer or coarser columns, or widen the filter, so that each group holds at least the minimum size.',
  },
  [ErrorCode.DifferenceCheck]: {
    retriable: false,
    httpStatus: 422,
    remedy:
      'Change the filter by more than a few rows from your earlier queries on this dataset, or ask for a coarser grouping.',
  },
  [ErrorCode.JobLimitExceeded]: {
    retriable: false,
    httpStatus: 422,
    remedy:
      'Ask for less (a narrower filter, fewer groups or features), or ask the owner to raise its limits.',
  },
  [ErrorCode.JobRejected]: {
    retriable: false,
    httpStatus: 409,
    remedy: "Read the owner's reason (ledgerbus job status JOB_ID) and submit a job it can accept.",
  },
  [ErrorCode.JobFailed]: {
    retriable: false,
    httpStatus: 502,
    remedy:
      "Read the owner's reason (ledgerbus job status JOB_ID); if it is on the owner's side, ask its operators.",
  },
  [ErrorCode.AlertNotFound]: {
    retriable: false,
    httpStatus: 404,
    remedy: 'List the alerts you may see with ledgerbus alerts list and name one by its id.',
  },
} as const satisfies Record<ErrorCode, ErrorInfo>;

/** The table's entry for `code`. */
export function errorInfo(code: ErrorCode): ErrorInfo {
  return errorTable[code];
}

/**
 * Data a caller acts on, carried as typed fields rather than inside the message. Not on the RPC
 * wire: RPC error frames are exact records, so a field an older peer does not know would make it
 * drop the connection; across it the message still names the leader for people. The connector's
 * REST error body carries `reason` (its `error.reason`), and the SDK reads it back into `details`.
 */
export interface ErrorDetails {
  /** NOT_LEADER: the server this one believes leads now, when it knows one. */
  readonly leader?: string;
  /** The partition's current epoch, when the error is about a closed one. */
  readonly epoch?: number;
  /**
   * ADMIN_REJECTED / MESSAGE_REJECTED: the contract's or the registry's stable reason code (e.g.
   * `ALREADY_EXISTS`, `NOT_ALLOWED`), so a caller decides on it rather than on the message text.
   */
  readonly reason?: string;
}

export class LedgerbusError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  /** Absent unless the thrower had data to give (an own property only then, so errors compare as before). */
  declare readonly details?: ErrorDetails;
  /** `retriable` defaults to the table's flag for `code`. */
  constructor(
    code: ErrorCode,
    message: string,
    options: { retriable?: boolean; cause?: unknown; details?: ErrorDetails } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LedgerbusError';
    this.code = code;
    // `?.`: a code cast from a newer peer's string may have no entry; it is then not retriable.
    this.retriable = options.retriable ?? errorTable[code]?.retriable ?? false;
    if (options.details !== undefined) this.details = options.details;
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
