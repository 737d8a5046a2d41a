import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { raftFaultKinds, runRaftSeed } from './raft/simulator.js';

const root = join(import.meta.dirname, '..', '..');

function sim(...args: string[]): { status: number | null; stderr: string; stdout: string } {
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(root, 'src', 'sim', 'main.ts'), ...args],
    {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    },
  );
  return { status: result.status, stderr: result.stderr, stdout: result.stdout };
}

describe('npm run sim --require-every-fault', () => {
  it('fails a run that never injected some fault kind, naming the kinds', () => {
    const pbft = sim('--seeds', '1', '--seed', '1', '--require-every-fault');
    expect(pbft.status).toBe(1);
    expect(pbft.stderr).toMatch(/error: fault kinds never injected: /);
    expect(JSON.parse(pbft.stdout.trim().split('\n').at(-1)!)).toMatchObject({ violations: 0 });
  });

  it('with --faults classic requires only the classic kinds, and rejects an unknown fault set', () => {
    const classic = sim('--seeds', '1', '--seed', '1', '--faults', 'classic', '--require-every-fault');
    const last = JSON.parse(classic.stdout.trim().split('\n').at(-1)!) as {
      faultsInjected: Record<string, number>;
    };
    expect(last.faultsInjected).toMatchObject({ 'registry-lag': 0, 'epoch-change': 0, 'lost-write': 0 });
    expect(classic.stderr).toMatch(/never injected: /);
    expect(classic.stderr).not.toMatch(/never injected: [^\n]*registry-lag/);
    const bogus = sim('--seeds', '1', '--faults', 'some');
    expect(bogus.status).not.toBe(0);
    expect(bogus.stderr).toMatch(/--faults must be all or classic/);
  });

  it('passes a run that injected every kind', () => {
    // One Raft seed already injects every kind the Raft simulator has.
    const raft = sim('--protocol', 'raft', '--seeds', '20', '--require-every-fault');
    expect(raft.status, raft.stderr).toBe(0);
    expect(raft.stderr).not.toMatch(/never injected/);
  });

  it('knows every fault kind the Raft simulator injects', () => {
    const seen = new Set<string>();
    for (let seed = 1; seed <= 50; seed++) {
      for (const [kind, count] of Object.entries(runRaftSeed(seed, { nodes: 3 }).faults)) {
        if (count > 0) seen.add(kind);
      }
    }
    expect([...seen].sort()).toEqual([...raftFaultKinds].sort());
  });
});
