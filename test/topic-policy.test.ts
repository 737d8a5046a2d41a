// Issue 14 item 1: an escrow topic's policy from the CLI (and the REST API) to the registry and back,
// on 4 in-process nodes and connectors over real TLS, with the CLI run as a user runs it. The registry
// itself refuses a bad escrow policy (BAD_POLICY) signed and submitted past the connector's checks,
// and the dev network's org4 is supervisor and auditor (DESIGN §7).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TopicDescription } from '../src/connector/api-types.js';
import type { RpcPeer } from '../src/net/index.js';
import { topicGroupId } from '../src/registry/admin-transactions.js';
import { DEFAULT_TOPIC_POLICY } from '../src/registry/assignment.js';
import { adminTransaction, submitAdmin } from './security/admin-support.js';
import { SecurityNetwork, waitFor } from './security/support.js';
import type { ApiClient } from './security/support.js';
import { cliNodeArgs } from './support/processes.js';

const net = new SecurityNetwork({ name: 'topic-policy', basePort: 25720 });
const networkFile = join(net.directory, 'network.json');
const apis = new Map<string, ApiClient>();
const peers: RpcPeer[] = [];

/** The CLI as a process, acting as `organization` through its connector's REST API. */
function ledgerbus(
  organization: string,
  ...args: string[]
): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [...cliNodeArgs(), ...args, '--network', networkFile, '--as', organization],
      { cwd: net.directory, encoding: 'utf8', timeout: 120_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        done({ status: code, stdout, stderr });
      },
    );
  });
}

async function describeTopic(organization: string, name: string): Promise<TopicDescription> {
  const described = await ledgerbus(organization, 'topic', 'describe', name, '--json');
  expect(described.stderr).toBe('');
  return JSON.parse(described.stdout) as TopicDescription;
}

const defaults = { chunkBytes: 1024 * 1024, replicas: 3, threshold: 2, shares: 3, auditApprovals: 1 };

beforeAll(async () => {
  await net.startNodes();
  for (const organization of ['org1', 'org2', 'org4']) {
    await net.startConnector(organization);
    apis.set(organization, await net.startApi(organization));
  }
}, 120_000);

afterAll(async () => {
  for (const peer of peers) peer.close();
  await net.stop();
}, 60_000);

describe('escrow topic policy: CLI → registry → describe', () => {
  it('makes org4 of the dev network member, supervisor and auditor, in network.json and the registry', () => {
    const org4 = net.layout.network.organizations.find((organization) => organization.id === 'org4');
    expect(org4?.roles).toEqual(['member', 'supervisor', 'auditor']);
    expect(net.nodes[0]!.registryHost.registry.organization('org4')?.roles).toEqual([
      'member',
      'supervisor',
      'auditor',
    ]);
    expect(net.layout.network.organizations.filter((o) => o.roles.includes('auditor'))).toHaveLength(1);
  });

  it('creates an escrow topic with the defaults, and describe shows them; a standard topic says standard', async () => {
    const created = await ledgerbus(
      'org1',
      'topic',
      'create',
      'audited',
      '--partitions',
      '1',
      '--escrow',
      '--json',
    );
    expect(created.stderr).toBe('');
    expect(JSON.parse(created.stdout)).toMatchObject({ availability: 'escrow', escrow: defaults });
    const [described, text, demo, demoText] = await Promise.all([
      describeTopic('org2', 'audited'),
      ledgerbus('org2', 'topic', 'describe', 'audited'),
      describeTopic('org1', 'demo'),
      ledgerbus('org1', 'topic', 'describe', 'demo'),
    ]);
    expect(described.policy).toEqual({ ...DEFAULT_TOPIC_POLICY, availability: 'escrow', escrow: defaults });
    expect(text.stdout).toContain(
      'availability escrow: chunkBytes 1048576, replicas 3, threshold 2, shares 3, auditApprovals 1',
    );
    expect(demo.policy.availability).toBe('standard');
    expect(demo.policy).not.toHaveProperty('escrow');
    expect(demoText.stdout).toMatch(/^availability standard$/m);
  }, 240_000);

  it('takes every escrow flag, and set-policy changes only what it names, then turns escrow off', async () => {
    const flags = ['--threshold', '3', '--shares', '5', '--chunk-bytes', '64KiB', '--audit-approvals', '2'];
    const created = await ledgerbus(
      'org1',
      ...['topic', 'create', 'tuned', '--partitions', '1', '--escrow', ...flags, '--replicas', '2'],
    );
    expect(created.stdout).toContain(
      'availability escrow: chunkBytes 65536, replicas 2, threshold 3, shares 5, auditApprovals 2',
    );
    const tuned = { chunkBytes: 65536, replicas: 2, threshold: 3, shares: 5, auditApprovals: 2 };
    expect((await describeTopic('org1', 'tuned')).policy.escrow).toEqual(tuned);
    // Only the owner or a supervisor may change it: org2 is refused by the registry, org1 is not.
    const refused = await ledgerbus('org2', 'topic', 'set-policy', 'tuned', '--threshold', '4');
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/^error ADMIN_REJECTED: NOT_ALLOWED/);
    const changed = await ledgerbus('org1', 'topic', 'set-policy', 'tuned', '--threshold', '4', '--json');
    expect(changed.stderr).toBe('');
    const raised = await waitFor(
      'the new threshold in the description',
      async () => {
        const policy = (await describeTopic('org2', 'tuned')).policy;
        return policy.escrow?.threshold === 4 ? policy : undefined;
      },
      90_000,
    );
    expect(raised.escrow).toEqual({ ...tuned, threshold: 4 });
    // k above the topic's n is caught by the CLI against the topic's own parameters.
    const tooHigh = await ledgerbus('org1', 'topic', 'set-policy', 'tuned', '--threshold', '6');
    expect(tooHigh.stderr).toMatch(
      /^error SCHEMA_MISMATCH: --threshold 6 is more than --shares 5 \(the topic's\)/,
    );
    const off = await ledgerbus('org4', 'topic', 'set-policy', 'tuned', '--no-escrow');
    expect(off.stderr).toBe('');
    const standard = await waitFor(
      'escrow off in the description',
      async () => {
        const policy = (await describeTopic('org1', 'tuned')).policy;
        return policy.availability === 'standard' ? policy : undefined;
      },
      90_000,
    );
    expect(standard).not.toHaveProperty('escrow');
  }, 240_000);

  it('accepts and returns the same policy over REST, and refuses a bad one before signing', async () => {
    const api = apis.get('org2')!;
    const create = (policy: unknown) =>
      api.call('POST', '/v1/admin', {
        json: {
          kind: 'createTopic',
          name: 'rest-audited',
          partitions: 1,
          producers: [],
          consumers: [],
          policy,
        },
      });
    const outOfRange = await create({ availability: 'escrow', escrow: { shares: 17 } });
    expect(outOfRange.status).toBe(400);
    expect(outOfRange.json()).toMatchObject({ error: { code: 'SCHEMA_MISMATCH' } });
    const kAboveN = await create({ availability: 'escrow', escrow: { threshold: 4 } });
    expect(kAboveN.status).toBe(400);
    expect(kAboveN.json()).toMatchObject({ error: { code: 'BAD_CONFIG' } });
    expect(JSON.stringify(kAboveN.json())).toContain('policy.escrow.threshold');
    const ok = await create({ availability: 'escrow', escrow: { replicas: 2 } });
    expect(ok.status).toBe(200);
    const described = await api.call('GET', '/v1/topics/rest-audited');
    expect((described.json() as TopicDescription).policy).toEqual({
      ...DEFAULT_TOPIC_POLICY,
      availability: 'escrow',
      escrow: { ...defaults, replicas: 2 },
    });
  });

  it('has the registry refuse a bad escrow policy signed past the connector, as BAD_POLICY', async () => {
    const peer = await net.dial('node1', net.connectorKey('org1'));
    peers.push(peer);
    const policy = {
      ...DEFAULT_TOPIC_POLICY,
      availability: 'escrow' as const,
      escrow: { ...defaults, threshold: 4, shares: 3 },
    };
    const replicas = ['node1', 'node2', 'node3', 'node4'].map((id) => ({
      id,
      publicKey: net.node(id).publicKey,
    }));
    const create = adminTransaction('org1', net.signer('org1'), {
      kind: 'createTopic',
      name: 'forged',
      partitions: [replicas],
      producers: ['org1'],
      consumers: ['org2'],
      policy,
    });
    expect(await submitAdmin(peer, create)).toMatchObject({ status: 'REJECTED', reason: 'BAD_POLICY' });
    expect(net.nodes[0]!.registryHost.registry.topic('forged')).toBeUndefined();
    // And in a topic group: setPolicy on audited (owned by org1).
    const setPolicy = adminTransaction(
      'org1',
      net.signer('org1'),
      { kind: 'setPolicy', policy: { ...policy, escrow: { ...defaults, chunkBytes: 1024 } } },
      topicGroupId('audited'),
    );
    const answer = await submitAdmin(peer, setPolicy);
    expect(answer).toMatchObject({ status: 'REJECTED', reason: 'BAD_POLICY' });
    expect(answer.detail).toContain('policy.escrow.chunkBytes');
  });
});
