// Power cut: every node and connector process of the devnet SIGKILLed at the same instant while six
// producers write, again and again. Nothing acknowledged may be lost, because each replica fsyncs
// its block (SQLite, synchronous=FULL) before it votes or acknowledges, and each connector commits
// its outbox and its received messages before it answers. SIGKILL loses whatever a process held in
// memory (buffers, queued acknowledgements, SQLite's page cache); what the kernel already accepted
// survives it — the fsync discipline against a kernel crash is tested beside the block store
// (block-store.crash.test.ts) and by the simulator's crash-restart faults.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { loadGenesisRegistry } from '../src/node/config.js';
import { checkDeliveries, checkLedgers } from './chaos/checker.js';
import type { AckedMessage, ReceivedMessage } from './chaos/checker.js';
import { produce, receivedAll } from './chaos/load.js';
import type { Producer } from './chaos/load.js';
import { ProcessNetwork, sleep, waitFor } from './support/process-network.js';

// LEDGERBUS_POWER_CUTS raises the count for a longer run by hand; CI makes 6.
const cuts = Number(process.env['LEDGERBUS_POWER_CUTS'] ?? 6);
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-power-cut-'));
const net = new ProcessNetwork(join(dir, 'net'), 22200);
const organizations = ['org1', 'org2', 'org3', 'org4'];

beforeAll(async () => {
  await net.startAll();
}, 120_000);

afterAll(async () => {
  await net.stopAll();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('power cut', () => {
  it(`loses nothing acknowledged when every process is SIGKILLed at once, ${cuts} times under load`, async () => {
    onTestFailed(() => console.log(net.logTails(net.names, 30)));
    const acked: AckedMessage[] = [];
    let stopped = false;
    const producers: Producer[] = [
      ...[0, 1, 2].map(() => ({ sender: 'org1', recipient: 'org2', topic: 'demo', keyed: false })),
      ...[0, 1, 2].map(() => ({ sender: 'org3', recipient: 'org4', topic: 'demo', keyed: false })),
    ];
    const load = Promise.all(
      producers.map((producer, index) =>
        produce(net, producer, `cut-${Date.now()}-${index}`, acked, () => stopped),
      ),
    );
    const ackedAtCut: number[] = [];
    for (let cut = 0; cut < cuts; cut++) {
      // Cut only once writes flow again after the previous restart: a cut of an idle network tests nothing.
      const before = acked.length;
      await waitFor(
        `writes to resume before cut ${cut + 1}`,
        () => (acked.length >= before + 40 ? true : undefined),
        90_000,
        100,
      );
      await sleep(200 + ((cut * 337) % 1_500)); // cuts land at different points of a batch
      ackedAtCut.push(acked.length);
      await Promise.all(net.names.map((name) => net.kill(name, 'SIGKILL')));
      for (const name of net.names) net.start(name);
      await Promise.all(organizations.map((organization) => net.waitHealthy(organization, 90_000)));
    }
    const before = acked.length;
    await waitFor(
      'writes after the last cut',
      () => (acked.length >= before + 40 ? true : undefined),
      90_000,
      100,
    );
    stopped = true;
    const outcomes = await load;

    const receivedBy = new Map<string, ReceivedMessage[]>();
    await waitFor(
      'every acknowledged message to be delivered',
      async () => {
        for (const recipient of ['org2', 'org4'])
          receivedBy.set(recipient, await receivedAll(net, recipient, 'demo'));
        return checkDeliveries(acked, receivedBy).lost === 0 ? true : undefined;
      },
      120_000,
      1_000,
    ).catch(() => undefined);
    await sleep(2_000); // a duplicate, if any, would arrive now
    for (const recipient of ['org2', 'org4'])
      receivedBy.set(recipient, await receivedAll(net, recipient, 'demo'));
    const deliveries = checkDeliveries(acked, receivedBy);

    await net.stopAll();
    const registry = loadGenesisRegistry(join(net.directory, 'genesis.json'));
    const ledgers = checkLedgers(
      [1, 2, 3, 4],
      (node, group) => net.partitionDatabase(node, group),
      [{ group: 'demo/0', membership: (epoch) => registry.membership('demo/0', epoch) }],
      acked,
    );
    console.log(
      `power cut: ${cuts} cuts at ${ackedAtCut.join(', ')} acknowledged; ${acked.length} acknowledged in all, ` +
        `${deliveries.delivered} delivered, ${deliveries.lost} lost, ${deliveries.duplicated} duplicated; ` +
        `${outcomes.reduce((sum, outcome) => sum + outcome.attempts, 0)} attempts; ` +
        `ledger heights ${ledgers.heads['demo/0']?.join('/')}`,
    );
    expect([...deliveries.problems, ...ledgers.problems].slice(0, 20)).toEqual([]);
    expect(deliveries.lost).toBe(0);
    expect(deliveries.duplicated).toBe(0);
    expect(ledgers.ackedNotInLedger).toBe(0);
    expect(ledgers.ledgerMismatches + ledgers.badCertificates + ledgers.receiptsBeforeCommit).toBe(0);
    expect(acked.length).toBeGreaterThan(cuts * 40);
  }, 900_000);
});
