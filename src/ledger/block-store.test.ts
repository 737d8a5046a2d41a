import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from '../crypto/index.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { ErrorCode as ErrorCodeType } from '../errors.js';
import { makeBlock, makeChain, makeGroup, transactionsFor } from '../../test/ledger/fixtures.js';
import { blockHash, encodeBlock, verifyChain } from './block.js';
import type { Block } from './block.js';
import { BlockStore, rangeBlocksMax } from './block-store.js';

function expectCode(run: () => unknown, code: ErrorCodeType): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected ${code}`).toBeInstanceOf(LedgerbusError);
  expect((thrown as LedgerbusError).code).toBe(code);
}

const partitionId = 'demo/0';
const group = makeGroup({ n: 4, partitionId });
const chain = makeChain(group, 20);

let directory: string;
let path: string;
let store: BlockStore;

beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'ledgerbus-blocks-'));
  path = join(directory, 'blocks.sqlite');
  store = BlockStore.open(path, { partitionId });
});

afterEach(() => {
  store.close();
  rmSync(directory, { recursive: true, force: true });
});

function snapshot(s: BlockStore): { head: ReturnType<BlockStore['head']>; blocks: Block[] } {
  return { head: s.head(), blocks: s.range(1, Number.MAX_SAFE_INTEGER) };
}

describe('BlockStore', () => {
  it('starts empty', () => {
    expect(store.head()).toBeUndefined();
    expect(store.get(1)).toBeUndefined();
    expect(store.range(1, 10)).toEqual([]);
    expect(store.findTransaction(sha256(chain[0]!.transactions[0]!))).toBeUndefined();
  });

  it('appends, then serves get, head, range and findTransaction', () => {
    for (const block of chain) store.append(block);
    expect(store.get(5)).toEqual(chain[4]);
    expect(store.get(0)).toBeUndefined();
    expect(store.get(21)).toBeUndefined();
    expect(store.get(1.5)).toBeUndefined();
    const head = store.head()!;
    expect(head.height).toBe(20);
    expect(head.hash).toEqual(blockHash(chain[19]!.header));
    expect(head.header).toEqual(chain[19]!.header);
    expect(store.range(3, 7)).toEqual(chain.slice(2, 7));
    expect(store.range(3, 7, 2)).toEqual(chain.slice(2, 4));
    expect(store.range(18, 100)).toEqual(chain.slice(17));
    expect(store.range(7, 3)).toEqual([]);
    expectCode(() => store.range(-1, 3), ErrorCode.SchemaMismatch);
    const block7 = chain[6]!;
    expect(store.findTransaction(sha256(block7.transactions[2]!))).toEqual({ height: 7, index: 2 });
    expect(store.findTransaction(sha256(new Uint8Array([1, 2, 3])))).toBeUndefined();
    verifyChain(store.range(1, 20), () => group.membership);
  });

  it('appends many blocks in one transaction, all or nothing', () => {
    store.appendMany(chain.slice(0, 10));
    expect(store.head()!.height).toBe(10);
    const before = snapshot(store);
    const broken = [chain[10]!, chain[11]!, chain[13]!];
    expectCode(() => store.appendMany(broken), ErrorCode.BrokenChain);
    expect(snapshot(store)).toEqual(before);
    // Overlapping with what is stored is fine when the overlap is identical.
    store.appendMany(chain.slice(8, 20));
    expect(store.head()!.height).toBe(20);
  });

  it('caps range() at rangeBlocksMax', () => {
    // More blocks than the cap, so a range asking for all of them (or for more) is cut at the cap.
    const long = makeChain(group, rangeBlocksMax + 5);
    store.appendMany(long);
    const capped = store.range(1, rangeBlocksMax + 5, rangeBlocksMax * 10);
    expect(capped).toHaveLength(rangeBlocksMax);
    expect(capped[0]!.header.height).toBe(1);
    expect(capped.at(-1)!.header.height).toBe(rangeBlocksMax);
    expect(store.range(1, rangeBlocksMax + 5)).toHaveLength(rangeBlocksMax);
    // A smaller limit is honoured below the cap.
    expect(store.range(1, rangeBlocksMax + 5, 7)).toHaveLength(7);
  });

  it('rejects a conflicting block and leaves the store unchanged', () => {
    store.appendMany(chain.slice(0, 10));
    const before = snapshot(store);
    const rival = makeBlock({ group, previous: chain[3]!.header, transactions: transactionsFor(1000, 3) });
    expect(rival.header.height).toBe(5);
    expectCode(() => store.append(rival), ErrorCode.ConflictingBlock);
    // Same header, other contents (a store does not check roots, but must not take this for a repeat).
    const sameHeader = { ...chain[4]!, results: [new Uint8Array([9])] };
    expectCode(() => store.append(sameHeader), ErrorCode.ConflictingBlock);
    const rivalHead = makeBlock({
      group,
      previous: chain[8]!.header,
      transactions: transactionsFor(1000, 1),
    });
    expectCode(() => store.append(rivalHead), ErrorCode.ConflictingBlock);
    expect(snapshot(store)).toEqual(before);
    expect(store.findTransaction(sha256(rival.transactions[0]!))).toBeUndefined();
  });

  it('accepts an identical block again, also with another valid certificate, keeping the first', () => {
    store.appendMany(chain.slice(0, 5));
    store.append(chain[4]!);
    store.append(chain[2]!);
    const otherSigners = makeBlock({ group, previous: chain[3]!.header, signerIndexes: [3, 2, 1] });
    expect(otherSigners.header).toEqual(chain[4]!.header);
    store.append(otherSigners);
    expect(store.get(5)).toEqual(chain[4]);
    expect(store.head()!.height).toBe(5);
  });

  it('rejects a gap, a wrong previous hash, a wrong genesis link and another partition', () => {
    expectCode(() => store.append(chain[1]!), ErrorCode.BrokenChain);
    const badGenesis = {
      ...chain[0]!,
      header: { ...chain[0]!.header, previousHash: new Uint8Array(32).fill(1) },
    };
    expectCode(() => store.append(badGenesis), ErrorCode.BrokenChain);
    store.appendMany(chain.slice(0, 3));
    const gap = (() => {
      try {
        store.append(chain[5]!);
      } catch (error) {
        return error;
      }
      return undefined;
    })();
    expect(gap).toBeInstanceOf(LedgerbusError);
    expect((gap as LedgerbusError).code).toBe(ErrorCode.BrokenChain);
    expect((gap as LedgerbusError).retriable).toBe(true);
    const unlinked = {
      ...chain[3]!,
      header: { ...chain[3]!.header, previousHash: blockHash(chain[1]!.header) },
    };
    expectCode(() => store.append(unlinked), ErrorCode.BrokenChain);
    const foreign = makeChain(makeGroup({ n: 4, partitionId: 'demo/1' }), 1)[0]!;
    expectCode(() => store.append(foreign), ErrorCode.WrongGroup);
    expect(store.head()!.height).toBe(3);
  });

  it('rejects a malformed block before writing anything', () => {
    const malformed = { ...chain[0]!, header: { ...chain[0]!.header, transactionsRoot: new Uint8Array(5) } };
    expectCode(() => store.append(malformed), ErrorCode.SchemaMismatch);
    expect(store.head()).toBeUndefined();
  });

  it('keeps everything across close and reopen', () => {
    store.appendMany(chain.slice(0, 12));
    const before = snapshot(store);
    store.close();
    store = BlockStore.open(path, { partitionId });
    expect(snapshot(store)).toEqual(before);
    expect(store.findTransaction(sha256(chain[11]!.transactions[0]!))).toEqual({ height: 12, index: 0 });
    store.appendMany(chain.slice(12));
    expect(store.head()!.height).toBe(20);
  });

  it('refuses to open another partition’s store', () => {
    store.close();
    expectCode(() => BlockStore.open(path, { partitionId: 'demo/1' }), ErrorCode.BadConfig);
    store = BlockStore.open(path, { partitionId });
  });

  it('makes stored blocks immutable, even to direct SQL', () => {
    store.appendMany(chain.slice(0, 3));
    const db = new Database(path);
    try {
      expect(() => db.prepare("UPDATE blocks SET bytes = x'00' WHERE height = 2").run()).toThrow(/immutable/);
      expect(() => db.prepare('DELETE FROM blocks WHERE height = 3').run()).toThrow(/immutable/);
    } finally {
      db.close();
    }
  });

  describe('keeps blocks at rest deflated when that saves space', () => {
    const rowBytes = (height: number): Buffer => {
      const db = new Database(path, { readonly: true });
      try {
        return (db.prepare('SELECT bytes FROM blocks WHERE height = ?').get(height) as { bytes: Buffer })
          .bytes;
      } finally {
        db.close();
      }
    };
    // Like a block of small messages: the same field names and ids in every transaction.
    const text = (height: number, index: number): Uint8Array =>
      new TextEncoder().encode(
        JSON.stringify({ id: `message-${height}-${index}`, contentType: 'application/octet-stream' }).repeat(
          8,
        ),
      );

    it('stores a repetitive block in fewer bytes and reads back the identical block', () => {
      const first = makeBlock({ group, transactions: [0, 1, 2, 3].map((index) => text(1, index)) });
      store.append(first);
      const encoded = encodeBlock(first);
      const stored = rowBytes(1);
      expect(stored.length).toBeLessThan(encoded.length / 2);
      expect(stored[0]).toBe(0x00);
      expect(store.get(1)).toEqual(first);
      // Appending it again is still a no-op: the comparison is with the inflated encoding.
      store.append(first);
      store.close();
      store = BlockStore.open(path, { partitionId });
      expect(encodeBlock(store.get(1)!)).toEqual(encoded);
    });

    it('reads a row written before blocks were deflated beside deflated ones', () => {
      const first = makeBlock({ group, transactions: [text(1, 0)] });
      const second = makeBlock({ group, previous: first.header, transactions: [text(2, 0)] });
      store.appendMany([first, second]);
      store.close();
      const db = new Database(path);
      db.exec('DROP TRIGGER blocks_immutable_update');
      db.prepare('UPDATE blocks SET bytes = ? WHERE height = 1').run(encodeBlock(first));
      db.close();
      store = BlockStore.open(path, { partitionId });
      expect(rowBytes(1)[0]).not.toBe(0x00);
      expect(rowBytes(2)[0]).toBe(0x00);
      expect(store.range(1, 2)).toEqual([first, second]);
    });
  });

  describe('detects a damaged head on open', () => {
    function tamper(sql: string): void {
      store.close();
      const db = new Database(path);
      try {
        db.exec('DROP TRIGGER blocks_immutable_update; DROP TRIGGER blocks_immutable_delete;');
        db.exec(sql);
      } finally {
        db.close();
      }
    }

    beforeEach(() => {
      store.appendMany(chain.slice(0, 5));
    });

    afterEach(() => {
      // The outer afterEach closes `store`; give it a healthy one on a fresh file.
      store = BlockStore.open(join(directory, 'fresh.sqlite'), { partitionId });
    });

    it('bytes that do not decode', () => {
      tamper("UPDATE blocks SET bytes = x'a0' WHERE height = 5");
      expectCode(() => BlockStore.open(path, { partitionId }), ErrorCode.StorageCorrupt);
    });

    it('a deflated blob that does not inflate', () => {
      tamper("UPDATE blocks SET bytes = x'00ffffffff' WHERE height = 5");
      expectCode(() => BlockStore.open(path, { partitionId }), ErrorCode.StorageCorrupt);
    });

    it('a head stored under another hash', () => {
      tamper("UPDATE blocks SET hash = x'" + '11'.repeat(32) + "' WHERE height = 5");
      expectCode(() => BlockStore.open(path, { partitionId }), ErrorCode.StorageCorrupt);
    });

    it('a head row holding another block', () => {
      tamper('UPDATE blocks SET bytes = (SELECT bytes FROM blocks WHERE height = 4) WHERE height = 5');
      expectCode(() => BlockStore.open(path, { partitionId }), ErrorCode.StorageCorrupt);
    });

    it('a missing block below the head', () => {
      tamper('DELETE FROM transactions WHERE height = 3; DELETE FROM blocks WHERE height = 3');
      expectCode(() => BlockStore.open(path, { partitionId }), ErrorCode.StorageCorrupt);
    });

    it('a head that does not link to the block before it', () => {
      tamper("UPDATE blocks SET hash = x'" + '11'.repeat(32) + "' WHERE height = 4");
      expectCode(() => BlockStore.open(path, { partitionId }), ErrorCode.StorageCorrupt);
    });
  });
});
