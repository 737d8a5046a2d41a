// Power cut: every node and connector process of the devnet SIGKILLed at the same instant while six
// producers write, again and again. Nothing acknowledged may be lost, because each replica fsyncs
// its block (SQLite, synchronous=FULL) before it votes or acknowledges, and each connector commits
// its outbox and its received messages before it answers. SIGKILL loses whatever a process held in
// memory (buffers, queued acknowledgements, SQLite's page cache); what the kernel already accepted
// survives it — the fsync discipline against a kernel crash is tested beside the block store
// (block-store.crash.test.ts) and by the simulator's crash-restart faults. The recipients'
// applications (SDK consumers in this test process, which is never cut) consume throughout: each
// acknowledged message must be handed to its application exactly once.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { loadGenesisRegistry } from '../src/node/config.js';
import { checkDeliveries, checkLedgers, countProblems } from './chaos/checker.js';
import type { AckedMessage } from './chaos/checker.js';
import type { ApplicationConsumer } from './chaos/load.js';
import { ackedMore, drainApplications, startCutLoad } from './chaos/load.js';
import { ProcessNetwork } from './support/process-network.js';
import { sleep } from './support/processes.js';

// LEDGERBUS_POWER_CUTS raises the count for a longer run by hand; CI makes 6.
const cuts = Number(process.env['LEDGERBUS_POWER_CUTS'] ?? 6);
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-power-cut-'));
const net = new ProcessNetwork(join(dir, 'net'), 22200);
const organizations = ['org1', 'org2', 'org3', 'org4'];
const applications: ApplicationConsumer[] = [];

beforeAll(async () => {
  await net.startAll();
}, 120_000);

afterAll(async () => {
  await Promise.all(applications.map((application) => application.stop()));
  await net.stopAll();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('power cut', () => {
  it(`loses nothing acknowledged when every process is SIGKILLed at once, ${cuts} times under load`, async () => {
    onTestFailed(() => console.log(net.logTails(net.names, 30)));
    const acked: AckedMessage[] = [];
    let stopped = false;
    const { load, consumers } = startCutLoad(net, `cut-${Date.now()}`, acked, () => stopped);
    applications.push(...consumers);
    const ackedAtCut: number[] = [];
    for (let cut = 0; cut < cuts; cut++) {
      // Cut only once writes flow again after the previous restart: a cut of an idle network tests nothing.
      await ackedMore(acked, 40, `writes to resume before cut ${cut + 1}`);
      await sleep(200 + ((cut * 337) % 1_500)); // cuts land at different points of a batch
      ackedAtCut.push(acked.length);
      await Promise.all(net.names.map((name) => net.kill(name, 'SIGKILL')));
      for (const name of net.names) net.start(name);
      await Promise.all(organizations.map((organization) => net.waitHealthy(organization, 90_000)));
    }
    await ackedMore(acked, 40, 'writes after the last cut');
    stopped = true;
    const outcomes = await load;

    const { handed, stored } = await drainApplications(net, consumers, acked, 120_000);
    const deliveries = checkDeliveries(acked, handed, stored);

    await net.stopAll();
    const registry = loadGenesisRegistry(join(net.directory, 'genesis.json'));
    const ledgers = checkLedgers(
      [1, 2, 3, 4],
      (node, group) => net.partitionDatabase(node, group),
      [{ group: 'demo/0', membership: (epoch) => registry.membership('demo/0', epoch) }],
      acked,
    );
    const problems = [...deliveries.problems, ...ledgers.problems];
    console.log(
      `power cut: ${cuts} cuts at ${ackedAtCut.join(', ')} acknowledged; ${acked.length} acknowledged in all, ` +
        `${deliveries.delivered} handed to the applications (${handed.length} hand-outs, ` +
        `${deliveries.redelivered} redelivered after a lost commit, ` +
        `${consumers.reduce((sum, consumer) => sum + consumer.incarnations, 0)} consumer incarnations); ` +
        `${outcomes.reduce((sum, outcome) => sum + outcome.attempts, 0)} attempts; ` +
        `ledger heights ${ledgers.heads['demo/0']?.join('/')}; problems ${JSON.stringify(countProblems(problems))}`,
    );
    expect(problems.slice(0, 20).map((problem) => `${problem.kind}: ${problem.detail}`)).toEqual([]);
    expect(deliveries.delivered).toBe(acked.length);
    expect(acked.length).toBeGreaterThan(cuts * 40);
  }, 900_000);
});
