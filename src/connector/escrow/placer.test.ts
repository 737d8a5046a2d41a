import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { encodeWith } from '../../codec/index.js';
import {
  CHUNK_RECEIPT_SIGNING_TYPE,
  chunkReceiptPayload,
  escrowMetadataSchema,
} from '../../contracts/escrow/transactions.js';
import type { EscrowMetadata } from '../../contracts/escrow/transactions.js';
import type { ChunkPutRequest } from '../../contracts/escrow/chunk-requests.js';
import type { EscrowPolicy } from '../../contracts/registry.js';
import {
  escrowBlobPrefix,
  escrowKeys,
  openMasterTable,
  openShare,
  rankHolders,
  splitEscrowBlob,
  splitSecret,
  verifyShare,
} from '../../crypto/escrow/index.js';
import type { MasterTable } from '../../crypto/escrow/index.js';
import { decryptPayload } from '../../crypto/envelope/index.js';
import { sha256 } from '../../crypto/hash.js';
import { generateSigningKey } from '../../crypto/index.js';
import { ErrorCode, LedgerbusError } from '../../errors.js';
import { RegistryView } from '../../registry/registry-view.js';
import { escrowCandidates } from './candidates.js';
import { EscrowPlacer } from './placer.js';
import type { EscrowPlaceInput } from './placer.js';
import { SentEscrowStore } from './sent-escrow.js';
import { escrowGroup, escrowTopic, placerHarness, topicPolicy } from './testing/placer-harness.js';
import type { PlacerHarness, PutAnswer, StoredEscrowPayload } from './testing/placer-harness.js';

let harness: PlacerHarness;
let nextId = 0;

beforeAll(async () => {
  harness = await placerHarness();
});
afterAll(async () => {
  await harness.close();
});
beforeEach(() => {
  harness.route = harness.deliver;
  harness.calls.length = 0;
});

function placer(chunksInFlight?: number): EscrowPlacer {
  return new EscrowPlacer({ ...harness.sender, session: harness.session, chunksInFlight });
}

function inputFor(stored: StoredEscrowPayload, policy: EscrowPolicy = topicPolicy): EscrowPlaceInput {
  return {
    topic: escrowTopic,
    partition: 0,
    group: escrowGroup,
    id: stored.id,
    policy,
    secret: stored.secret,
    encodedHeader: stored.encodedHeader,
    storageKey: stored.storageKey,
    ciphertextBytes: stored.ciphertextBytes,
  };
}

async function storeMessage(bytes = 20_000): Promise<StoredEscrowPayload> {
  return harness.storePayload(`m${++nextId}`, new Uint8Array(randomBytes(bytes)));
}

/** The escrowed blob as the sender cut it: the framed header, then the stored ciphertext. */
async function blobOf(stored: StoredEscrowPayload): Promise<Buffer> {
  const parts: Buffer[] = [Buffer.from(escrowBlobPrefix(stored.encodedHeader))];
  for await (const part of await harness.sender.storage.get(stored.storageKey)) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

function openTable(stored: StoredEscrowPayload, metadata: EscrowMetadata): MasterTable {
  const { masterTableKey } = escrowKeys(stored.secret.secret, {
    network: harness.sender.signer.domain.network,
    sender: harness.sender.organization,
    id: stored.id,
  });
  expect(sha256(metadata.masterTable)).toEqual(metadata.masterTableHash);
  return openMasterTable(metadata.masterTable, masterTableKey);
}

/** The holders `placement` gives chunk `chunk`, in order. */
function holdersOf(metadata: EscrowMetadata, chunk: number, replicas: number): string[] {
  return [...metadata.placement.subarray(chunk * replicas, (chunk + 1) * replicas)].map(
    (index) => metadata.holders[index] as string,
  );
}

/** Every receipt in the table is its holder's registered key's signature over this very chunk. */
function expectReceiptsValid(stored: StoredEscrowPayload, table: MasterTable): void {
  const { registry, signer, organization } = harness.sender;
  for (const [chunkIndex, chunk] of table.chunks.entries()) {
    for (const receipt of chunk.receipts) {
      const keys = registry.organization(receipt.holder)?.signingKeys ?? [];
      expect(keys.some((key) => Buffer.from(key).equals(receipt.signerKey))).toBe(true);
      const payload = chunkReceiptPayload({
        holder: receipt.holder,
        sender: organization,
        id: stored.id,
        chunkIndex,
        chunkHash: chunk.hash,
      });
      expect(
        signer.domain.verify(receipt.signerKey, CHUNK_RECEIPT_SIGNING_TYPE, payload, receipt.signature),
      ).toBe(true);
    }
  }
}

describe('EscrowPlacer', () => {
  it('places every chunk on `replicas` distinct ranked holders, none the sender, with verified receipts', async () => {
    const stored = await storeMessage();
    const metadata = await placer().place(inputFor(stored));
    const blob = await blobOf(stored);
    const { chunkBytes, replicas } = topicPolicy;
    expect(metadata.blobBytes).toBe(blob.length);
    expect(metadata.chunkCount).toBe(Math.ceil(blob.length / chunkBytes));
    expect(metadata.placement.length).toBe(metadata.chunkCount * replicas);
    expect(new Set(metadata.holders).size).toBe(metadata.holders.length);
    expect(metadata.holders).not.toContain(harness.sender.organization);
    const table = openTable(stored, metadata);
    expect(table.chunks).toHaveLength(metadata.chunkCount);
    const candidates = escrowCandidates(harness.sender.registry, harness.sender.organization);
    for (let c = 0; c < metadata.chunkCount; c++) {
      const bytes = blob.subarray(c * chunkBytes, (c + 1) * chunkBytes);
      const chunk = table.chunks[c];
      expect(chunk?.hash).toEqual(sha256(bytes));
      expect(chunk?.size).toBe(bytes.length);
      const placed = holdersOf(metadata, c, replicas);
      expect(new Set(placed).size).toBe(replicas);
      expect(placed).toEqual(rankHolders(sha256(bytes), candidates).slice(0, replicas));
      expect(chunk?.receipts.map((receipt) => receipt.holder)).toEqual(placed);
      // Each holder really keeps the chunk it acknowledged.
      for (const holder of placed) {
        const row = harness.holders.get(holder)?.holder.chunks.chunk(escrowGroup, stored.id, c, 'org1');
        expect(row?.hash).toBe(Buffer.from(sha256(bytes)).toString('hex'));
      }
    }
    expectReceiptsValid(stored, table);
    expect(harness.calls).toHaveLength(metadata.chunkCount * replicas);
    // The metadata fits the contract's schema as it is published.
    expect(() => encodeWith(escrowMetadataSchema, metadata)).not.toThrow();
  });

  it('seals each share to its holder: it opens, verifies against the commitments, and the secret decrypts the blob', async () => {
    const stored = await storeMessage();
    const metadata = await placer().place(inputFor(stored));
    expect(metadata.commitments).toEqual(stored.secret.commitments);
    expect(metadata.shares).toHaveLength(topicPolicy.shares);
    expect(new Set(metadata.shares.map((entry) => entry.holder)).size).toBe(topicPolicy.shares);
    for (const [i, entry] of metadata.shares.entries()) {
      const key = harness.holders.get(entry.holder)?.context.encryptionKey;
      expect(key).toBeDefined();
      const value = await openShare(entry.share, key!, {
        network: harness.sender.signer.domain.network,
        sender: harness.sender.organization,
        id: stored.id,
        holder: entry.holder,
        purpose: 'escrow',
      });
      expect(verifyShare(metadata.commitments, { index: i + 1, value })).toBe(true);
      expect(verifyShare(metadata.commitments, { index: i + 2, value })).toBe(false);
    }
    // What an auditor would do with the secret and the chunks the holders keep.
    const table = openTable(stored, metadata);
    const chunks = await Promise.all(
      table.chunks.map(async (chunk, c) => {
        const holder = holdersOf(metadata, c, topicPolicy.replicas)[0] as string;
        const parts = harness.holders.get(holder)!;
        const row = parts.holder.chunks.chunk(escrowGroup, stored.id, c, 'org1')!;
        const pieces: Buffer[] = [];
        for await (const piece of await parts.context.storage.get(row.storage_key))
          pieces.push(piece as Buffer);
        return Buffer.concat(pieces);
      }),
    );
    const { header, ciphertext } = await splitEscrowBlob(Readable.from(chunks));
    expect(header).toEqual(stored.encodedHeader);
    const { dataKey } = escrowKeys(stored.secret.secret, {
      network: harness.sender.signer.domain.network,
      sender: harness.sender.organization,
      id: stored.id,
    });
    const plain: Buffer[] = [];
    const stream = decryptPayload({
      header: stored.header,
      ciphertext,
      senderPublicKey: harness.sender.signer.publicKey,
      signing: harness.sender.signer.domain,
      dataKey,
    });
    for await (const piece of stream) plain.push(piece as Buffer);
    expect(Buffer.concat(plain).equals(stored.plaintext)).toBe(true);
  });

  it('replaces a holder that is down by the next ranked one', async () => {
    const down = 'org3';
    harness.route = async (organization, body, request) => {
      if (organization === down) {
        throw new LedgerbusError(ErrorCode.ConnectionClosed, `no connector of ${down} serves now`, {
          retriable: true,
        });
      }
      return harness.deliver(organization, body, request);
    };
    const stored = await storeMessage();
    const metadata = await placer().place(inputFor(stored));
    const blob = await blobOf(stored);
    const candidates = escrowCandidates(harness.sender.registry, harness.sender.organization);
    let replaced = 0;
    for (let c = 0; c < metadata.chunkCount; c++) {
      const hash = sha256(blob.subarray(c * topicPolicy.chunkBytes, (c + 1) * topicPolicy.chunkBytes));
      const ranking = rankHolders(hash, candidates);
      if (ranking.slice(0, topicPolicy.replicas).includes(down)) replaced++;
      expect(holdersOf(metadata, c, topicPolicy.replicas)).toEqual(
        ranking.filter((holder) => holder !== down).slice(0, topicPolicy.replicas),
      );
    }
    // The test only means something if the down holder was asked (and passed over) at least once.
    expect(replaced).toBeGreaterThan(0);
    expect(harness.calls.filter((call) => call.organization === down)).toHaveLength(replaced);
    expect(metadata.holders).not.toContain(down);
  });

  /** What a misbehaving holder answers instead of its receipt for the chunk `request` placed. */
  const forgeries: [string, (request: ChunkPutRequest, answer: PutAnswer) => PutAnswer][] = [
    [
      "the holder's real key over another chunk",
      (request, answer) => {
        const payload = chunkReceiptPayload({
          holder: answer.holder,
          sender: request.requester,
          id: request.id,
          chunkIndex: request.chunkIndex,
          chunkHash: new Uint8Array(32),
        });
        const signer = harness.holders.get(answer.holder)!.context.signer;
        return { ...answer, signature: signer.sign(CHUNK_RECEIPT_SIGNING_TYPE, payload) };
      },
    ],
    [
      'a key not registered for the holder, over the right chunk',
      (request, answer) => {
        const signer = harness.sender.signer.domain.signer(generateSigningKey());
        const payload = chunkReceiptPayload({
          holder: answer.holder,
          sender: request.requester,
          id: request.id,
          chunkIndex: request.chunkIndex,
          chunkHash: request.chunkHash,
        });
        return {
          holder: answer.holder,
          signerKey: signer.publicKey,
          signature: signer.sign(CHUNK_RECEIPT_SIGNING_TYPE, payload),
        };
      },
    ],
    ['a receipt naming another holder', (_request, answer) => ({ ...answer, holder: 'org3' })],
  ];

  it.each(forgeries)(
    'does not count a forged receipt (%s): that holder is replaced too',
    async (_what, forge) => {
      const forger = 'org2';
      harness.route = async (organization, body, request) => {
        const answer = await harness.deliver(organization, body, request);
        return organization === forger ? forge(request, answer) : answer;
      };
      const stored = await storeMessage();
      const metadata = await placer().place(inputFor(stored));
      expect(harness.calls.some((call) => call.organization === forger)).toBe(true);
      expect(metadata.holders).not.toContain(forger);
      for (let c = 0; c < metadata.chunkCount; c++) {
        expect(holdersOf(metadata, c, topicPolicy.replicas).sort()).toEqual(['org3', 'org4']);
      }
      expectReceiptsValid(stored, openTable(stored, metadata));
    },
  );

  it("fails with the last holder's error when too few holders answer for a chunk", async () => {
    harness.route = async (organization, body, request) => {
      if (organization !== 'org4') {
        throw new LedgerbusError(ErrorCode.ConnectionClosed, `${organization} is down`, { retriable: true });
      }
      return harness.deliver(organization, body, request);
    };
    const stored = await storeMessage();
    const error = await placer(1)
      .place(inputFor(stored))
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LedgerbusError);
    expect((error as LedgerbusError).code).toBe(ErrorCode.ConnectionClosed);
    expect((error as LedgerbusError).retriable).toBe(true);
    expect((error as LedgerbusError).message).toMatch(/reached 1 of 2 holders/);
    // With one chunk in flight, no chunk after the failed one was read or sent.
    expect(new Set(harness.calls.map((call) => call.chunkIndex))).toEqual(new Set([0]));
  });

  it('refuses with NOT_ENOUGH_HOLDERS before any chunk is sent', async () => {
    const stored = await storeMessage();
    for (const policy of [
      { ...topicPolicy, replicas: 4 },
      { ...topicPolicy, threshold: 2, shares: 4 },
    ]) {
      const input = { ...inputFor(stored, policy), secret: splitSecret(policy.threshold, policy.shares) };
      await expect(placer().place(input)).rejects.toMatchObject({
        code: ErrorCode.NotEnoughHolders,
        message: expect.stringMatching(
          /needs 4 holder organizations .* there are 3 approved members other than org1/,
        ),
      });
    }
    expect(harness.calls).toHaveLength(0);
  });

  it('refuses a payload missing from storage or of another size before any chunk is sent', async () => {
    const stored = await storeMessage();
    await expect(
      placer().place({ ...inputFor(stored), ciphertextBytes: stored.ciphertextBytes - 1 }),
    ).rejects.toMatchObject({
      code: ErrorCode.StorageCorrupt,
    });
    await expect(placer().place({ ...inputFor(stored), storageKey: '00'.repeat(32) })).rejects.toMatchObject({
      code: ErrorCode.PayloadNotFound,
    });
    expect(harness.calls).toHaveLength(0);
  });

  it(
    'never holds more than chunksInFlight chunks: 64 MiB in 1 MiB chunks',
    { timeout: 120_000 },
    async () => {
      const chunkBytes = 1024 * 1024;
      const policy = { ...topicPolicy, chunkBytes, replicas: 1 };
      const alive = new Map<number, number>();
      let aliveMax = 0;
      const signers = new Map([...harness.holders].map(([id, parts]) => [id, parts.context.signer]));
      // Other organizations' connectors without a disk: each acknowledges what it received a tenth
      // of a second later — long enough for further puts to arrive and pile up if the placer let
      // them — and the distinct chunks under way are counted.
      harness.route = async (organization, body, request) => {
        alive.set(request.chunkIndex, (alive.get(request.chunkIndex) ?? 0) + 1);
        aliveMax = Math.max(aliveMax, alive.size);
        await new Promise((resolve) => setTimeout(resolve, 100));
        const left = (alive.get(request.chunkIndex) ?? 1) - 1;
        if (left === 0) alive.delete(request.chunkIndex);
        else alive.set(request.chunkIndex, left);
        const payload = chunkReceiptPayload({
          holder: organization,
          sender: request.requester,
          id: request.id,
          chunkIndex: request.chunkIndex,
          chunkHash: sha256(body.chunk),
        });
        const signer = signers.get(organization)!;
        return {
          holder: organization,
          signerKey: signer.publicKey,
          signature: signer.sign(CHUNK_RECEIPT_SIGNING_TYPE, payload),
        };
      };
      const id = `big${++nextId}`;
      // Made a piece at a time as storage takes it: the test never holds the 64 MiB either.
      const object = await harness.sender.storage.put(
        Readable.from(
          (function* () {
            for (let i = 0; i < 64; i++) yield randomBytes(chunkBytes);
          })(),
        ),
      );
      const chunksInFlight = 3;
      const result = await placer(chunksInFlight).placeTimed({
        topic: escrowTopic,
        partition: 0,
        group: escrowGroup,
        id,
        policy,
        secret: splitSecret(policy.threshold, policy.shares),
        encodedHeader: new Uint8Array(200).fill(7),
        storageKey: object.key,
        ciphertextBytes: object.size,
      });
      expect(result.chunks).toBe(65); // the framed header pushes the blob past 64 MiB
      expect(harness.calls).toHaveLength(65 * policy.replicas);
      expect(aliveMax).toBeLessThanOrEqual(chunksInFlight);
      expect(aliveMax).toBeGreaterThan(1); // chunks did go out side by side
      expect(result.distributeMs).toBeGreaterThan(0);
      expect(result.splitMs).toBeGreaterThan(0);
    },
  );
});

describe('escrowCandidates', () => {
  it('lists approved members other than the sender, sorted', () => {
    const { registry } = harness.sender;
    expect(escrowCandidates(registry, 'org1')).toEqual(['org2', 'org3', 'org4']);
    const snapshot = registry.current.toSnapshot();
    const changed = RegistryView.fromSnapshot({
      ...snapshot,
      organizations: snapshot.organizations.map((organization) =>
        organization.id === 'org2'
          ? { ...organization, status: 'SUSPENDED' as const }
          : organization.id === 'org3'
            ? { ...organization, roles: ['auditor' as const] }
            : organization,
      ),
    });
    expect(escrowCandidates(changed, 'org4')).toEqual(['org1']);
  });
});

describe('SentEscrowStore', () => {
  it('keeps the first escrow of a message byte for byte, and forgets it on delete', async () => {
    const stored = await storeMessage(5_000);
    const metadata = await placer().place(inputFor(stored));
    const store = new SentEscrowStore(harness.sender.database.db);
    expect(store.get(escrowTopic, stored.id)).toBeUndefined();
    store.put(escrowTopic, stored.id, stored.secret, metadata);
    const again = await placer().place(inputFor(stored));
    const kept = store.put(escrowTopic, stored.id, stored.secret, again);
    expect(encodeWith(escrowMetadataSchema, kept.metadata)).toEqual(
      encodeWith(escrowMetadataSchema, metadata),
    );
    const read = store.get(escrowTopic, stored.id)!;
    expect(encodeWith(escrowMetadataSchema, read.metadata)).toEqual(
      encodeWith(escrowMetadataSchema, metadata),
    );
    expect(read.secret).toEqual(stored.secret.secret);
    expect(read.sharing).toEqual(stored.secret);
    expect(store.delete(escrowTopic, stored.id)).toBe(true);
    expect(store.get(escrowTopic, stored.id)).toBeUndefined();
    expect(store.sharing(escrowTopic, stored.id)).toBeUndefined();
  });

  it('keeps the sharing from before the payload is stored, and refuses metadata under another', async () => {
    const metadata = await placer().place(inputFor(await storeMessage(5_000)));
    const store = new SentEscrowStore(harness.sender.database.db);
    const first = splitSecret(2, 3);
    expect(store.keepSharing(escrowTopic, 'early', first)).toEqual(first);
    // A retry after a crash finds the first sharing, not the one it drew.
    expect(store.keepSharing(escrowTopic, 'early', splitSecret(2, 3))).toEqual(first);
    expect(store.get(escrowTopic, 'early')).toBeUndefined();
    expect(store.sharing(escrowTopic, 'early')).toEqual(first);
    expect(() => store.put(escrowTopic, 'early', splitSecret(2, 3), metadata)).toThrow(/sharing kept for it/);
    expect(store.get(escrowTopic, 'early')).toBeUndefined();
    expect(store.put(escrowTopic, 'early', first, metadata).sharing).toEqual(first);
  });
});
