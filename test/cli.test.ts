// The CLI as a user runs it: a real process, real key files, exit codes and --json output.
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { ensureDevnetLayout } from '../src/cli/devnet-layout.js';
import { buildProgram } from '../src/cli/main.js';
import { cliNodeArgs } from './support/processes.js';

// The processes run in a scratch folder, so name the TypeScript loader by path.
const dir = mkdtempSync(join(tmpdir(), 'ledgerbus-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ledgerbus(...args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [...cliNodeArgs(), ...args], {
    cwd: dir,
    encoding: 'utf8',
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** As `ledgerbus`, without blocking: many short runs can go in parallel. */
function ledgerbusAsync(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [...cliNodeArgs(), ...args],
      { cwd: dir, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        done({ status: code, stdout, stderr });
      },
    );
  });
}

/** Bad escrow flags of topic create and set-policy, and what each refusal names. */
function escrowCases(connection: readonly string[]): { args: string[]; says: string }[] {
  const create = (...flags: string[]): string[] => [
    'topic',
    'create',
    'audited',
    '--partitions',
    '1',
    ...flags,
    ...connection,
  ];
  return [
    { args: create('--threshold', '2'), says: '--threshold set escrow parameters: add --escrow' },
    {
      args: create('--shares', '5', '--replicas', '2'),
      says: '--replicas, --shares set escrow parameters: add --escrow',
    },
    {
      args: create('--escrow', '--threshold', '4'),
      says: '--threshold 4 is more than --shares 3 (the default)',
    },
    {
      args: create('--escrow', '--threshold', '3', '--shares', '2'),
      says: '--threshold 3 is more than --shares 2:',
    },
    { args: create('--escrow', '--shares', '17'), says: '--shares must be an integer from 1 to 16' },
    { args: create('--escrow', '--replicas', '0'), says: '--replicas must be an integer from 1 to 16' },
    {
      args: create('--escrow', '--chunk-bytes', '1024'),
      says: '--chunk-bytes must be a size from 4096 to 8388608 bytes',
    },
    {
      args: create('--escrow', '--audit-approvals', '65'),
      says: '--audit-approvals must be an integer from 0 to 64',
    },
    { args: ['topic', 'set-policy', 'audited', ...connection], says: 'name at least one policy option' },
    {
      args: ['topic', 'set-policy', 'audited', '--no-escrow', '--threshold', '2', ...connection],
      says: '--threshold with --no-escrow',
    },
  ];
}

describe('ledgerbus CLI', () => {
  it('generates keys with mode 0600, issues and verifies a certificate for one network, and refuses a foreign one', () => {
    const org = JSON.parse(ledgerbus('keys', 'generate', '--out', 'org.key', '--json').stdout) as {
      publicKey: string;
    };
    const node = JSON.parse(ledgerbus('keys', 'generate', '--out', 'node.key', '--json').stdout) as {
      publicKey: string;
    };
    expect(statSync(join(dir, 'org.key')).mode & 0o777).toBe(0o600);
    const issued = ledgerbus(
      'cert',
      'issue',
      '--org-key',
      'org.key',
      '--org',
      'org1',
      '--network-id',
      'consortium-a',
      '--subject',
      'node1',
      '--role',
      'node',
      '--public-key',
      node.publicKey,
      '--out',
      'node.cert',
      '--json',
    );
    expect(issued.status).toBe(0);
    expect(JSON.parse(issued.stdout)).toMatchObject({ network: 'consortium-a', subjectId: 'node1' });
    const verify = (orgPublicKey: string, network: string): ReturnType<typeof ledgerbus> =>
      ledgerbus(
        'cert',
        'verify',
        'node.cert',
        '--org-public-key',
        orgPublicKey,
        '--network-id',
        network,
        '--json',
      );
    const valid = verify(org.publicKey, 'consortium-a');
    expect(valid.status).toBe(0);
    expect(JSON.parse(valid.stdout)).toMatchObject({
      valid: true,
      network: 'consortium-a',
      subjectId: 'node1',
      role: 'node',
    });
    const foreign = verify(node.publicKey, 'consortium-a');
    expect(foreign.status).toBe(1);
    expect(JSON.parse(foreign.stdout)).toMatchObject({ valid: false, code: 'BAD_CERTIFICATE' });
    // The verdict says what to do, from the error table.
    expect(JSON.parse(foreign.stdout)).toMatchObject({
      remedy: expect.stringContaining('ledgerbus cert issue'),
    });
    // The same org key, another network: the certificate says nothing there.
    const elsewhere = verify(org.publicKey, 'consortium-b');
    expect(elsewhere.status).toBe(1);
    expect(JSON.parse(elsewhere.stdout)).toMatchObject({ valid: false, code: 'BAD_CERTIFICATE' });
    const badNetwork = verify(org.publicKey, 'no/slashes');
    expect(badNetwork.status).not.toBe(0);
    expect(badNetwork.stderr).toMatch(/network id/);
  });

  it('refuses a key file others can read, and a corrupt one, with a code and what to do', () => {
    ledgerbus('keys', 'generate', '--out', 'loose.key');
    chmodSync(join(dir, 'loose.key'), 0o644);
    const loose = ledgerbus('keys', 'public', 'loose.key');
    expect(loose.status).toBe(2);
    expect(loose.stderr).toContain('KEY_FILE_PERMISSIONS');
    expect(loose.stderr).toContain('chmod 600');
    writeFileSync(join(dir, 'corrupt.key'), 'not a key', { mode: 0o600 });
    const corrupt = ledgerbus('keys', 'public', 'corrupt.key');
    expect(corrupt.status).toBe(2);
    expect(corrupt.stderr).toContain('KEY_FILE_CORRUPT');
  });

  it('prints under every error what to do about it, from the error table', () => {
    const missing = ledgerbus('keys', 'public', 'no-such.key');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(
      /^error KEY_FILE_MISSING: .*\n {2}what to do: .*`ledgerbus keys generate`\.\n$/,
    );
  });

  it('has --help on every command of the program, each saying what it does', async () => {
    // Every command the program defines, walked from the tree `ledgerbus` itself is built from.
    const walk = (command: Command, path: readonly string[]): (readonly string[])[] => [
      path,
      ...command.commands.map((sub) => walk(sub, [...path, sub.name()])).flat(),
    ];
    const commands = walk(buildProgram(), []);
    expect(commands.map((path) => path.join(' '))).toEqual(
      expect.arrayContaining([
        '',
        'keys generate',
        'dev',
        'send',
        'consume',
        'verify',
        'topic create',
        'org list',
      ]),
    );
    // Parsed in this process (some thirty process starts would take a minute on two cores): the
    // same parse of `ledgerbus <command> --help` as the binary's, with its output captured.
    for (const path of commands) {
      const name = ['ledgerbus', ...path].join(' ');
      const program = buildProgram();
      let out = '';
      const capture = (command: Command): void => {
        command.exitOverride().configureOutput({
          writeOut: (text) => void (out += text),
          writeErr: (text) => void (out += text),
        });
        command.commands.forEach(capture);
      };
      capture(program);
      const thrown = await program.parseAsync([...path, '--help'], { from: 'user' }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(thrown, name).toMatchObject({ code: 'commander.helpDisplayed', exitCode: 0 });
      expect(out, name).toContain(`Usage: ${name}`);
      // The line after the usage says what the command does.
      expect(out.split('\n')[2]?.trim(), `${name} has a description`).toMatch(/^\S.{10,}/);
    }
    // And the binary prints the same.
    const real = await ledgerbusAsync('topic', 'create', '--help');
    expect(real.status).toBe(0);
    expect(real.stdout).toContain('Usage: ledgerbus topic create');
  });

  it('lists the topic and org commands in the help texts, each with its own --help', async () => {
    const subcommands = {
      topic: ['create', 'add-partitions', 'describe', 'list', 'acl', 'set-policy'],
      org: ['register', 'approve', 'suspend', 'revoke', 'quotas', 'add-node', 'remove-node', 'list'],
    };
    // The leaves share one builder, so a few of them stand for all (each run costs a process start).
    const commands = [
      [],
      ['topic'],
      ['org'],
      ['topic', 'create'],
      ['topic', 'add-partitions'],
      ['topic', 'acl'],
      ['topic', 'set-policy'],
      ['org', 'register'],
      ['org', 'approve'],
    ];
    const helps = await Promise.all(commands.map((command) => ledgerbusAsync(...command, '--help')));
    const [top, topic, org, ...leaves] = helps;
    expect(top?.stdout).toMatch(/^\s+topic\b/m);
    expect(top?.stdout).toMatch(/^\s+org\b/m);
    for (const [help, names] of [
      [topic, subcommands.topic],
      [org, subcommands.org],
    ] as const) {
      expect(help?.status).toBe(0);
      for (const name of names) expect(help?.stdout).toMatch(new RegExp(`^\\s+${name}\\b`, 'm'));
    }
    leaves.forEach((help, index) => {
      const command = (commands[index + 3] ?? []).join(' ');
      expect(help.status, command).toBe(0);
      expect(help.stdout).toContain(`Usage: ledgerbus ${command}`);
      expect(help.stdout).toContain('--network <file>');
      expect(help.stdout).toContain('--as <org>');
      expect(help.stdout).toContain('--json');
    });
    // Every escrow flag says its default, and why shares and replicas are not checked up front.
    const create = leaves[0]!.stdout;
    /** The help text of `flag`: its lines up to the next option's, joined. */
    const helpOf = (flag: string): string => {
      const start = create.indexOf(`  ${flag} `);
      const next = create.slice(start + 2).search(/\n {2}-/);
      return create.slice(start, start + 2 + next).replace(/\s+/g, ' ');
    };
    for (const [flag, fallback] of [
      ['--replicas <r>', 'default 3'],
      ['--threshold <k>', 'default 2'],
      ['--shares <n>', 'default 3'],
      ['--chunk-bytes <size>', 'default 1MiB'],
      ['--audit-approvals <a>', 'default 1'],
    ] as const) {
      expect(helpOf(flag), flag).toContain(`(${fallback})`);
      expect(helpOf(flag), flag).toContain('needs --escrow');
    }
    expect(create).toContain('--escrow');
    expect(create).toContain('organizations join later');
    expect(create).toContain('NOT_ENOUGH_HOLDERS');
    const setPolicy = leaves[3]!.stdout;
    expect(setPolicy).toContain('--no-escrow');
    expect(setPolicy).toContain('--threshold <k>');
  });

  it('refuses bad admin arguments with a code, the help to read, and exit status 2', async () => {
    const connection = ['--network', 'network.json', '--as', 'org1'];
    const cases: { args: string[]; says: string }[] = [
      { args: ['topic', 'create', 'invoices', '--partitions', '0', ...connection], says: '--partitions' },
      { args: ['topic', 'create', 'invoices', '--partitions', 'two', ...connection], says: '--partitions' },
      { args: ['topic', 'create', 'invoices', ...connection], says: "'--partitions <n>' not specified" },
      {
        args: [
          'topic',
          'create',
          'invoices',
          '--partitions',
          '3',
          '--replication-factor',
          '2',
          ...connection,
        ],
        says: '--replication-factor must be an integer from 4 to 7',
      },
      { args: ['topic', 'add-partitions', 'invoices', ...connection], says: "'--count <n>' not specified" },
      // One escrow case as a real process; the rest run in this process (see below).
      escrowCases(connection)[2]!,
      { args: ['topic', 'add-partitions', 'invoices', '--count', '-1', ...connection], says: '--count' },
      { args: ['topic', 'describe', 'invoices', '--as', 'org1'], says: "'--network <file>' not specified" },
      { args: ['topic', 'frobnicate'], says: "unknown command 'frobnicate'" },
      { args: ['org', 'approve', ...connection], says: "missing required argument 'org'" },
      {
        args: [
          'org',
          'register',
          '--id',
          'org 5',
          '--signing-key',
          'a',
          '--encryption-key',
          'b',
          ...connection,
        ],
        says: '--id must be',
      },
      {
        args: [
          'org',
          'register',
          '--id',
          'org5',
          '--signing-key',
          'a',
          '--encryption-key',
          'b',
          '--roles',
          'admin',
          ...connection,
        ],
        says: 'unknown: admin',
      },
    ];
    const results = await Promise.all(cases.map(({ args }) => ledgerbusAsync(...args)));
    for (const [index, { args, says }] of cases.entries()) {
      const result = results[index]!;
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(/^error SCHEMA_MISMATCH: /);
      expect(result.stderr, args.join(' ')).toContain(says);
      expect(result.stderr, args.join(' ')).toContain('--help`');
    }
  });

  it('refuses bad escrow flags naming them, before reading the network file (nothing is submitted)', async () => {
    // Parsed in this process, as the binary parses them: a process start per case costs seconds here.
    for (const { args, says } of escrowCases(['--network', 'missing.json', '--as', 'org1'])) {
      const program = buildProgram();
      const silence = (command: Command): void => {
        command.configureOutput({ writeOut: () => {}, writeErr: () => {} });
        command.commands.forEach(silence);
      };
      silence(program);
      const error = await program.parseAsync(args, { from: 'user' }).then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
      // missing.json was never read: a read would have been BAD_CONFIG "cannot read network file".
      expect(error, args.join(' ')).toMatchObject({ code: 'SCHEMA_MISMATCH' });
      expect((error as Error).message, args.join(' ')).toContain(says);
      expect((error as Error).message, args.join(' ')).toContain('--help`');
    }
  });

  it('refuses, before starting any process, a devnet whose data an older ledgerbus wrote, and says what to do', () => {
    // A devnet that ran before signatures named their network: node data, no format marker.
    const devnet = join(dir, 'old-devnet');
    ensureDevnetLayout({ directory: devnet, basePort: 25460 });
    mkdirSync(join(devnet, 'org1', 'node-data', 'raft'), { recursive: true });
    const started = ledgerbus('dev', '--dir', 'old-devnet');
    expect(started.status).toBe(2);
    expect(started.stderr).toMatch(
      /^error DATA_FORMAT_UNSUPPORTED: .*remove old-devnet .*or pass another --dir/,
    );
    expect(existsSync(join(devnet, 'logs', 'node1.log'))).toBe(false);
    // The node itself, started alone, refuses too, before it opens a database or a port.
    const node = ledgerbus('node', '--config', join('old-devnet', 'org1', 'node.yaml'));
    expect(node.status).toBe(2);
    expect(node.stderr).toMatch(/^error DATA_FORMAT_UNSUPPORTED: node data directory .* older ledgerbus/);
  });

  it('refuses to resume a devnet with another --nodes-per-org than it was made with, before starting any process', () => {
    const devnet = join(dir, 'shaped-devnet');
    ensureDevnetLayout({ directory: devnet, basePort: 25460 });
    const started = ledgerbus('dev', '--dir', 'shaped-devnet', '--nodes-per-org', '2');
    expect(started.status).toBe(2);
    expect(started.stderr).toMatch(
      /^error BAD_CONFIG: the devnet in .* has 4 nodes for 4 organizations, not 2/,
    );
    expect(existsSync(join(devnet, 'logs', 'node1.log'))).toBe(false);
  });

  it('refuses, before starting any process, a devnet whose ports another process holds, naming them', async () => {
    const devnet = join(dir, 'busy-devnet');
    ensureDevnetLayout({ directory: devnet, basePort: 26700 });
    const holder = createNetServer();
    await new Promise<void>((listening, failed) => {
      holder.once('error', failed);
      holder.listen(26702, '127.0.0.1', () => listening());
    });
    try {
      const started = await ledgerbusAsync('dev', '--dir', 'busy-devnet');
      expect(started.status).toBe(2);
      expect(started.stderr).toMatch(
        /^error BAD_CONFIG: the devnet in busy-devnet cannot start: 127\.0\.0\.1:26702 \(node2\) is already in use, .*--base-port/,
      );
      expect(started.stdout).not.toContain('ready');
      expect(existsSync(join(devnet, 'logs', 'node1.log'))).toBe(false);
    } finally {
      await new Promise<void>((closed) => holder.close(() => closed()));
    }
  });

  it('stops the whole devnet and exits non-zero, naming the log, when one of its processes exits', async () => {
    const devnet = join(dir, 'dying-devnet');
    ensureDevnetLayout({ directory: devnet, basePort: 26700, metricsBasePort: 27000 });
    const child = spawn(process.execPath, [...cliNodeArgs(), 'dev', '--dir', 'dying-devnet'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    let processes: { pid: number; args: string }[] = [];
    try {
      for (let waited = 0; !stdout.includes('ready'); waited += 250) {
        if (waited > 120_000 || child.exitCode !== null)
          throw new Error(`devnet not ready:\n${stdout}${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      // Ready means answering: each node's /readyz, each connector's /readyz with this devnet's token.
      expect((await fetch('http://127.0.0.1:27003/readyz')).status).toBe(200);
      processes = childProcesses(child.pid!);
      expect(processes).toHaveLength(8);
      const node3 = processes.find(({ args }) => args.includes(join('org3', 'node.yaml')));
      expect(node3).toBeDefined();
      process.kill(node3!.pid, 'SIGKILL');
      expect(await exited).toBe(2);
      expect(stderr).toMatch(
        /^error PROCESS_EXITED: node3 exited \(SIGKILL\); see .*logs\/node3\.log; the rest of the devnet was stopped/m,
      );
      for (const { pid } of processes) expect(alive(pid), `pid ${pid}`).toBe(false);
    } finally {
      // Should the devnet not stop them, a failed run must not leave its processes holding the ports.
      if (child.exitCode === null) child.kill('SIGKILL');
      for (const { pid } of processes) if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  }, 180_000);

  it('says which network file it cannot read before contacting any connector', () => {
    const result = ledgerbus('topic', 'list', '--network', 'missing.json', '--as', 'org1');
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^error BAD_CONFIG: cannot read network file missing\.json/);
  });

  it('refuses to combine --allow and --deny for the same organization without contacting a connector', () => {
    const result = ledgerbus(
      'topic',
      'acl',
      'invoices',
      '--network',
      'missing.json',
      '--as',
      'org1',
      '--allow-produce',
      'org2,org3',
      '--deny-produce',
      'org3',
    );
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('error SCHEMA_MISMATCH: org3: both --allow-produce and --deny-produce');
  });

  it('runs simulator seeds and ends with the JSON summary line', () => {
    const out = execFileSync(process.execPath, [...cliNodeArgs(), 'sim', '--seeds', '2'], {
      cwd: dir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const last = JSON.parse(out.trim().split('\n').at(-1)!) as { seeds: number; violations: number };
    expect(last).toMatchObject({ seeds: 2, violations: 0 });
  });
});

/** The processes whose parent is `parent`, with their command lines (from ps). */
function childProcesses(parent: number): { pid: number; args: string }[] {
  return execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(parent)], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => {
      const space = line.indexOf(' ');
      return { pid: Number(line.slice(0, space)), args: line.slice(space + 1) };
    });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
