// Every benchmark answers --help with its own usage (the leading comment of its file), before it
// parses an argument or starts anything.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { usageOf } from '../../bench/lib/help.js';

const benchDirectory = fileURLToPath(new URL('../../bench/', import.meta.url));
const benches = readdirSync(benchDirectory).filter((name) => name.endsWith('.ts'));

describe('bench --help', () => {
  it.each(benches)('%s shows its usage before it parses any argument', (name) => {
    const source = readFileSync(`${benchDirectory}${name}`, 'utf8');
    expect(usageOf(source).length, name).toBeGreaterThan(80);
    const parses = source.indexOf('parseArgs(');
    if (parses === -1) return;
    const shared = source.indexOf('showHelpIfAsked(import.meta.url)');
    // Either the shared helper, called before parsing, or a `help` option of the benchmark's own.
    if (shared === -1) expect(source, `${name} answers --help`).toMatch(/\bhelp: \{/);
    else expect(shared, `${name} asks before parsing`).toBeLessThan(parses);
  });

  it('prints the usage and exits 0 without running the benchmark', () => {
    const run = spawnSync('npx', ['tsx', `${benchDirectory}pbft.ts`, '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('npm run bench:pbft');
    expect(run.stdout).not.toContain('"name":"pbft"');
  });
});
