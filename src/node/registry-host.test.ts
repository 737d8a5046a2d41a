import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDevnetLayout } from '../cli/devnet-layout.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { randomBytes } from 'node:crypto';
import { encodeWith } from '../codec/index.js';
import { SigningDomain, generateSigningKey } from '../crypto/index.js';
import {
  AdminReject,
  SYSTEM_GROUP,
  adminTransactionSchema,
  defaultQuotas,
  signAdminTransaction,
} from '../registry/admin-transactions.js';
import { adminClockWindowMs } from '../registry/nonce-window.js';
import { createLogger } from '../runtime/logger.js';
import { RegistryHost } from './registry-host.js';

let directory: string;
let network: string;
const hosts = new Map<string, RegistryHost>();

/**
 * The registry hosts of a devnet's nodes in one process, their Raft messages delivered in memory,
 * ticked until each of them knows the __system leader. No node has a link for requests to another.
 */
beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'ledgerbus-registry-host-'));
  const layout = ensureDevnetLayout({ directory, basePort: 1, messageBytesMax: 1024 * 1024 });
  const genesis = layout.network.genesis;
  network = genesis.network;
  for (const node of genesis.nodes) {
    hosts.set(
      node.id,
      new RegistryHost({
        selfNodeId: node.id,
        genesis,
        dataDirectory: join(directory, `${node.id}-raft`),
        logger: createLogger({ name: node.id, level: 'silent' }),
        sendRaft: (to, groupId, bytes) => queueMicrotask(() => hosts.get(to)?.receive(groupId, bytes)),
        requestPeer: () => Promise.reject(new Error('no requests between these hosts')),
        linked: () => false,
        localBlocks: () => undefined,
      }),
    );
  }
  for (let tick = 0; tick < 2_000; tick++) {
    if ([...hosts.values()].every((host) => host.leaderOf(SYSTEM_GROUP) !== '')) return;
    for (const host of hosts.values()) host.tick();
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error('no __system leader was elected');
}, 30_000);

afterAll(() => {
  for (const host of hosts.values()) host.close();
  rmSync(directory, { recursive: true, force: true });
});

describe('RegistryHost', () => {
  it('names the leader it knows in details.leader of a NOT_LEADER (the leader was unreachable)', async () => {
    const leader = [...hosts.values()][0]!.leaderOf(SYSTEM_GROUP);
    const [followerId, follower] = [...hosts].find(([id]) => id !== leader)!;
    expect(follower.leaderOf(SYSTEM_GROUP)).toBe(leader);
    const error = await follower.propose(SYSTEM_GROUP, new Uint8Array([1]), true).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(LedgerbusError);
    expect(error).toMatchObject({ code: ErrorCode.NotLeader, retriable: true, details: { leader } });
    expect((error as LedgerbusError).message).toContain(`not reachable from ${followerId}`);
  });

  it('refuses an admin transaction stamped further ahead of its clock than the replay window (CLOCK_SKEW), before the log', async () => {
    const host = hosts.get([...hosts.values()][0]!.leaderOf(SYSTEM_GROUP))!;
    const signer = SigningDomain.of(network).signer(generateSigningKey());
    const stamp = (aheadMs: number): Uint8Array =>
      encodeWith(
        adminTransactionSchema,
        signAdminTransaction(
          {
            group: SYSTEM_GROUP,
            organization: 'org1',
            nonce: randomBytes(16),
            timestamp: Date.now() + aheadMs,
            action: { kind: 'setQuotas', quotas: defaultQuotas },
          },
          signer,
        ),
      );
    const applied = host.systemApplied;
    const error = await host.submitAdmin(stamp(adminClockWindowMs + 60_000)).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toMatchObject({ code: ErrorCode.ClockSkew });
    expect((error as Error).message).toMatch(/ahead of this node's clock/);
    expect(host.systemApplied).toBe(applied);
    // One inside the window reaches the state machine (which refuses the unknown key, not the clock).
    const { result } = await host.submitAdmin(stamp(adminClockWindowMs - 60_000));
    expect(result).toMatchObject({ status: 'REJECTED', reason: AdminReject.SigningKeyUnknown });
  });
});
