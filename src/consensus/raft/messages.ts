/**
 * The Raft wire format: typed messages with strict schemas (exact records, bounded sizes), encoded as
 * canonical CBOR. Anything a peer sends is parsed here before the core looks at it, so malformed input
 * becomes a typed rejection (MalformedEncoding, SchemaMismatch, Oversize) instead of an exception.
 */
import { decodeWith, encodeWith, t } from '../../codec/index.js';
import type { Infer } from '../../codec/index.js';

/** Longest server id we accept. */
export const serverIdLengthMax = 128;
/** Most servers (voters plus learners) in one configuration. */
export const membersMax = 64;
/** Most entries one append message may carry. */
export const messageEntriesMax = 1024;
/** Largest entry payload accepted on the wire; a node's own limit may be lower. */
export const wireEntryBytesMax = 4 * 1024 * 1024;
/** Largest snapshot payload accepted on the wire. */
export const wireSnapshotBytesMax = 64 * 1024 * 1024;
/** Largest encoded message accepted. */
export const messageBytesMax = 96 * 1024 * 1024;

const serverId = t.string({ minLength: 1, maxLength: serverIdLengthMax });
const term = t.uint();
const index = t.uint();

export const membershipSchema = t.refine(
  t.record({
    voters: t.array(serverId, { maxItems: membersMax }),
    learners: t.array(serverId, { maxItems: membersMax }),
  }),
  (value) => {
    const all = [...value.voters, ...value.learners];
    if (new Set(all).size !== all.length) return 'a server is listed twice';
    return undefined;
  },
);
/** The servers of one configuration: voters elect and count for quorums, learners only receive entries. */
export type Membership = Infer<typeof membershipSchema>;

export const entrySchema = t.refine(
  t.record({
    index: t.uint({ min: 1 }),
    term: t.uint({ min: 1 }),
    type: t.oneOf('normal', 'config'),
    data: t.bytes({ maxLength: wireEntryBytesMax }),
    config: t.optional(membershipSchema),
  }),
  (value) =>
    (value.type === 'config') !== (value.config !== undefined) ? 'config iff type is config' : undefined,
);
/**
 * One log entry. `config` entries carry the whole configuration that takes effect when the entry is
 * appended (Ongaro's thesis §4.1); a leader's first entry in its term is an empty `normal` entry.
 */
export type RaftEntry = Infer<typeof entrySchema>;

export const snapshotSchema = t.record({
  index: index,
  term: term,
  membership: membershipSchema,
  data: t.bytes({ maxLength: wireSnapshotBytesMax }),
});
/** A state-machine snapshot covering entries 1..index, with the configuration in force at `index`. */
export type RaftSnapshot = Infer<typeof snapshotSchema>;

const envelope = { term, from: serverId, to: serverId };

const entriesSchema = t.refine(t.array(entrySchema, { maxItems: messageEntriesMax }), (entries) => {
  for (let i = 1; i < entries.length; i++) {
    if (entries[i]!.index !== entries[i - 1]!.index + 1) return 'entries are not consecutive';
    if (entries[i]!.term < entries[i - 1]!.term) return 'entry terms go down';
  }
  return undefined;
});

export const raftMessageSchema = t.variant('type', {
  /** Pre-vote (thesis §9.6): "would you vote for me at `term`?", without anyone changing term. */
  preVote: t.record({ type: t.literal('preVote'), ...envelope, lastIndex: index, lastTerm: term }),
  preVoteResponse: t.record({ type: t.literal('preVoteResponse'), ...envelope, granted: t.bool() }),
  /** RequestVote (Raft §5.2, §5.4.1). */
  vote: t.record({
    type: t.literal('vote'),
    ...envelope,
    lastIndex: index,
    lastTerm: term,
    /** Set when the leader handed over leadership (thesis §3.10): voters ignore their lease. */
    transfer: t.optional(t.bool()),
  }),
  voteResponse: t.record({ type: t.literal('voteResponse'), ...envelope, granted: t.bool() }),
  /** AppendEntries (Raft §5.3). */
  append: t.refine(
    t.record({
      type: t.literal('append'),
      ...envelope,
      prevIndex: index,
      prevTerm: term,
      entries: entriesSchema,
      commit: index,
    }),
    (m) =>
      m.entries.length > 0 && (m.entries[0]!.index !== m.prevIndex + 1 || m.entries[0]!.term < m.prevTerm)
        ? 'entries do not follow prevIndex/prevTerm'
        : undefined,
  ),
  /**
   * Answer to append and snapshot. On success `matchIndex` is the last index known to match the
   * leader. On rejection `rejectedIndex` is the prevIndex that did not match and the conflict hint
   * (Raft §5.3, "the follower can include the term of the conflicting entry...") says where to retry.
   */
  appendResponse: t.record({
    type: t.literal('appendResponse'),
    ...envelope,
    success: t.bool(),
    matchIndex: index,
    rejectedIndex: index,
    conflictIndex: index,
    conflictTerm: term,
  }),
  /** Heartbeat: asserts leadership, carries a safe commit index and the latest read-index round. */
  heartbeat: t.record({ type: t.literal('heartbeat'), ...envelope, commit: index, readRound: t.uint() }),
  heartbeatResponse: t.record({ type: t.literal('heartbeatResponse'), ...envelope, readRound: t.uint() }),
  /** InstallSnapshot (Raft §7), in one message. */
  snapshot: t.record({ type: t.literal('snapshot'), ...envelope, snapshot: snapshotSchema }),
  /** Leadership transfer (thesis §3.10): "your log is up to date; start an election now". */
  timeoutNow: t.record({ type: t.literal('timeoutNow'), ...envelope }),
});
export type RaftMessage = Infer<typeof raftMessageSchema>;
export type RaftMessageType = RaftMessage['type'];

/** Encodes a message as canonical CBOR; throws LedgerbusError(SchemaMismatch) if it does not fit. */
export function encodeRaftMessage(message: RaftMessage): Uint8Array {
  return encodeWith(raftMessageSchema, message);
}

/**
 * Decodes and validates a message. Throws LedgerbusError — Oversize, MalformedEncoding or
 * SchemaMismatch naming the field — for anything that is not a well-formed Raft message.
 */
export function decodeRaftMessage(bytes: Uint8Array): RaftMessage {
  return decodeWith(raftMessageSchema, bytes, { maxBytes: messageBytesMax });
}
