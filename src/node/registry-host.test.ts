import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDevnetLayout } from '../cli/devnet-layout.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { SYSTEM_GROUP } from '../registry/admin-transactions.js';
import { createLogger } from '../runtime/logger.js';
import { RegistryHost } from './registry-host.js';

let directory: string;
const hosts = new Map<string, RegistryHost>();

/**
 * The registry hosts of a devnet's nodes in one process, their Raft messages delivered in memory,
 * ticked until each of them knows the __system leader. No node has a link for requests to another.
 */
beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'ledgerbus-registry-host-'));
  const layout = ensureDevnetLayout({ directory, basePort: 1, messageBytesMax: 1024 * 1024 });
  const genesis = layout.network.genesis;
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
});
