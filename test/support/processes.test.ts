// The process helper every e2e test and benchmark starts children with: what they rely on when a
// run fails half-way (no child left behind, the log and stderr at hand) must hold.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  isRunning,
  logTail,
  nextJsonLine,
  startNode,
  startTypeScript,
  startTypeScriptReady,
  stopChildren,
  waitFor,
  waitForExit,
} from './processes.js';

const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-processes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `node -e code`, tracked. */
const startScript = (name: string, code: string, log?: string) =>
  startNode(name, ['-e', code], log === undefined ? {} : { log });

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('processes', () => {
  it('starts again a child that printed nothing in time, and gives up on one that never does', async () => {
    // The first start hangs silently, as a child whose module loader deadlocked does; the next answers.
    const marker = join(dir, 'started-once');
    const script = join(dir, 'hangs-once.ts');
    writeFileSync(
      script,
      `import { existsSync, writeFileSync } from 'node:fs';
const marker = ${JSON.stringify(marker)};
if (existsSync(marker)) console.log(JSON.stringify({ event: 'ready', attempt: 2 }));
else writeFileSync(marker, '');
setInterval(() => {}, 1000);
`,
    );
    const { child, ready } = await startTypeScriptReady<{ attempt: number }>(
      'hangs-once',
      script,
      [],
      (message) => message['event'] === 'ready',
      { startupMs: 3_000 },
    );
    expect(ready.attempt).toBe(2);
    await stopChildren([child]);
    rmSync(marker);
    const never = join(dir, 'never.ts');
    writeFileSync(never, 'setInterval(() => {}, 1000);\n');
    await expect(
      startTypeScriptReady('never', never, [], () => true, { startupMs: 2_000, attempts: 2 }),
    ).rejects.toThrow(/did not answer/);
  }, 30_000);

  it('collects the JSON lines a child prints, ignoring the rest, and stops it with SIGTERM', async () => {
    const child = startScript(
      'json',
      `console.log('starting up'); console.log(JSON.stringify({ event: 'ready', port: 7 })); setInterval(() => {}, 1000);`,
    );
    const ready = await nextJsonLine<{ port: number }>(child, (line) => line['event'] === 'ready', 20_000);
    expect(ready.port).toBe(7);
    expect(child.messages).toEqual([{ event: 'ready', port: 7 }]);
    await stopChildren([child], 5_000);
    expect(isRunning(child.child)).toBe(false);
    expect(child.child.signalCode).toBe('SIGTERM');
  });

  it('SIGKILLs a child that ignores SIGTERM once the grace period is over', async () => {
    const child = startScript(
      'stubborn',
      `process.on('SIGTERM', () => {}); console.log('{}'); setInterval(() => {}, 1000);`,
    );
    // Its handler must be installed before the SIGTERM comes.
    await nextJsonLine(child, () => true, 20_000);
    await stopChildren([child], 300);
    expect(child.child.signalCode).toBe('SIGKILL');
  });

  it('appends stdout and stderr to the log file behind a header naming the start', async () => {
    const log = join(dir, 'logged.log');
    for (const round of [1, 2]) {
      const child = startScript('logged', `console.log('out ${round}'); console.error('err ${round}');`, log);
      await waitForExit(child.child);
    }
    const text = readFileSync(log, 'utf8');
    expect(text.match(/---- \S+ start logged ----/g)).toHaveLength(2);
    expect(text).toContain('out 1');
    expect(text).toContain('err 2');
    expect(logTail(log, 2).split('\n')).toEqual(['out 2', 'err 2']);
  });

  it('rejects a wait for a line the child never prints, with its stderr', async () => {
    const child = startScript('quitter', `console.error('no config file'); process.exit(3);`);
    await expect(nextJsonLine(child, () => true, 20_000)).rejects.toThrow(
      /quitter exited \(3\)[^]*no config file/,
    );
  });

  it('waitFor names what it waited for and the probe’s last error', async () => {
    await expect(
      waitFor(
        'the moon',
        () => {
          throw new Error('not yet');
        },
        50,
        10,
      ),
    ).rejects.toThrow('timed out after 50 ms waiting for the moon (last error: Error: not yet)');
  });

  it('kills the children still running when the process that started them exits', async () => {
    const parent = join(dir, 'parent.ts');
    const helper = pathToFileURL(join(import.meta.dirname, 'processes.ts')).href;
    writeFileSync(
      parent,
      [
        `import { startNode } from ${JSON.stringify(helper)};`,
        `const child = startNode('orphan', ['-e', 'setInterval(() => {}, 1000)']);`,
        `console.log(JSON.stringify({ pid: child.pid }));`,
        // Exits without stopping it, as a crashed test run would.
        `setTimeout(() => process.exit(1), 200);`,
      ].join('\n'),
    );
    const run = startTypeScript('parent', parent, []);
    const { pid } = await nextJsonLine<{ pid: number }>(run, (line) => 'pid' in line, 30_000);
    await waitForExit(run.child);
    await waitFor('the orphan to be gone', () => (alive(pid) ? undefined : true), 5_000, 50);
  }, 60_000);
});
