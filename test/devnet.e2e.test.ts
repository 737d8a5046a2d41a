// The product as a new user meets it: `ledgerbus dev` as a real process tree (4 nodes, 4 connectors,
// TLS between all of them), then send, consume, receipt and verify through the CLI.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledgerbus } from '../src/client/index.js';
import { partitionForKey } from '../src/connector/partitioner.js';
import { counterValue, parseExposition, promtoolCheck, promtoolRequired } from '../src/testing/exposition.js';
import { cliNodeArgs } from './support/processes.js';

const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-devnet-'));
const network = join(dir, 'net', 'network.json');
let devnet: ChildProcess | undefined;

function ledgerbus(...args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [...cliNodeArgs(), ...args], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

function startDevnet(): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [...cliNodeArgs(), 'dev', '--dir', join(dir, 'net'), '--base-port', '17400'],
    {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`devnet not ready in time:\n${output}`)), 120_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes('ready')) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`devnet exited ${code}:\n${output}`)));
  });
}

function stopDevnet(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGINT');
  });
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

beforeAll(async () => {
  devnet = await startDevnet();
}, 150_000);

afterAll(async () => {
  if (devnet !== undefined) await stopDevnet(devnet);
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('ledgerbus dev, send, consume, receipt, verify', () => {
  it('moves a 1 KiB file org1 → org2 with equal sha256, and proves the delivery offline', () => {
    const payload = randomBytes(1024);
    writeFileSync(join(dir, 'one-kib.bin'), payload);
    const sent = ledgerbus(
      'send',
      '--network',
      network,
      '--as',
      'org1',
      '--topic',
      'demo',
      '--to',
      'org2',
      '--file',
      'one-kib.bin',
      '--json',
    );
    expect(sent.stderr).toBe('');
    expect(sent.status).toBe(0);
    const ack = JSON.parse(sent.stdout) as { id: string; partition: number; offset: number; height: number };
    expect(ack).toMatchObject({ partition: 0 });
    expect(ack.height).toBeGreaterThan(0);

    const consumed = ledgerbus(
      'consume',
      '--network',
      network,
      '--as',
      'org2',
      '--topic',
      'demo',
      '--from-beginning',
      '--count',
      '1',
      '--out',
      'inbox',
      '--timeout',
      '60000',
      '--json',
    );
    expect(consumed.status, consumed.stderr).toBe(0);
    const line = JSON.parse(consumed.stdout.trim().split('\n')[0] ?? '{}') as {
      id: string;
      sender: string;
      sha256: string;
      size: number;
    };
    expect(line).toMatchObject({ id: ack.id, sender: 'org1', size: 1024, sha256: sha256(payload) });
    // One directory per partition: ids are unique per partition only.
    expect(sha256(readFileSync(join(dir, 'inbox', String(ack.partition), ack.id)))).toBe(sha256(payload));

    // The delivery confirmation commits shortly after the payload is stored.
    let receipt: { deliveredTo: string[] } = { deliveredTo: [] };
    for (let attempt = 0; attempt < 40 && receipt.deliveredTo.length === 0; attempt++) {
      const result = ledgerbus(
        'receipt',
        '--network',
        network,
        '--as',
        'org1',
        ack.id,
        '--out',
        'receipt.json',
      );
      expect(result.status, result.stderr).toBe(0);
      receipt = JSON.parse(readFileSync(join(dir, 'receipt.json'), 'utf8')) as { deliveredTo: string[] };
      if (receipt.deliveredTo.length === 0) spawnSync('sleep', ['0.5']);
    }
    expect(receipt.deliveredTo).toEqual(['org2']);
    const verified = ledgerbus('verify', 'receipt.json', '--network', network, '--json');
    expect(verified.status, verified.stdout).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ valid: true, id: ack.id, deliveredTo: ['org2'] });

    // Tampered: another offset in the summary; truncated proof; foreign network.
    const bundle = JSON.parse(readFileSync(join(dir, 'receipt.json'), 'utf8')) as {
      message: { offset: number };
      proof: string;
      network: string;
    };
    writeFileSync(
      join(dir, 'tampered.json'),
      JSON.stringify({ ...bundle, message: { ...bundle.message, offset: bundle.message.offset + 1 } }),
    );
    const tampered = ledgerbus('verify', 'tampered.json', '--network', network, '--json');
    expect(tampered.status).toBe(1);
    expect(JSON.parse(tampered.stdout)).toMatchObject({ valid: false, code: 'BAD_PROOF' });
    writeFileSync(
      join(dir, 'truncated.json'),
      JSON.stringify({ ...bundle, proof: bundle.proof.slice(0, bundle.proof.length / 2) }),
    );
    const truncated = ledgerbus('verify', 'truncated.json', '--network', network, '--json');
    expect(truncated.status).toBe(1);
    expect(JSON.parse(truncated.stdout)).toMatchObject({ valid: false });
    const proof = Buffer.from(bundle.proof, 'base64');
    proof[proof.length - 40] = (proof[proof.length - 40] ?? 0) ^ 1;
    writeFileSync(join(dir, 'flipped.json'), JSON.stringify({ ...bundle, proof: proof.toString('base64') }));
    const flipped = ledgerbus('verify', 'flipped.json', '--network', network, '--json');
    expect(flipped.status).toBe(1);
    writeFileSync(join(dir, 'foreign.json'), JSON.stringify({ ...bundle, network: 'another-network' }));
    const foreign = ledgerbus('verify', 'foreign.json', '--network', network, '--json');
    expect(foreign.status).toBe(1);
    expect(JSON.parse(foreign.stdout)).toMatchObject({ valid: false, code: 'WRONG_GROUP' });
  }, 240_000);

  it('works through the SDK as an application would: produce, consume in a group, hear of deliveries', async () => {
    const sender = new Ledgerbus(Ledgerbus.configFromNetworkFile(network, 'org1'));
    const receiver = new Ledgerbus(Ledgerbus.configFromNetworkFile(network, 'org3'));
    const events = sender.events();
    const delivered: string[] = [];
    events.on('delivery.confirmed', (event) => delivered.push(`${event.id}:${event.recipient}`));
    await events.ready();
    const producer = sender.producer();
    await producer.connect();
    const values = ['alpha', 'beta', 'gamma'];
    const results = await producer.send({
      topic: 'demo',
      messages: values.map((value, index) => ({ key: `k${index}`, value: Buffer.from(value), to: ['org3'] })),
    });
    expect(results.map((result) => result.offset)).toEqual(
      [...results.map((result) => result.offset)].sort((a, b) => a - b),
    );
    const consumer = receiver.consumer({ groupId: 'e2e' });
    await consumer.connect();
    await consumer.subscribe({ topic: 'demo', fromBeginning: true });
    const seen: { id: string; sender: string; value: string }[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${seen.length} messages arrived`)), 60_000);
      void consumer.run({
        eachMessage: async ({ message }) => {
          seen.push({ id: message.id, sender: message.sender, value: message.value?.toString() ?? '' });
          if (seen.length === values.length) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
    await consumer.stop();
    expect(seen).toEqual(
      results.map((result, index) => ({ id: result.id, sender: 'org1', value: values[index] })),
    );
    const deadline = Date.now() + 30_000;
    while (delivered.length < values.length && Date.now() < deadline)
      await new Promise((done) => setTimeout(done, 200));
    expect(delivered.sort()).toEqual(results.map((result) => `${result.id}:org3`).sort());
    await events.close();
    await producer.disconnect();
  }, 120_000);

  it('serves Prometheus metrics from every node and connector: exact counters, nothing promtool objects to, and the docs scrape config', async () => {
    const file = JSON.parse(readFileSync(network, 'utf8')) as {
      organizations: { id: string; connector: { url: string; token: string } }[];
      nodes: { id: string; metrics?: string }[];
    };
    const org1 = file.organizations.find(({ id }) => id === 'org1')!;
    const scrapeConnector = async (organization: (typeof file.organizations)[number]): Promise<string> => {
      const response = await fetch(`${organization.connector.url}/metrics`, {
        headers: { authorization: `Bearer ${organization.connector.token}` },
      });
      expect(response.status).toBe(200);
      return response.text();
    };
    const scrapeNode = async (url: string): Promise<string> => (await fetch(`${url}/metrics`)).text();
    const nodeUrls = file.nodes.map(({ id, metrics }) => {
      expect(metrics, id).toBeDefined();
      return metrics!;
    });
    const acceptedAt = async (url: string): Promise<number> =>
      counterValue(parseExposition(await scrapeNode(url)), 'ledgerbus_messages_accepted_total', {
        partition: 'demo/0',
      });
    const connectorCount = async (name: string): Promise<number> =>
      counterValue(parseExposition(await scrapeConnector(org1)), name, { topic: 'demo' });

    const nodesBefore = await Promise.all(nodeUrls.map(acceptedAt));
    const acceptedBefore = await connectorCount('ledgerbus_messages_accepted_total');
    const completedBefore = await connectorCount('ledgerbus_messages_completed_total');
    const sender = new Ledgerbus(Ledgerbus.configFromNetworkFile(network, 'org1'));
    const producer = sender.producer();
    await producer.connect();
    const sent = 12;
    await producer.send({
      topic: 'demo',
      messages: Array.from({ length: sent }, (_, index) => ({
        key: `metrics-${index}`,
        value: Buffer.from(`metrics ${index}`),
        to: ['org2'],
      })),
    });
    await producer.disconnect();
    expect(await connectorCount('ledgerbus_messages_accepted_total')).toBe(acceptedBefore + sent);
    // Every replica executes every block: each counts each message once, when it has the block.
    const deadline = Date.now() + 30_000;
    let nodesAfter = await Promise.all(nodeUrls.map(acceptedAt));
    while (nodesAfter.some((value, index) => value < nodesBefore[index]! + sent) && Date.now() < deadline) {
      await new Promise((done) => setTimeout(done, 250));
      nodesAfter = await Promise.all(nodeUrls.map(acceptedAt));
    }
    expect(nodesAfter).toEqual(nodesBefore.map((value) => value + sent));
    // org2's connector confirms each; org1's delivery watcher then sees each COMPLETED, once.
    while (
      (await connectorCount('ledgerbus_messages_completed_total')) < completedBefore + sent &&
      Date.now() < deadline + 30_000
    ) {
      await new Promise((done) => setTimeout(done, 250));
    }
    expect(await connectorCount('ledgerbus_messages_completed_total')).toBe(completedBefore + sent);

    const texts = [
      ...(await Promise.all(nodeUrls.map(scrapeNode))),
      ...(await Promise.all(file.organizations.map(scrapeConnector))),
    ];
    for (const [index, text] of texts.entries()) {
      const checked = promtoolCheck(text);
      if (checked === undefined) {
        if (promtoolRequired()) throw new Error('promtool is not on PATH (.ci/run installs it)');
        continue;
      }
      expect({ index, ...checked }).toEqual({ index, status: 0, output: '' });
    }
    // A scrape without the token learns nothing.
    expect((await fetch(`${org1.connector.url}/metrics`)).status).toBe(401);

    // docs/prometheus-devnet.yml, pointed at this devnet's directory instead of .ledgerbus-dev.
    mkdirSync(join(dir, 'docs'), { recursive: true });
    const config = readFileSync(join(import.meta.dirname, '..', 'docs', 'prometheus-devnet.yml'), 'utf8');
    expect(config).toContain('../.ledgerbus-dev/org1/api-token');
    writeFileSync(
      join(dir, 'docs', 'prometheus-devnet.yml'),
      config.replaceAll('../.ledgerbus-dev/', '../net/'),
    );
    const checked = spawnSync('promtool', ['check', 'config', join(dir, 'docs', 'prometheus-devnet.yml')], {
      encoding: 'utf8',
    });
    if (checked.error === undefined) {
      expect(checked.status, checked.stdout + checked.stderr).toBe(0);
      expect(readFileSync(join(dir, 'net', 'org1', 'api-token'), 'utf8')).toBe(org1.connector.token);
    } else if (promtoolRequired()) throw checked.error;
  }, 150_000);

  it('says which connector, of which network and network file, an error came from', () => {
    const file = JSON.parse(readFileSync(network, 'utf8')) as {
      network: string;
      organizations: { id: string; connector: { url: string; token: string } }[];
    };
    const org1 = file.organizations.find(({ id }) => id === 'org1')!;
    // A network file whose token is not the one org1's connector has: another devnet's, say.
    const stale = join(dir, 'stale-network.json');
    const withToken = (token: string, url = org1.connector.url): string =>
      JSON.stringify({
        ...file,
        organizations: file.organizations.map((organization) =>
          organization.id === 'org1' ? { ...organization, connector: { url, token } } : organization,
        ),
      });
    writeFileSync(stale, withToken('not-the-token'));
    const refused = ledgerbus('topic', 'list', '--network', stale, '--as', 'org1');
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/^error UNAUTHORIZED: /);
    expect(refused.stderr).toContain(
      `connector: org1's at ${org1.connector.url} (network ${file.network}, from ${stale}): it refused the token ${stale} holds for org1`,
    );
    // Nothing listens there: the error names the address it tried.
    writeFileSync(stale, withToken(org1.connector.token, 'http://127.0.0.1:17599'));
    const closed = ledgerbus('topic', 'list', '--network', stale, '--as', 'org1');
    expect(closed.status).toBe(2);
    expect(closed.stderr).toContain(
      `connector: org1's at http://127.0.0.1:17599 (network ${file.network}, from ${stale})`,
    );
  });

  it('refuses a send to an unknown organization with a stable code', () => {
    const result = ledgerbus(
      'send',
      '--network',
      network,
      '--as',
      'org1',
      '--topic',
      'demo',
      '--to',
      'nobody',
      '--value',
      'x',
      '--json',
    );
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/error SCHEMA_MISMATCH/);
  }, 60_000);
});

describe('ledgerbus topic and org: the Raft layer through the CLI', () => {
  const as = (organization: string): string[] => ['--network', network, '--as', organization];

  it('creates a topic, describes it, refuses growth by a non-owner, grows it, moves a partition, and delivers on it', () => {
    const created = ledgerbus('topic', 'create', 'invoices', '--partitions', '2', ...as('org1'), '--json');
    expect(created.status, created.stderr).toBe(0);
    const described = ledgerbus('topic', 'describe', 'invoices', ...as('org2'), '--json');
    expect(described.status, described.stderr).toBe(0);
    const topic = JSON.parse(described.stdout) as { owner: string; partitions: { replicas: string[] }[] };
    expect(topic.owner).toBe('org1');
    expect(topic.partitions).toHaveLength(2);
    expect(topic.partitions.every((partition) => partition.replicas.length === 4)).toBe(true);

    // Only the owner (org1) or a supervisor (org4) may grow it.
    const refused = ledgerbus('topic', 'add-partitions', 'invoices', '--count', '3', ...as('org2'));
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/error ADMIN_REJECTED/);
    const grown = ledgerbus('topic', 'add-partitions', 'invoices', '--count', '3', ...as('org1'), '--json');
    expect(grown.status, grown.stderr).toBe(0);
    const after = JSON.parse(ledgerbus('topic', 'describe', 'invoices', ...as('org3'), '--json').stdout) as {
      partitions: unknown[];
    };
    expect(after.partitions).toHaveLength(3);

    // Partition 0 moves to another replica set (here: the same nodes in another order, so another
    // primary): a new epoch of its group, continuing its ledger.
    const moved = ledgerbus(
      'topic',
      'move',
      'invoices',
      '--partition',
      '0',
      '--replicas',
      'node4,node3,node2,node1',
      ...as('org1'),
      '--json',
    );
    expect(moved.status, moved.stderr).toBe(0);
    const movedTopic = JSON.parse(
      ledgerbus('topic', 'describe', 'invoices', ...as('org2'), '--json').stdout,
    ) as {
      partitions: { configEpoch: number; replicas: string[] }[];
    };
    expect(movedTopic.partitions[0]).toMatchObject({
      configEpoch: 1,
      replicas: ['node4', 'node3', 'node2', 'node1'],
    });
    const toPartitionZero = Array.from({ length: 100 }, (_, n) => `key-${n}`).find(
      (key) => partitionForKey(Buffer.from(key), 3) === 0,
    )!;
    const onMoved = ledgerbus(
      'send',
      ...as('org1'),
      '--topic',
      'invoices',
      '--to',
      'org2',
      '--key',
      toPartitionZero,
      '--value',
      'after the move',
      '--json',
    );
    expect(onMoved.status, onMoved.stderr).toBe(0);
    expect(JSON.parse(onMoved.stdout)).toMatchObject({ partition: 0 });

    // A keyed message goes to the partition Kafka's partitioner picks (murmur2 of the key mod 3).
    const sent = ledgerbus(
      'send',
      ...as('org1'),
      '--topic',
      'invoices',
      '--to',
      'org2',
      '--key',
      'customer-42',
      '--value',
      'an invoice',
      '--json',
    );
    expect(sent.status, sent.stderr).toBe(0);
    const keyed = JSON.parse(sent.stdout) as { id: string; partition: number };
    expect(keyed.partition).toBe(partitionForKey(Buffer.from('customer-42'), 3));

    // Both arrive at org2, each once: the one on the moved partition and the keyed one.
    const consumed = ledgerbus(
      'consume',
      ...as('org2'),
      '--topic',
      'invoices',
      '--from-beginning',
      '--group',
      'devnet-invoices',
      '--count',
      '2',
      '--timeout',
      '60000',
      '--json',
    );
    expect(consumed.status, consumed.stderr).toBe(0);
    const lines = consumed.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: string; partition: number; sender: string; size: number });
    const movedAck = JSON.parse(onMoved.stdout) as { id: string };
    expect(
      lines
        .map(({ id, partition, sender, size }) => ({ id, partition, sender, size }))
        .sort((a, b) => a.partition - b.partition || a.id.localeCompare(b.id)),
    ).toEqual(
      [
        { id: movedAck.id, partition: 0, sender: 'org1', size: 'after the move'.length },
        { id: keyed.id, partition: keyed.partition, sender: 'org1', size: 'an invoice'.length },
      ].sort((a, b) => a.partition - b.partition || a.id.localeCompare(b.id)),
    );
  }, 180_000);

  it('registers an organization as PENDING; only the supervisor approves it', () => {
    const signing = join(dir, 'org9-signing.key');
    const encryption = join(dir, 'org9-encryption.key');
    expect(ledgerbus('keys', 'generate', '--out', signing).status).toBe(0);
    expect(ledgerbus('keys', 'generate', '--type', 'x25519', '--out', encryption).status).toBe(0);
    const registered = ledgerbus(
      'org',
      'register',
      '--id',
      'org9',
      '--signing-key',
      signing,
      '--encryption-key',
      encryption,
      ...as('org1'),
      '--json',
    );
    expect(registered.status, registered.stderr).toBe(0);
    const statusOf = (): string => {
      const listed = JSON.parse(ledgerbus('org', 'list', ...as('org2'), '--json').stdout) as {
        organizations: { id: string; status: string }[];
      };
      return listed.organizations.find((organization) => organization.id === 'org9')?.status ?? 'missing';
    };
    expect(statusOf()).toBe('PENDING');
    const refused = ledgerbus('org', 'approve', 'org9', ...as('org2'));
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/error ADMIN_REJECTED/);
    expect(ledgerbus('org', 'approve', 'org9', ...as('org4')).status).toBe(0);
    expect(statusOf()).toBe('APPROVED');
    expect(ledgerbus('org', 'suspend', 'org9', ...as('org4')).status).toBe(0);
    expect(statusOf()).toBe('SUSPENDED');
  }, 180_000);
});
