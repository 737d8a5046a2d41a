import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { headerHash } from './messages.js';
import type { PbftMessage } from './messages.js';
import { decodeBody } from './messages.js';
import type { PrePrepare } from './messages.js';
import { hexKey } from './quorum.js';
import { Cluster } from '../../partition/testing/cluster.js';
import type { PbftTuning, TestClient } from '../../partition/testing/cluster.js';

/**
 * Scenario files in the manner of etcd-io/raft's `testdata/*.txt` (run there by cockroachdb's
 * datadriven package): each file is a list of commands, and under each command, after a `----` line,
 * the output it is expected to produce; a blank line ends the block. Lines starting with `#` are
 * comments and say what the scenario shows, with the section of Castro & Liskov it follows.
 *
 * Run with LEDGERBUS_REWRITE_SCENARIOS=1 to write the actual output into the files instead of
 * comparing (then read the diff before committing it).
 *
 * Commands (arguments are `key=value`, or bare replica indexes):
 *   cluster replicas=4 [any PbftTuning field=value]   a new cluster of test replicas
 *   request [client=0] [count=1] [to=0,1]      client requests, to every replica unless `to`
 *   tick [count=1]                             ticks every live replica, delivering all traffic
 *   stabilize [max=500]                        ticks until the live replicas agree and are idle
 *   crash 0 | restart 0                        stops a replica / restarts it from what it persisted
 *   partition 3 [4 ...]                        cuts those replicas off from the others
 *   drop kind=commit [from=0] [to=1] [view=0]  drops matching messages until `heal`
 *   heal                                       ends every partition and drop
 *   trace hide=status,block-vote,rejections    which message kinds (and whether rejections) to list
 *   status                                     one line per replica
 *
 * Output: one line per message, `t<tick> r<from>→r<to> <kind> v<view> s<seq> <digest prefix>`
 * (a message sent to every other replica is one line, `→*`; `✗` marks a dropped copy), then the
 * replicas' events of that tick (view changes, executions, stable checkpoints, rejections).
 */

const rewrite = process.env.LEDGERBUS_REWRITE_SCENARIOS === '1';
const testdata = join(import.meta.dirname, 'testdata');

interface Block {
  /** Comment and blank lines before the command, kept as they are. */
  readonly preamble: readonly string[];
  readonly command: string;
  readonly expected: string;
  readonly line: number;
}

function parseScenario(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let preamble: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '' || line.startsWith('#')) {
      preamble.push(line);
      continue;
    }
    const command = line;
    const at = i + 1;
    if (lines[i + 1] !== '----') throw new Error(`line ${at}: expected ---- after the command`);
    const output: string[] = [];
    for (i += 2; i < lines.length && lines[i]!.trim() !== ''; i++) output.push(lines[i]!);
    blocks.push({ preamble, command, expected: output.join('\n'), line: at });
    preamble = [];
    if (i < lines.length) preamble.push(lines[i]!);
  }
  return blocks;
}

function printScenario(blocks: readonly Block[], outputs: readonly string[]): string {
  const parts: string[] = [];
  blocks.forEach((block, index) => {
    parts.push(...block.preamble, block.command, '----', outputs[index]!);
  });
  return `${parts.join('\n').replace(/\n+$/, '')}\n`;
}

function short(bytes: Uint8Array): string {
  return hexKey(bytes).slice(0, 6);
}

/** Runs the commands of one scenario against a test cluster and says what happened, as text. */
class ScenarioHost {
  private cluster: Cluster | undefined;
  private hidden = new Set<string>();
  private trafficSeen = 0;
  private readonly historySeen: number[] = [];
  private readonly clients = new Map<number, { readonly client: TestClient; sent: number }>();

  run(command: string): string {
    const [name, ...words] = command.trim().split(/\s+/);
    const args = new Map<string, string>();
    const bare: number[] = [];
    for (const word of words) {
      const [key, value] = word.split('=');
      if (value === undefined) bare.push(Number(key));
      else args.set(key!, value);
    }
    const number = (key: string, fallback: number): number => Number(args.get(key) ?? fallback);
    if (name === 'cluster') return this.newCluster(args);
    const cluster = this.cluster;
    if (cluster === undefined) throw new Error('the first command must be `cluster`');
    const lines: string[] = [];
    switch (name) {
      case 'request': {
        const clientIndex = number('client', 0);
        let client = this.clients.get(clientIndex);
        if (client === undefined) {
          client = { client: cluster.client(clientIndex), sent: 0 };
          this.clients.set(clientIndex, client);
        }
        const to = args.get('to')?.split(',').map(Number) ?? [...cluster.nodes.keys()];
        const live = to.filter((index) => !cluster.node(index).crashed).map((index) => `r${index}`);
        for (let i = 0; i < number('count', 1); i++) {
          const request = client.client.request();
          client.sent += 1;
          lines.push(
            `t${cluster.ticks} c${clientIndex}→${live.join(',')} request c${clientIndex}#${client.sent}`,
          );
          cluster.request(request, to);
          lines.push(...this.observe());
        }
        break;
      }
      case 'tick':
        for (let i = 0; i < number('count', 1); i++) {
          cluster.tick();
          lines.push(...this.observe());
        }
        break;
      case 'stabilize': {
        const ticks = cluster.tickUntil(() => this.settled(), number('max', 500), 'stabilize');
        lines.push(...this.observe().filter((line) => !line.includes('→')), `settled after ${ticks} ticks`);
        break;
      }
      case 'crash':
        for (const index of bare) cluster.crash(index);
        break;
      case 'restart':
        for (const index of bare) cluster.restart(index);
        break;
      case 'partition':
        cluster.isolate(...bare);
        break;
      case 'drop': {
        const kind = args.get('kind');
        const from = args.has('from') ? number('from', 0) : undefined;
        const view = args.has('view') ? number('view', 0) : undefined;
        const to = args.has('to') ? number('to', 0) : undefined;
        cluster.drop(
          (delivery) =>
            (kind === undefined || delivery.message?.type === kind) &&
            (from === undefined || delivery.from === from) &&
            (to === undefined || delivery.to === to) &&
            (view === undefined ||
              (delivery.message !== undefined &&
                'view' in delivery.message &&
                delivery.message.view === view)),
        );
        break;
      }
      case 'heal':
        cluster.heal();
        break;
      case 'trace':
        this.hidden = new Set(args.get('hide')?.split(',') ?? []);
        break;
      case 'status':
        lines.push(...cluster.nodes.map((node) => this.describe(node.index)));
        break;
      default:
        throw new Error(`unknown command ${name}`);
    }
    cluster.checkAgreement();
    return lines.length === 0 ? 'ok' : lines.join('\n');
  }

  private newCluster(args: Map<string, string>): string {
    const tuning: Record<string, number> = {};
    for (const [key, value] of args) if (key !== 'replicas') tuning[key] = Number(value);
    this.cluster = new Cluster({
      replicas: Number(args.get('replicas') ?? 4),
      label: 'scenario',
      tuning: tuning as Partial<PbftTuning>,
    });
    this.historySeen.length = 0;
    this.historySeen.push(...this.cluster.nodes.map(() => 0));
    this.trafficSeen = 0;
    this.clients.clear();
    return 'ok';
  }

  /** Every live replica executed and certified the same blocks, and none is changing views or waiting. */
  private settled(): boolean {
    const live = this.cluster!.nodes.filter((node) => !node.crashed);
    const executed = live[0]!.core.lastExecuted;
    return live.every(
      (node) =>
        node.core.lastExecuted === executed &&
        node.core.lastCertified === executed &&
        !node.core.inViewChange &&
        node.core.view === live[0]!.core.view &&
        node.core.pendingRequests === 0,
    );
  }

  private describe(index: number): string {
    const node = this.cluster!.node(index);
    const core = node.core;
    return (
      `r${index}${node.crashed ? ' crashed' : ''} v${core.view}${core.inViewChange ? ' changing' : ''}` +
      `${core.isPrimary ? ' primary' : ''} executed=${core.lastExecuted} certified=${core.lastCertified}` +
      ` stable=${core.stable} pending=${core.pendingRequests}`
    );
  }

  /** The messages carried and the events at the replicas since the last call, in that order. */
  private observe(): string[] {
    const cluster = this.cluster!;
    const tick = `t${cluster.ticks}`;
    const lines: string[] = [];
    const traffic = cluster.traffic.slice(this.trafficSeen);
    this.trafficSeen = cluster.traffic.length;
    for (let i = 0; i < traffic.length;) {
      const first = traffic[i]!;
      const group = [first];
      for (
        i++;
        i < traffic.length && traffic[i]!.bytes === first.bytes && traffic[i]!.from === first.from;
        i++
      ) {
        group.push(traffic[i]!);
      }
      if (first.message === undefined || this.hidden.has(first.message.type)) continue;
      const everyone = group.length === cluster.n - 1 && group.every((delivery) => !delivery.dropped);
      const to = everyone
        ? '*'
        : group.map((delivery) => `r${delivery.to}${delivery.dropped ? '✗' : ''}`).join(',');
      lines.push(`${tick} r${first.from}→${to} ${this.describeMessage(first.message)}`);
    }
    for (const node of cluster.nodes) {
      const steps = node.history.slice(this.historySeen[node.index]);
      this.historySeen[node.index] = node.history.length;
      const rejected = new Map<string, number>();
      for (const step of steps) {
        const { before, after, ready } = step;
        if (after.view !== before.view || after.inViewChange !== before.inViewChange) {
          lines.push(
            after.inViewChange
              ? `${tick} r${node.index} starts a view change to v${after.view}`
              : `${tick} r${node.index} enters v${after.view}`,
          );
        }
        for (const batch of ready.commit) {
          const how = batch.certified === undefined ? 'committed' : 'transferred';
          lines.push(
            `${tick} r${node.index} executes s${batch.seq} ${how} requests=${batch.proposal.requests.length}`,
          );
        }
        if (after.stable !== before.stable)
          lines.push(`${tick} r${node.index} stable checkpoint s${after.stable}`);
        for (const rejection of ready.rejected) {
          const key = `${rejection.code}${rejection.retriable ? ' (retriable)' : ''}`;
          rejected.set(key, (rejected.get(key) ?? 0) + 1);
        }
      }
      if (this.hidden.has('rejections')) continue;
      for (const [key, count] of rejected) lines.push(`${tick} r${node.index} rejected ${key} ×${count}`);
    }
    return lines;
  }

  private describeMessage(message: PbftMessage): string {
    const crypto = this.cluster!.node(0).signer.crypto;
    switch (message.type) {
      case 'pre-prepare':
        return `pre-prepare v${message.view} s${message.seq} ${short(message.digest)} requests=${message.proposal.requests.length}`;
      case 'prepare':
      case 'commit':
        return `${message.type} v${message.view} s${message.seq} ${short(message.digest)}`;
      case 'block-vote':
        return `block-vote v${message.header.view} s${message.header.height} ${short(headerHash(crypto, message.header))}`;
      case 'view-change': {
        const prepared = message.prepared.map((certificate) => {
          const prePrepare = decodeBody(certificate.prePrepare.body) as PrePrepare;
          return `s${prePrepare.seq}:${short(prePrepare.digest)}@v${prePrepare.view}`;
        });
        const stable = message.stable === null ? 0 : message.stable.header.height;
        return `view-change v${message.newView} stable=s${stable} prepared=[${prepared.join(' ')}]`;
      }
      case 'new-view': {
        const senders = message.viewChanges.map((envelope) => `r${decodeBody(envelope.body).from}`);
        const plan = message.prePrepares.map((envelope) => {
          const prePrepare = decodeBody(envelope.body) as PrePrepare;
          const batch = prePrepare.proposal.requests.length === 0 ? 'null' : short(prePrepare.digest);
          return `s${prePrepare.seq}:${batch}`;
        });
        return `new-view v${message.view} V=[${senders.join(' ')}] O=[${plan.join(' ')}]`;
      }
      case 'status':
        return (
          `status v${message.view}${message.inViewChange ? ' changing' : ''} executed=${message.lastExecuted}` +
          ` certified=${message.lastCertified} stable=${message.stableSeq}`
        );
      case 'fetch-blocks':
        return `fetch-blocks s${message.fromSeq} count=${message.count}`;
      case 'blocks': {
        const heights = message.blocks.map((block) => block.certified.header.height);
        return `blocks [${heights.length === 0 ? '' : `s${heights[0]}..s${heights.at(-1)}`}]`;
      }
    }
  }
}

const files = readdirSync(testdata)
  .filter((file) => file.endsWith('.txt'))
  .sort();

describe('PBFT scenarios (testdata/*.txt; LEDGERBUS_REWRITE_SCENARIOS=1 rewrites them)', () => {
  it('finds scenario files', () => {
    expect(files.length).toBeGreaterThanOrEqual(3);
  });

  for (const file of files) {
    it(file, () => {
      const path = join(testdata, file);
      const blocks = parseScenario(readFileSync(path, 'utf8'));
      const host = new ScenarioHost();
      const outputs = blocks.map((block) => host.run(block.command));
      if (rewrite) {
        writeFileSync(path, printScenario(blocks, outputs));
        return;
      }
      blocks.forEach((block, index) => {
        expect(outputs[index], `${file}:${block.line}: ${block.command}`).toBe(block.expected);
      });
    });
  }
});
