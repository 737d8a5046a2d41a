/**
 * The partition driver over memory disks, a manual clock and a FIFO network: the node logic that
 * used to run only in real processes — holding batches until the registry indexes they name are
 * applied, closing an epoch and handing the partition to a new replica set, syncing before sending.
 */
import { describe, expect, it } from 'vitest';
import { encodeClientRequest } from '../consensus/pbft/messages.js';
import type { PbftConfig, ReplicaInfo } from '../consensus/pbft/types.js';
import { testTuning } from './testing/cluster.js';
import { merkleRoot } from '../crypto/index.js';
import { ErrorCode } from '../errors.js';
import type { Block } from '../ledger/block.js';
import { simStateMachine } from '../sim/app.js';
import type { SimRegistry } from '../sim/app.js';
import { SimKeyring } from '../sim/sim-crypto.js';
import type { SimSigner } from '../sim/sim-crypto.js';
import { PartitionDriver } from './driver.js';
import { prepareEpochStorage } from './handover.js';
import { MemoryPartitionStorage } from './storage.js';

const group = 'driver-test/0';
const tickMs = 10;

interface Member {
  readonly signer: SimSigner;
  readonly storage: MemoryPartitionStorage;
  driver: PartitionDriver<SimRegistry, never>;
  /** The registry indexes this member has applied. */
  applied: SimRegistry;
}

/** Four drivers on one FIFO network, with a shared clock and a registry each member applies alone. */
class Group {
  readonly members: Member[] = [];
  private readonly queue: { to: number; bytes: Uint8Array }[] = [];
  now = 1_700_000_000_000;
  /** The partition's epoch from this topic index on (epoch 2), if a change is registered. */
  changeAt: number | undefined;
  /** Sends seen while the sender's storage held unsynced writes. */
  unsyncedSends = 0;
  /** Timers the drivers set on the shared clock, fired by `tick`. */
  private readonly timers = new Set<{ readonly at: number; readonly callback: () => void }>();
  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Drops every message while true. */
  partitioned = false;

  constructor(
    readonly keyring: SimKeyring,
    readonly epoch: number,
    readonly replicas: readonly ReplicaInfo[],
    signers: readonly SimSigner[],
    storages?: readonly MemoryPartitionStorage[],
    base?: Block,
  ) {
    signers.forEach((signer, self) => {
      const storage = storages?.[self] ?? new MemoryPartitionStorage();
      const member: Member = {
        signer,
        storage,
        applied: { system: 0, topic: 0 },
        driver: undefined as unknown as PartitionDriver<SimRegistry, never>,
      };
      const config: PbftConfig = {
        groupId: group,
        configEpoch: epoch,
        replicas,
        self,
        ...testTuning,
        ...(base === undefined
          ? {}
          : { base: { header: base.header, signatures: base.certificate.signatures } }),
      };
      member.driver = new PartitionDriver<SimRegistry, never>({
        config,
        crypto: signer.crypto,
        storage,
        clock: {
          now: () => this.now,
          setTimeout: (callback, ms) => {
            const timer = { at: this.now + ms, callback };
            this.timers.add(timer);
            return () => this.timers.delete(timer);
          },
        },
        transport: {
          send: (to, bytes) => {
            if (storage.unsyncedCount > 0) this.unsyncedSends += 1;
            this.queue.push({ to, bytes });
          },
        },
        stateMachine: simStateMachine,
        registry: {
          at: (system, topic) =>
            system <= member.applied.system && topic <= member.applied.topic ? { system, topic } : undefined,
          indexes: () => member.applied,
          epochAt: (topic) => (this.changeAt !== undefined && topic >= this.changeAt ? epoch + 1 : epoch),
        },
      });
      this.members.push(member);
    });
  }

  static first(keyring = new SimKeyring('hmac')): Group {
    const signers = [0, 1, 2, 3].map((i) => keyring.identity(`driver-test/replica-${i}`));
    return new Group(
      keyring,
      1,
      signers.map((signer, i) => ({ id: `r${i}`, publicKey: signer.publicKey })),
      signers,
    );
  }

  tick(count = 1): void {
    for (let i = 0; i < count; i++) {
      this.now += tickMs;
      for (const timer of [...this.timers]) {
        if (timer.at > this.now) continue;
        this.timers.delete(timer);
        timer.callback();
      }
      for (const member of this.members) member.driver.tick();
      this.deliverAll();
    }
  }

  deliverAll(): void {
    for (let delivered = 0; this.queue.length > 0; delivered++) {
      if (delivered > 100_000) throw new Error('the network did not go quiet');
      const { to, bytes } = this.queue.shift()!;
      if (!this.partitioned) this.members[to]!.driver.receive(bytes);
    }
  }

  request(client: SimSigner, seq: number): Uint8Array {
    return encodeClientRequest(
      { group, client: client.publicKey, seq, operation: new Uint8Array([seq]) },
      client.sign,
    );
  }

  /** A client sends to every replica; the promise is the one replica 0 gives. */
  submit(bytes: Uint8Array): Promise<unknown> {
    const promise = this.members[0]!.driver.submit(bytes);
    for (const member of this.members.slice(1)) member.driver.receiveForwarded(bytes);
    this.deliverAll();
    return promise;
  }

  heights(): number[] {
    return this.members.map((member) => member.driver.height);
  }
}

describe('PartitionDriver', () => {
  it('holds a committed batch until its registry indexes are applied, then runs it on resume', async () => {
    const cluster = Group.first();
    const client = cluster.keyring.identity('driver-test/client');
    // Everyone but replica 3 applies __system entry 1; the primary names it in its proposal.
    for (const member of cluster.members.slice(0, 3)) member.applied = { system: 1, topic: 0 };
    const committed = cluster.submit(cluster.request(client, 1));
    cluster.tick(5);
    await expect(committed).resolves.toEqual({ height: 1, transactionIndex: 0 });
    const lagging = cluster.members[3]!;
    expect(lagging.driver.heldBatches).toBe(1);
    expect(lagging.driver.height).toBe(0);
    cluster.tick(5);
    expect(lagging.driver.height).toBe(0);

    lagging.applied = { system: 1, topic: 0 };
    lagging.driver.resume();
    cluster.tick(5);
    expect(lagging.driver.heldBatches).toBe(0);
    expect(cluster.heights()).toEqual([1, 1, 1, 1]);
    expect(lagging.storage.blocks.get(1)?.header.systemIndex).toBe(1);
  });

  it('times a waiting client out on the injected clock, and not once its request is stored', async () => {
    const cluster = Group.first();
    const client = cluster.keyring.identity('driver-test/client');
    const stored = cluster.members[0]!.driver.submit(cluster.request(client, 1));
    for (const member of cluster.members.slice(1)) member.driver.receiveForwarded(cluster.request(client, 1));
    cluster.tick(5);
    await expect(stored).resolves.toEqual({ height: 1, transactionIndex: 0 });
    expect(cluster.pendingTimers).toBe(0);

    // Alone, replica 0 cannot commit: its client gives up after commitTimeoutMs (30 s) of clock time.
    cluster.partitioned = true;
    let outcome: unknown;
    cluster.members[0]!.driver.submit(cluster.request(client, 2)).then(
      (value) => (outcome = value),
      (error: unknown) => (outcome = error),
    );
    cluster.tick(2_999);
    await Promise.resolve();
    expect(outcome).toBeUndefined();
    cluster.tick(1);
    await Promise.resolve();
    expect(outcome).toMatchObject({ code: ErrorCode.Timeout, retriable: true });
  });

  it('syncs its writes before it sends anything', () => {
    const cluster = Group.first();
    const client = cluster.keyring.identity('driver-test/client');
    for (let seq = 1; seq <= 6; seq++) void cluster.submit(cluster.request(client, seq)).catch(() => {});
    cluster.tick(20);
    expect(Math.min(...cluster.heights())).toBeGreaterThan(0);
    expect(cluster.unsyncedSends).toBe(0);
  });

  it('closes the epoch at the first batch naming a newer one, and a new replica set continues from it', async () => {
    const keyring = new SimKeyring('hmac');
    const old = Group.first(keyring);
    const client = keyring.identity('driver-test/client');
    await driveUntil(old, old.submit(old.request(client, 1)));
    // The topic group moves the partition to a new replica set at topic index 1.
    old.changeAt = 1;
    for (const member of old.members) member.applied = { system: 0, topic: 1 };
    // The request lands in the closing block (whose execution the contract rejects, EPOCH_CLOSED).
    await expect(driveUntil(old, old.submit(old.request(client, 2)))).resolves.toEqual({
      height: 2,
      transactionIndex: 0,
    });
    expect(old.members.map((member) => member.driver.closedAt)).toEqual([2, 2, 2, 2]);
    // Clients arriving at the closed epoch retry on the next one.
    await expect(old.members[0]!.driver.submit(old.request(client, 3))).rejects.toMatchObject({
      code: ErrorCode.ConnectionClosed,
      retriable: true,
    });

    // Replica 3 leaves; a new replica with an empty disk copies the partition from the global
    // ledger (here: replica 0's blocks), executing each block again.
    const joiner = keyring.identity('driver-test/replica-4');
    const joinerStorage = new MemoryPartitionStorage();
    const base = prepareEpochStorage(
      joinerStorage,
      group,
      2,
      {
        registryAt: (system, topic) => ({ system, topic }),
        epochAt: (topic) => (topic >= 1 ? 2 : 1),
        globalBlock: (height) => old.members[0]!.storage.blocks.get(height),
      },
      simStateMachine,
      merkleRoot,
    );
    expect(base?.header.height).toBe(2);
    expect(joinerStorage.blocks.head()?.height).toBe(2);

    const replicas = [...old.replicas.slice(0, 3), { id: 'r4', publicKey: joiner.publicKey }];
    const signers = [...old.members.slice(0, 3).map((member) => member.signer), joiner];
    const storages = [...old.members.slice(0, 3).map((member) => member.storage), joinerStorage];
    const next = new Group(keyring, 2, replicas, signers, storages, base);
    for (const member of next.members) member.applied = { system: 0, topic: 1 };
    await driveUntil(next, next.submit(next.request(client, 3)));
    expect(next.heights()).toEqual([3, 3, 3, 3]);
    expect(next.members[3]!.storage.blocks.get(3)?.header.configEpoch).toBe(2);
  });
});

describe('MemoryPartitionStorage', () => {
  it('loses unsynced transactions at a crash, keeps synced ones, and a torn crash keeps a prefix', () => {
    const storage = new MemoryPartitionStorage();
    const record = (key: string, seq: number) => ({
      op: 'put' as const,
      record: { key, seq, bytes: new Uint8Array([seq]) },
    });
    storage.startEpoch(1);
    storage.persist([record('a', 1)]);
    storage.sync();
    storage.persist([record('b', 2)]);
    storage.persist([record('c', 3)]);
    storage.persist([record('d', 4)]);
    // A running process reads its own unsynced writes.
    expect(keys(storage)).toEqual(['a', 'b', 'c', 'd']);
    expect(storage.crash(1)).toEqual({ unsynced: 3, kept: 1 });
    expect(keys(storage)).toEqual(['a', 'b']);

    storage.persist([record('e', 5)]);
    storage.crash();
    expect(keys(storage)).toEqual(['a', 'b']);
  });

  it('crashes in the middle of the write it was armed for', () => {
    const storage = new MemoryPartitionStorage();
    storage.crashAtWrite(2);
    storage.persist([{ op: 'put', record: { key: 'a', seq: 1, bytes: new Uint8Array() } }]);
    expect(() =>
      storage.persist([{ op: 'put', record: { key: 'b', seq: 2, bytes: new Uint8Array() } }]),
    ).toThrow('simulated crash');
    expect(storage.unsyncedCount).toBe(2);
  });
});

function keys(storage: MemoryPartitionStorage): string[] {
  return storage
    .records()
    .map((record) => record.key)
    .sort();
}

/** Ticks until `promise` settles (at most 50 ticks), then returns its outcome. */
async function driveUntil<T>(cluster: Group, promise: Promise<T>): Promise<T> {
  let settled = false;
  void promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 50 && !settled; i++) {
    cluster.tick();
    await Promise.resolve();
  }
  return promise;
}
