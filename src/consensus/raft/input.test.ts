import { describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../codec/index.js';
import { decodeRaftMessage, encodeRaftMessage } from './messages.js';
import { RaftNode } from './node.js';
import type { RaftConfig, RaftInput, RaftMessage } from './types.js';

const config: RaftConfig = {
  id: 'b',
  voters: ['a', 'b', 'c'],
  seed: 5,
  electionTicks: 10,
  heartbeatTicks: 1,
};
const append: RaftMessage = {
  type: 'append',
  term: 1,
  from: 'a',
  to: 'b',
  prevIndex: 0,
  prevTerm: 0,
  entries: [{ index: 1, term: 1, type: 'normal', data: new Uint8Array([1, 2]) }],
  commit: 0,
};

describe('Raft wire format and bad input', () => {
  it('round-trips every message through canonical CBOR', () => {
    const messages: RaftMessage[] = [
      append,
      { type: 'vote', term: 2, from: 'a', to: 'b', lastIndex: 3, lastTerm: 1 },
      { type: 'preVoteResponse', term: 2, from: 'a', to: 'b', granted: true },
      {
        type: 'appendResponse',
        term: 2,
        from: 'a',
        to: 'b',
        success: false,
        matchIndex: 0,
        rejectedIndex: 4,
        conflictIndex: 2,
        conflictTerm: 1,
      },
      { type: 'heartbeat', term: 2, from: 'a', to: 'b', commit: 1, readRound: 3 },
      { type: 'timeoutNow', term: 2, from: 'a', to: 'b' },
      { type: 'vote', term: 2, from: 'a', to: 'b', lastIndex: 3, lastTerm: 1, transfer: true },
      {
        type: 'snapshot',
        term: 2,
        from: 'a',
        to: 'b',
        snapshot: {
          index: 9,
          term: 2,
          membership: { voters: ['a'], learners: [] },
          data: new Uint8Array([7]),
        },
      },
    ];
    for (const message of messages) expect(decodeRaftMessage(encodeRaftMessage(message))).toEqual(message);
  });

  it('malformed bytes are rejected with a typed code and leave the state unchanged', () => {
    const node = new RaftNode(config);
    const twin = new RaftNode(config);
    const warmup: RaftInput[] = [{ kind: 'tick' }, { kind: 'bytes', bytes: encodeRaftMessage(append) }];
    for (const input of warmup) expect(node.step(input)).toEqual(twin.step(input));
    const before = structuredClone(node.debugState());
    const bad: [Uint8Array, string][] = [
      [new Uint8Array([0xff, 0x00, 0x13]), 'MALFORMED_ENCODING'],
      [encodeCanonical({ type: 'vote', term: 1 }), 'SCHEMA_MISMATCH'],
      [encodeCanonical({ type: 'launchMissiles', term: 1, from: 'a', to: 'b' }), 'SCHEMA_MISMATCH'],
      [
        encodeCanonical({ ...append, entries: [{ ...append.entries[0]!, index: 5 }] } as never),
        'SCHEMA_MISMATCH',
      ],
      [encodeCanonical({ ...append, term: -1 } as never), 'SCHEMA_MISMATCH'],
      [encodeRaftMessage({ ...append, to: 'c' }), 'SCHEMA_MISMATCH'],
    ];
    for (const [bytes, code] of bad) {
      const ready = node.step({ kind: 'bytes', bytes });
      expect(ready.rejected.map((r) => r.code)).toEqual([code]);
      expect(ready.persist).toEqual([]);
      expect(ready.send).toEqual([]);
    }
    // Typed input is validated too.
    const typed = node.step({ kind: 'message', message: { ...append, prevIndex: -3 } as RaftMessage });
    expect(typed.rejected.map((r) => r.code)).toEqual(['SCHEMA_MISMATCH']);
    expect(node.debugState()).toEqual(before);
    // The twin that never saw the garbage behaves identically from here on.
    const after: RaftInput[] = [
      ...Array.from({ length: 25 }, (): RaftInput => ({ kind: 'tick' })),
      { kind: 'message', message: { type: 'vote', term: 9, from: 'c', to: 'b', lastIndex: 1, lastTerm: 1 } },
      { kind: 'propose', data: new Uint8Array([1]) },
    ];
    for (const input of after) expect(node.step(input)).toEqual(twin.step(input));
  });

  it('bad driver inputs are rejected, not thrown', () => {
    const node = new RaftNode(config);
    const before = structuredClone(node.debugState());
    const inputs: RaftInput[] = [
      { kind: 'applied', index: 4 },
      { kind: 'snapshot', index: 1, data: new Uint8Array() },
      { kind: 'propose', data: new Uint8Array([1]) },
      { kind: 'readIndex', id: 'r' },
      { kind: 'changeMembership', change: { type: 'addVoter', id: 'd' } },
      { kind: 'nonsense' } as unknown as RaftInput,
    ];
    for (const input of inputs) expect(node.step(input).rejected).toHaveLength(1);
    expect(node.debugState()).toEqual(before);
  });

  it('validates the configuration up front, naming the field', () => {
    expect(() => new RaftNode({ ...config, heartbeatTicks: 10 })).toThrow(/heartbeatTicks/);
    expect(() => new RaftNode({ ...config, electionTicks: 0 })).toThrow(/electionTicks/);
    expect(() => new RaftNode({ ...config, voters: ['a', 'a'] })).toThrow(/voters/);
  });
});
