// The PostgreSQL server a test file runs against.
//
// The tests do not simply use whatever answers on 127.0.0.1:5432: a fresh machine (a new CI machine,
// a developer's laptop) has no server there, and one that happens to run there is somebody's own,
// whose settings and contents the tests know nothing of. So a server of the user's is used only when
// they point at it with LEDGERBUS_TEST_POSTGRES_URL; otherwise each test file starts a throwaway
// server of its own (Debian's `postgresql` package: initdb into a fresh temporary directory, then
// `postgres` on a free port of 127.0.0.1) and removes it when done. Either way a test works in a
// database of its own, created and dropped by the test.
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';

export const postgresUrlVariable = 'LEDGERBUS_TEST_POSTGRES_URL';

/** How long a throwaway server may take to accept connections once started. */
const startTimeoutMs = 30_000;
/** How long a fast shutdown may take before the server is stopped immediately. */
const stopTimeoutMs = 30_000;
/** Ports tried when the free port found is taken by someone else before the server binds it. */
const portAttemptsMax = 5;

export interface TestPostgres {
  /** Connection string of the server's `postgres` database, as a role that may create databases. */
  readonly url: string;
  /** Where the server came from: the variable, or a throwaway one started for this test file. */
  readonly origin: 'variable' | 'throwaway';
  /** Milliseconds it took to have the server answer (initdb and start, for a throwaway one). */
  readonly startMs: number;
  /** Runs one statement on the `postgres` database. */
  query(sql: string): Promise<void>;
  /** Creates a database named `<prefix>_<random hex>`; returns its name and connection string. */
  createDatabase(prefix: string): Promise<{ name: string; url: string }>;
  /** Drops database `name`, ending any session still connected to it. */
  dropDatabase(name: string): Promise<void>;
  /** Shuts a throwaway server down (fast mode) and removes its directory; a pointed-at one is left alone. */
  stop(): Promise<void>;
}

/**
 * The server named by LEDGERBUS_TEST_POSTGRES_URL, which must answer (a clear error naming the
 * variable otherwise: the user asked for that server, so none is started in its place); or, when
 * the variable is unset or empty, a throwaway server started for the caller, who must `stop()` it.
 */
export async function startTestPostgres(): Promise<TestPostgres> {
  const started = Date.now();
  const pointedAt = process.env[postgresUrlVariable];
  if (pointedAt !== undefined && pointedAt !== '') {
    try {
      await runStatement(pointedAt, 'select 1');
    } catch (error) {
      throw new Error(
        `${postgresUrlVariable}=${redacted(pointedAt)} does not answer (${String(error)}): start that server, ` +
          `or unset ${postgresUrlVariable} to have the tests start a throwaway PostgreSQL of their own`,
        { cause: error },
      );
    }
    return handle(pointedAt, 'variable', Date.now() - started, async () => undefined);
  }
  const server = await ThrowawayServer.start();
  return handle(server.url, 'throwaway', Date.now() - started, () => server.stop());
}

function handle(
  url: string,
  origin: TestPostgres['origin'],
  startMs: number,
  stop: () => Promise<void>,
): TestPostgres {
  return {
    url,
    origin,
    startMs,
    query: (sql) => runStatement(url, sql),
    async createDatabase(prefix) {
      const name = `${prefix}_${randomBytes(6).toString('hex')}`;
      await runStatement(url, `create database ${name}`);
      const database = new URL(url);
      database.pathname = `/${name}`;
      return { name, url: database.toString() };
    },
    dropDatabase: (name) => runStatement(url, `drop database if exists ${name} with (force)`),
    stop,
  };
}

async function runStatement(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function redacted(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(not a URL)';
  }
}

/** The directory holding `initdb` and `postgres`: Debian's newest version, else the PATH's. */
function findBinaries(): string {
  const debian = '/usr/lib/postgresql';
  const versions = existsSync(debian)
    ? readdirSync(debian)
        .filter((version) => /^\d+(\.\d+)?$/.test(version))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const candidates = [
    ...versions.map((version) => join(debian, version, 'bin')),
    ...(process.env['PATH'] ?? '').split(delimiter).filter((directory) => directory !== ''),
  ];
  const found = candidates.find(
    (directory) => existsSync(join(directory, 'initdb')) && existsSync(join(directory, 'postgres')),
  );
  if (found === undefined) {
    throw new Error(
      `no PostgreSQL server binaries (initdb, postgres) in ${debian}/*/bin or on the PATH: install ` +
        `Debian's postgresql package (as .ci/run does), or point ${postgresUrlVariable} at a server`,
    );
  }
  return found;
}

/**
 * Who runs initdb and postgres. Both refuse to run as root, and CI runs as root: then they run as
 * the `postgres` system user that Debian's package creates (the child is started with its uid and
 * gid directly, so signals reach the server itself, not a runuser/su in between).
 */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const id = (flag: string): number =>
      Number(
        execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
      );
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error(
      `running as root, and there is no postgres user to run a throwaway PostgreSQL as (initdb refuses ` +
        `root): install Debian's postgresql package, or point ${postgresUrlVariable} at a server`,
    );
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/**
 * One PostgreSQL cluster in a temporary directory: `data/` (initdb, trust authentication, superuser
 * `postgres`, the server's default settings otherwise: fsync stays on), the unix socket beside it
 * (never in /var/run/postgresql, which belongs to the machine's own server) and `server.log`.
 */
class ThrowawayServer {
  /** Settles when the server process has exited, or could not be started at all. */
  private readonly exited: Promise<void>;
  private running = true;
  private readonly killOnExit = (): void => {
    // The test process is going away without stop() (a crash): stop the server now, at once. Its
    // directory is left in the temporary folder: it cannot be removed while the server may still write.
    if (this.running) this.child.kill('SIGQUIT');
  };

  private constructor(
    private readonly directory: string,
    private readonly child: ChildProcess,
    readonly url: string,
  ) {
    this.exited = new Promise((resolve) => {
      const done = (): void => {
        this.running = false;
        resolve();
      };
      child.once('exit', done);
      child.once('error', done);
    });
    process.once('exit', this.killOnExit);
  }

  static async start(): Promise<ThrowawayServer> {
    const binaries = findBinaries();
    const user = serverUser();
    const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-postgres-'));
    try {
      if (user !== undefined) chownSync(directory, user.uid, user.gid);
      const data = join(directory, 'data');
      await new Promise<void>((resolve, reject) => {
        execFile(
          join(binaries, 'initdb'),
          // No locale: the machine's may not be generated, and the tests need none.
          ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-locale'],
          { cwd: directory, ...user },
          (error, stdout, stderr) =>
            error === null
              ? resolve()
              : reject(new Error(`initdb failed in ${directory}: ${error.message}\n${stdout}${stderr}`)),
        );
      });
      for (let attempt = 1; ; attempt++) {
        const port = await freePort();
        const log = join(directory, 'server.log');
        const logFile = openSync(log, 'a');
        const child = spawn(
          join(binaries, 'postgres'),
          ['-D', data, '-p', String(port), '-k', directory, '-c', 'listen_addresses=127.0.0.1'],
          { cwd: directory, stdio: ['ignore', logFile, logFile], ...user },
        );
        closeSync(logFile);
        const server = new ThrowawayServer(
          directory,
          child,
          `postgres://postgres@127.0.0.1:${port}/postgres`,
        );
        const outcome = await server.answering();
        if (outcome === 'answering') return server;
        await server.stop({ keepDirectory: true });
        const lost = /could not bind|address already in use/i.test(tail(log));
        if (!lost || attempt >= portAttemptsMax) {
          throw new Error(
            `the throwaway PostgreSQL in ${directory} did not start (${outcome}):\n${tail(log)}`,
          );
        }
      }
    } catch (error) {
      rmSync(directory, { recursive: true, force: true });
      throw error;
    }
  }

  /** Waits until the server accepts a connection; or says why it never will. */
  private async answering(): Promise<'answering' | 'exited' | 'timed out'> {
    const deadline = Date.now() + startTimeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) return 'exited';
      try {
        await runStatement(this.url, 'select 1');
        return 'answering';
      } catch {
        await sleep(50);
      }
    }
    return 'timed out';
  }

  /** Fast shutdown (sessions are ended, then a checkpoint), then the directory is removed. */
  async stop(options: { keepDirectory?: boolean } = {}): Promise<void> {
    process.removeListener('exit', this.killOnExit);
    const within = (ms: number): Promise<boolean> =>
      Promise.race([this.exited.then(() => true), sleep(ms).then(() => false)]);
    if (this.running) {
      this.child.kill('SIGINT');
      if (!(await within(stopTimeoutMs))) {
        this.child.kill('SIGQUIT');
        if (!(await within(5_000))) this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    if (options.keepDirectory !== true) rmSync(this.directory, { recursive: true, force: true });
  }
}
