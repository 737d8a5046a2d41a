/**
 * Every decoder of untrusted bytes, fed random bytes and mutated valid encodings: it returns a value
 * or throws a LedgerbusError, never anything else (a TypeError or RangeError from a decoder is a
 * crash a hostile peer can trigger). Valid encodings must also survive decode → encode unchanged.
 */
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { bytesEqual, decodeCanonical, encodeCanonical, encodeWith, toHex } from '../../src/codec/index.js';
import type { CborValue } from '../../src/codec/index.js';
import {
  decodeBody,
  decodeClientRequest,
  decodeEnvelope,
  encodeClientRequest,
  encodeEnvelope,
  messageLimits,
  signMessage,
} from '../../src/consensus/pbft/messages.js';
import type { PbftMessage } from '../../src/consensus/pbft/messages.js';
import { decodeRaftMessage, encodeRaftMessage } from '../../src/consensus/raft/messages.js';
import type { RaftMessage } from '../../src/consensus/raft/messages.js';
import { decodeFetchRequest, encodeFetchRequest, fetchRequestSchema } from '../../src/contracts/fetch.js';
import { decodeTransactionResult, transactionResultSchema } from '../../src/contracts/results.js';
import { Harness, contentRoot, keys, message, nonce, signing } from '../../src/contracts/testing/fixtures.js';
import { decodeTransaction, transactionSchema } from '../../src/contracts/transactions.js';
import { sha256, signingKeyFromSeed } from '../../src/crypto/index.js';
import {
  chunkHashesRoot,
  decodeEnvelopeHeader,
  encodeEnvelopeHeader,
  envelopeVersion,
  signEnvelopeHeader,
} from '../../src/crypto/envelope/header.js';
import { isLedgerbusError } from '../../src/errors.js';
import { decodeBlock, encodeBlock } from '../../src/ledger/block.js';
import { FrameDecoder, encodeFrame } from '../../src/net/frames.js';
import {
  decodeAcceptanceProof,
  decodeDeliveryReceipt,
  encodeAcceptanceProof,
  encodeDeliveryReceipt,
} from '../../src/proofs/message-proof.js';
import {
  decodeRegistryEntry,
  decodeRegistryResult,
  encodeRegistryEntry,
  encodeRegistryResult,
  topicGroupId,
} from '../../src/registry/admin-transactions.js';
import { RegistryView } from '../../src/registry/registry-view.js';
import {
  adminEntry,
  blocksEntry,
  connectorKey,
  createOrders,
  encryptionKey,
  policy,
  signedAdmin,
  testGenesis,
  validChain,
} from '../../src/registry/testing/fixtures.js';
import {
  expectOnlyLedgerbusErrors,
  mutateAll,
  mutations,
  pbftCrypto,
  proofChain,
  proofReceipt,
  signingCrypto,
} from './support.js';

/** A decoder under test, type-erased so that one table holds them all. */
interface DecoderCase {
  readonly name: string;
  readonly decode: (bytes: Uint8Array) => unknown;
  /** decode then encode again with the matching encoder. */
  readonly roundTrip: (bytes: Uint8Array) => Uint8Array;
  readonly valid: readonly Uint8Array[];
  /** Set when a mutant that decodes may legitimately re-encode differently; says why. */
  readonly lossy?: string;
}

function decoderCase<T>(
  name: string,
  decode: (bytes: Uint8Array) => T,
  encode: (value: T) => Uint8Array,
  valid: readonly Uint8Array[],
  lossy?: string,
): DecoderCase {
  return {
    name,
    decode,
    roundTrip: (bytes) => encode(decode(bytes)),
    valid,
    ...(lossy === undefined ? {} : { lossy }),
  };
}

const text = (value: string): Uint8Array => new TextEncoder().encode(value);

// ---- valid encodings, built with each module's own encoder --------------------------------------

const chain = proofChain();
const certifiedHeader = chain[0]!.header;

const canonicalSamples: CborValue[] = [
  null,
  0,
  -1,
  Number.MAX_SAFE_INTEGER,
  'ledgerbus',
  text('bytes'),
  [1, [2, [3, { deep: [true, false, null] }]]],
  { a: 1, bb: 'two', ccc: text('three'), nested: { list: [{}, [], ''] } },
];

const raftMessages: RaftMessage[] = [
  { type: 'vote', term: 3, from: 'a', to: 'b', lastIndex: 10, lastTerm: 2, transfer: true },
  { type: 'preVoteResponse', term: 3, from: 'b', to: 'a', granted: false },
  {
    type: 'append',
    term: 3,
    from: 'a',
    to: 'b',
    prevIndex: 4,
    prevTerm: 2,
    commit: 4,
    entries: [
      { index: 5, term: 2, type: 'normal', data: text('entry five') },
      {
        index: 6,
        term: 3,
        type: 'config',
        data: new Uint8Array(0),
        config: { voters: ['a', 'b'], learners: ['c'] },
      },
    ],
  },
  {
    type: 'appendResponse',
    term: 3,
    from: 'b',
    to: 'a',
    success: false,
    matchIndex: 0,
    rejectedIndex: 4,
    conflictIndex: 3,
    conflictTerm: 1,
  },
  {
    type: 'snapshot',
    term: 4,
    from: 'a',
    to: 'c',
    snapshot: {
      index: 9,
      term: 4,
      membership: { voters: ['a', 'b', 'c'], learners: [] },
      data: text('state'),
    },
  },
  { type: 'heartbeat', term: 4, from: 'a', to: 'b', commit: 9, readRound: 2 },
];

const primary = signingCrypto(1);
const digest = sha256(text('proposal'));
const prePrepare = signMessage(primary, {
  type: 'pre-prepare',
  group: 'invoices/0',
  epoch: 0,
  from: 0,
  view: 0,
  seq: 1,
  digest,
  proposal: { view: 0, proposer: 'node1', timestamp: 1, requests: [text('r1'), text('r2')], systemIndex: 3 },
});
const prepare = signMessage(signingCrypto(2), {
  type: 'prepare',
  group: 'invoices/0',
  epoch: 0,
  from: 1,
  view: 0,
  seq: 1,
  digest,
});
const certified = {
  header: certifiedHeader,
  signatures: chain[0]!.certificate.signatures.map((entry) => ({ ...entry })),
};
const pbftMessages: PbftMessage[] = [
  { type: 'commit', group: 'g', epoch: 2, from: 3, view: 1, seq: 7, digest },
  { type: 'block-vote', group: 'g', epoch: 0, from: 1, header: certifiedHeader },
  {
    type: 'view-change',
    group: 'g',
    epoch: 0,
    from: 2,
    newView: 1,
    stable: certified,
    prepared: [{ prePrepare, prepares: [prepare] }],
  },
  {
    type: 'new-view',
    group: 'g',
    epoch: 0,
    from: 1,
    view: 1,
    viewChanges: [prepare],
    prePrepares: [prePrepare],
  },
  {
    type: 'status',
    group: 'g',
    epoch: 0,
    from: 0,
    view: 1,
    inViewChange: true,
    lastExecuted: 4,
    lastCertified: 4,
    stableSeq: 0,
  },
  { type: 'fetch-blocks', group: 'g', epoch: 0, from: 0, fromSeq: 1, count: 5 },
  { type: 'blocks', group: 'g', epoch: 0, from: 0, blocks: [{ certified, requests: [text('r1')] }] },
];
const pbftEnvelopes = [prePrepare, prepare, ...pbftMessages.map((entry) => signMessage(primary, entry))];

const harness = new Harness();
const sdtTransactions = [
  harness.publish('alice', [
    message({ id: 'a', recipients: ['bob', 'carol'] }),
    message({ id: 'b', key: null }),
  ]),
  harness.publish('bob', [message({ id: 'c', headers: {} })]),
  harness.confirm('bob', [{ id: 'a', contentRoot: contentRoot('content of a') }]),
];
// Results of every kind: accepted and rejected messages, a delivery, and a refused transaction.
const sdtResults = [
  ...harness.run(sdtTransactions.slice(0, 2)).results,
  ...harness.run([sdtTransactions[2]!, sdtTransactions[0]!, text('garbage')]).results,
];

const fetchRequests = [
  encodeFetchRequest(
    {
      requester: 'bob',
      partitionId: 'invoices/0',
      id: 'm-1',
      nonce: nonce(5),
      timestamp: 1_700_000_000_000,
    },
    signing.signer(keys.bob),
  ),
];

const topicGroup = topicGroupId('t');
const registryEntries = [
  adminEntry(
    signedAdmin('newcorp', {
      kind: 'registerOrganization',
      roles: ['member', 'auditor'],
      signingKeys: [connectorKey('newcorp').publicKey],
      encryptionKey: encryptionKey('newcorp'),
    }),
  ),
  adminEntry(signedAdmin('alpha', createOrders())),
  adminEntry(signedAdmin('alpha', { kind: 'setPolicy', policy: { ...policy } }, { group: topicGroup }), 2),
  blocksEntry('t/0', validChain(2).map(encodeBlock)),
];
const registryResults = [
  encodeRegistryResult({ status: 'OK' }),
  encodeRegistryResult({ status: 'OK', detail: '2 blocks' }),
  encodeRegistryResult({ status: 'REJECTED', reason: 'REPLAY', detail: 'nonce used' }),
];

const receipt = proofReceipt(chain);

const senderKey = signingKeyFromSeed(new Uint8Array(32).fill(9));
const chunkHashes = Uint8Array.from([...sha256(text('chunk 0')), ...sha256(text('chunk 1'))]);
const envelopeHeaders = [
  encodeEnvelopeHeader(
    signEnvelopeHeader(signing.signer(senderKey), {
      version: envelopeVersion,
      payloadId: 'payload-1',
      senderOrgId: 'alice',
      contentType: 'application/octet-stream',
      chunkBytes: 16,
      keyCommitment: sha256(text('data key')),
      recipients: [
        { orgId: 'bob', encapsulatedKey: new Uint8Array(32).fill(1), wrappedKey: new Uint8Array(48).fill(2) },
        {
          orgId: 'carol',
          encapsulatedKey: new Uint8Array(32).fill(3),
          wrappedKey: new Uint8Array(48).fill(4),
        },
      ],
      chunkCount: 2,
      plaintextBytes: 20,
      chunkHashes,
      merkleRoot: chunkHashesRoot(chunkHashes),
    }),
  ),
];

const cases: DecoderCase[] = [
  decoderCase(
    'decodeCanonical',
    (bytes) => decodeCanonical(bytes),
    encodeCanonical,
    canonicalSamples.map(encodeCanonical),
  ),
  decoderCase(
    'decodeBlock',
    (bytes) => decodeBlock(bytes),
    encodeBlock,
    [...validChain(2), ...chain].map(encodeBlock),
  ),
  decoderCase('decodeRaftMessage', decodeRaftMessage, encodeRaftMessage, raftMessages.map(encodeRaftMessage)),
  decoderCase('pbft decodeEnvelope', decodeEnvelope, encodeEnvelope, pbftEnvelopes.map(encodeEnvelope)),
  decoderCase(
    'pbft decodeBody',
    decodeBody,
    (decoded) => signMessage(pbftCrypto, decoded).body,
    pbftEnvelopes.map((envelope) => envelope.body),
  ),
  decoderCase(
    'decodeClientRequest',
    (bytes) => decodeClientRequest(bytes, messageLimits.requestBytesMax),
    (request) =>
      encodeClientRequest(
        { group: request.group, client: request.client, seq: request.seq, operation: request.operation },
        () => request.signature,
      ),
    chain.flatMap((block) => block.transactions),
  ),
  decoderCase(
    'decodeTransaction',
    decodeTransaction,
    (value) => encodeWith(transactionSchema, value),
    sdtTransactions,
  ),
  decoderCase(
    'decodeTransactionResult',
    decodeTransactionResult,
    (value) => encodeWith(transactionResultSchema, value),
    sdtResults,
  ),
  decoderCase(
    'decodeFetchRequest',
    decodeFetchRequest,
    (value) => encodeWith(fetchRequestSchema, value),
    fetchRequests,
  ),
  decoderCase('decodeRegistryEntry', decodeRegistryEntry, encodeRegistryEntry, registryEntries),
  decoderCase('decodeRegistryResult', decodeRegistryResult, encodeRegistryResult, registryResults),
  decoderCase(
    'RegistryView.decode',
    (bytes) => RegistryView.decode(bytes),
    (view) => view.encode(),
    [RegistryView.fromGenesis(testGenesis()).encode()],
    'node addresses are not checked for host:port on decode (see the regression case below)',
  ),
  decoderCase('decodeDeliveryReceipt', decodeDeliveryReceipt, encodeDeliveryReceipt, [
    encodeDeliveryReceipt(receipt),
  ]),
  decoderCase('decodeAcceptanceProof', decodeAcceptanceProof, encodeAcceptanceProof, [
    encodeAcceptanceProof(receipt.acceptance),
  ]),
  decoderCase('decodeEnvelopeHeader', decodeEnvelopeHeader, encodeEnvelopeHeader, envelopeHeaders),
];

describe.each(cases)('$name', (decoder) => {
  it('round-trips every valid encoding byte for byte', () => {
    expect(decoder.valid.length).toBeGreaterThan(0);
    for (const bytes of decoder.valid) {
      expect(toHex(decoder.roundTrip(bytes))).toBe(toHex(bytes));
    }
  });

  it('random bytes: a value or a LedgerbusError, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        expectOnlyLedgerbusErrors(decoder.name, bytes, () => decoder.decode(bytes));
      }),
      { numRuns: 400 },
    );
  });

  it('random bytes behind a valid CBOR map head: a value or a LedgerbusError', () => {
    // Pure noise rarely gets past the CBOR layer; a map head pushes it into the schema checks.
    fc.assert(
      fc.property(fc.integer({ min: 0xa1, max: 0xb7 }), fc.uint8Array({ maxLength: 256 }), (head, tail) => {
        const bytes = Uint8Array.from([head, ...tail]);
        expectOnlyLedgerbusErrors(decoder.name, bytes, () => decoder.decode(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it('mutated valid encodings: a value or a LedgerbusError, and what decodes re-encodes identically', () => {
    fc.assert(
      fc.property(fc.nat({ max: decoder.valid.length - 1 }), mutations, (index, changes) => {
        const bytes = mutateAll(decoder.valid[index]!, changes);
        let decoded = false;
        expectOnlyLedgerbusErrors(decoder.name, bytes, () => {
          decoder.decode(bytes);
          decoded = true;
        });
        // Canonical decoding accepts exactly one encoding per value, so a mutant that still decodes
        // must be the canonical encoding of what it decodes to.
        if (decoded && decoder.lossy === undefined) {
          let again: Uint8Array | undefined;
          expectOnlyLedgerbusErrors(`${decoder.name} re-encode`, bytes, () => {
            again = decoder.roundTrip(bytes);
          });
          expect(again === undefined ? undefined : toHex(again), `mutant ${toHex(bytes)}`).toBe(toHex(bytes));
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('regressions found by the mutation runs', () => {
  // Found by 'RegistryView.decode > mutated valid encodings' (a ':' of a node address set to 0x00).
  // registrySnapshotSchema took any string as a node address, and RegistryView splits it at its
  // last ':', so "127.0.0.1" decoded to host "127.0.0." and port NaN. Every schema holding a node
  // address now uses the admin schema's host:port pattern. The bytes are built around the schema,
  // as a peer could send them.
  it('RegistryView.decode refuses, or round-trips, a node address without a port', () => {
    const snapshot = RegistryView.fromGenesis(testGenesis()).toSnapshot();
    const bytes = encodeCanonical({
      ...snapshot,
      nodes: snapshot.nodes.map((node, index) => (index === 0 ? { ...node, address: '127.0.0.1' } : node)),
    } as unknown as CborValue);
    let view: RegistryView | undefined;
    try {
      view = RegistryView.decode(bytes);
    } catch (error) {
      expect(isLedgerbusError(error)).toBe(true);
      return;
    }
    expect(view.node('n1')?.port).not.toBeNaN();
    expect(toHex(view.encode())).toBe(toHex(bytes));
  });
});

// ---- generated canonical values ------------------------------------------------------------------

const { value: cborValue } = fc.letrec<{ value: CborValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.maxSafeInteger(),
    fc.string({ unit: 'grapheme' }),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 8 }), tie('value'), {
      maxKeys: 5,
      noNullPrototype: true,
    }),
  ),
}));

describe('decodeCanonical on generated values', () => {
  it('decode(encode(x)) re-encodes to identical bytes', () => {
    fc.assert(
      fc.property(cborValue, (value) => {
        const bytes = encodeCanonical(value);
        expect(bytesEqual(encodeCanonical(decodeCanonical(bytes)), bytes)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('mutated encodings of generated values: a value or a LedgerbusError', () => {
    fc.assert(
      fc.property(cborValue, mutations, (value, changes) => {
        const bytes = mutateAll(encodeCanonical(value), changes);
        expectOnlyLedgerbusErrors('decodeCanonical', bytes, () => decodeCanonical(bytes));
      }),
      { numRuns: 500 },
    );
  });
});

// ---- frames ---------------------------------------------------------------------------------------

/** Splits `bytes` at the given cut points (taken modulo the length), keeping every byte once, in order. */
function chunked(bytes: Uint8Array, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => (bytes.length === 0 ? 0 : cut % (bytes.length + 1))))].sort(
    (a, b) => a - b,
  );
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(Buffer.from(bytes.subarray(start, point)));
    start = point;
  }
  return chunks;
}

/** What the stream says, read naively from one contiguous buffer: frames, then whether it overflows. */
function referenceFrames(bytes: Uint8Array, frameBytesMax: number): { frames: string[]; oversize: boolean } {
  const view = Buffer.from(bytes);
  const frames: string[] = [];
  let at = 0;
  while (at + 4 <= view.length) {
    const length = view.readUInt32BE(at);
    if (length > frameBytesMax) return { frames, oversize: true };
    if (at + 4 + length > view.length) break;
    frames.push(toHex(view.subarray(at + 4, at + 4 + length)));
    at += 4 + length;
  }
  return { frames, oversize: false };
}

describe('FrameDecoder', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const stream = fc.oneof(
    fc.uint8Array({ maxLength: 600 }),
    // Well-formed frames with a corrupted tail: most random prefixes are oversize at once.
    fc
      .tuple(fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 6 }), fc.uint8Array({ maxLength: 12 }))
      .map(([payloads, tail]) =>
        Uint8Array.from([...payloads.flatMap((payload) => [...encodeFrame(payload)]), ...tail]),
      ),
  );

  it('any chunking of any bytes: the reference frames, or Oversize; never a larger buffer than the limit', () => {
    const allocUnsafe = vi.spyOn(Buffer, 'allocUnsafe');
    const alloc = vi.spyOn(Buffer, 'alloc');
    fc.assert(
      fc.property(
        stream,
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.constantFrom(0, 1, 16, 64, 100, 4096),
        (bytes, cuts, frameBytesMax) => {
          allocUnsafe.mockClear();
          alloc.mockClear();
          const decoder = new FrameDecoder({ frameBytesMax });
          const frames: string[] = [];
          let failure: unknown;
          for (const chunk of chunked(bytes, cuts)) {
            try {
              frames.push(...decoder.push(chunk).map((frame) => toHex(frame)));
            } catch (error) {
              failure = error;
              break;
            }
          }
          const reference = referenceFrames(bytes, frameBytesMax);
          // A chunk that completed frames before the bad header returns them and marks the failure.
          failure ??= decoder.failed;
          if (failure !== undefined) {
            if (!isLedgerbusError(failure, 'OVERSIZE')) {
              expect.fail(`FrameDecoder threw ${String(failure)} on input ${toHex(bytes)}`);
            }
            expect(reference.oversize).toBe(true);
            expect(decoder.pendingBytes).toBe(0);
            // Every frame completed before the bad header is handed over, whatever the chunking.
            expect(frames).toEqual(reference.frames);
            // After an oversize header the stream has no framing left: the decoder stays failed.
            expect(() => decoder.push(Buffer.alloc(1))).toThrow();
          } else {
            expect(reference.oversize).toBe(false);
            expect(frames).toEqual(reference.frames);
          }
          for (const call of [...allocUnsafe.mock.calls, ...alloc.mock.calls]) {
            expect(call[0]).toBeLessThanOrEqual(Math.max(frameBytesMax, 4));
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('a huge length prefix is refused as soon as its header is complete', () => {
    fc.assert(
      fc.property(fc.integer({ min: 4097, max: 0xffff_ffff }), fc.nat({ max: 3 }), (length, split) => {
        const header = Buffer.alloc(4);
        header.writeUInt32BE(length, 0);
        const decoder = new FrameDecoder({ frameBytesMax: 4096 });
        expect(decoder.push(header.subarray(0, split))).toEqual([]);
        expect(() => decoder.push(header.subarray(split))).toThrow(
          expect.objectContaining({ code: 'OVERSIZE' }) as Error,
        );
      }),
      { numRuns: 300 },
    );
  });
});
