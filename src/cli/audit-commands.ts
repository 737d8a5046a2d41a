/**
 * `ledgerbus audit ...` (DESIGN §7): audits of escrowed messages through an organization's
 * connector (the SDK's `Audits`). An auditor requests, members approve, the auditor fetches the
 * message rebuilt from its holders — the owner takes no part. The connector is the `--as`
 * organization's in the network file (default: the `ledgerbus dev` network's), or `--connector`
 * with `--token`.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  createWriteStream,
  fsyncSync,
  openSync,
  closeSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Command, InvalidArgumentError } from 'commander';
import cliProgress from 'cli-progress';
import { Audits } from '../client/audits.js';
import type { AuditFetchResult, AuditSummary, EscrowStatus } from '../connector/escrow/audit-types.js';
import type { MessageLocation } from '../connector/message-location.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { withUsageErrors } from './usage-errors.js';
import { devNetworkFile, optionsTransport } from './connector-target.js';

/** The network file `ledgerbus dev` writes, used when neither --network nor --connector is given. */
export { devNetworkFile };
const progressThresholdBytes = 4 * 1024 * 1024;

interface ConnectionOptions {
  readonly network?: string;
  readonly as?: string;
  readonly connector?: string;
  readonly token?: string;
  readonly json: boolean;
}

interface LocationOptions {
  readonly topic?: string;
  readonly partition?: number;
}

/** The SDK's audits client for the connector the options name. BAD_CONFIG saying what to add when they name none. */
export function auditsFor(options: ConnectionOptions): Audits {
  return new Audits(optionsTransport(options, 60_000));
}

function locationOf(options: LocationOptions): MessageLocation | undefined {
  if (options.topic === undefined && options.partition === undefined) return undefined;
  if (options.topic === undefined || options.partition === undefined) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      '--topic and --partition go together: give both, or neither',
    );
  }
  return { topic: options.topic, partition: options.partition };
}

function partitionNumber(value: string): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0)
    throw new InvalidArgumentError('--partition must be a non-negative integer');
  return parsed;
}

function print(json: boolean, data: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(data)}\n` : `${text}\n`);
}

function listText(items: readonly string[]): string {
  return items.length === 0 ? 'none' : items.join(', ');
}

function subcommand(parent: Command, name: string, description: string, located = true): Command {
  const command = withUsageErrors(new Command(name).description(description), `audit ${name}`)
    .option('--network <file>', `network.json of the network (default ${devNetworkFile})`)
    .option('--as <org>', 'the acting organization: its connector in the network file signs and submits')
    .option('--connector <url>', "instead of --network/--as: the connector's API URL")
    .option('--token <token>', "with --connector: the connector's API token")
    .option('--json', 'print JSON', false);
  if (located) {
    command
      .option(
        '--topic <topic>',
        'topic of the message, when its id alone names messages of several partitions',
      )
      .option('--partition <p>', 'partition of the message, with --topic', partitionNumber);
  }
  parent.addCommand(command);
  return command;
}

export function buildAuditCommand(): Command {
  const audit = withUsageErrors(
    new Command('audit').description(
      'Audits of escrowed messages: an auditor requests one, members approve, the auditor fetches it rebuilt from its holders without the owner.',
    ),
    'audit',
  );

  subcommand(audit, 'request', 'Request an audit of an escrowed message (auditor organizations only).')
    .argument('<message-id>', 'id of the escrowed message')
    .requiredOption('--reason <text>', 'why: recorded on-chain for the approvers')
    .action(async (id: string, options: ConnectionOptions & LocationOptions & { reason: string }) => {
      const at = locationOf(options);
      const result = await auditsFor(options).request({
        id,
        reason: options.reason,
        ...(at === undefined ? {} : { at }),
      });
      print(
        options.json,
        result,
        `requested audit ${result.requestId} of ${result.id} in ${result.group} (${result.state}); members approve it with: ledgerbus audit approve ${result.requestId} --as ORG`,
      );
    });

  subcommand(
    audit,
    'approve',
    'Approve an audit request as this organization (a member other than the auditor and the sender).',
  )
    .argument('<request-id>', 'the audit request id `audit request` printed')
    .action(async (requestId: string, options: ConnectionOptions & LocationOptions) => {
      const at = locationOf(options);
      const result = await auditsFor(options).approve(requestId, at === undefined ? {} : { at });
      print(
        options.json,
        result,
        `approved ${requestId}: ${result.approvals} of ${result.approvalsNeeded} approvals, ${result.state}`,
      );
    });

  subcommand(
    audit,
    'list',
    'Every audit request this organization has seen, with approvals, releases and outcome.',
    false,
  ).action(async (options: ConnectionOptions) => {
    const audits = await auditsFor(options).list();
    print(options.json, audits, audits.length === 0 ? 'no audits' : listTable(audits));
  });

  subcommand(
    audit,
    'status',
    "An escrowed message's shares, attestations, chunk placement, audits and whether it is retrievable.",
  )
    .argument('<message-id>', 'id of the escrowed message')
    .action(async (id: string, options: ConnectionOptions & LocationOptions) => {
      const at = locationOf(options);
      const status = await auditsFor(options).status(id, at === undefined ? {} : { at });
      print(options.json, status, statusText(status));
    });

  subcommand(
    audit,
    'fetch',
    'Rebuild an escrowed message for your approved audit (from any live holders, every share and chunk verified) and write it to --out.',
  )
    .argument('<message-id>', 'id of the escrowed message')
    .requiredOption('--out <file>', 'where to write the plaintext (written whole, then renamed into place)')
    .option('--request <request-id>', 'which of your approved audits to use (default: the newest)')
    .action(
      async (
        id: string,
        options: ConnectionOptions & LocationOptions & { out: string; request?: string },
      ) => {
        const audits = auditsFor(options);
        const at = locationOf(options);
        const which = {
          ...(options.request === undefined ? {} : { requestId: options.request }),
          ...(at === undefined ? {} : { at }),
        };
        const result = await withTicker(`fetching ${id}`, audits.fetch(id, which));
        const body = await audits.payload(id, { ...which, requestId: result.requestId });
        await writeAtomically(options.out, Readable.fromWeb(body as never), result);
        print(
          options.json,
          { ...result, file: options.out },
          [
            `rebuilt ${id} (audit ${result.requestId}): ${result.size} bytes, sha256 ${result.sha256}, written to ${options.out}`,
            `${result.chunks} chunks in ${result.regenerationMs} ms; bad shares: ${listText(result.badShares)}; bad holders: ${listText(result.badHolders)}`,
          ].join('\n'),
        );
      },
    );

  subcommand(
    audit,
    'record',
    'Write the audit record of a request (or of the newest audit of a message): request, approvals, releases and outcome with their block proofs, checkable offline with `ledgerbus verify`.',
  )
    .argument('<request-id>', 'the audit request id (or the id of an escrowed message: its newest audit)')
    .requiredOption('--out <file>', 'where to write the record (JSON)')
    .action(async (key: string, options: ConnectionOptions & LocationOptions & { out: string }) => {
      const at = locationOf(options);
      const bundle = await auditsFor(options).record(key, at === undefined ? {} : { at });
      const temporary = join(
        dirname(options.out),
        `.${basename(options.out)}.${randomBytes(6).toString('hex')}.partial`,
      );
      try {
        writeFileSync(temporary, `${JSON.stringify(bundle, null, 2)}\n`, { mode: 0o644 });
        renameSync(temporary, options.out);
      } catch (error) {
        rmSync(temporary, { force: true });
        throw error;
      }
      const summary = bundle.audit;
      print(
        options.json,
        { ...summary, file: options.out },
        [
          `audit ${summary.requestId} of ${summary.id} (${summary.topic}/${summary.partition}) by ${summary.auditor}: ${summary.state}; written to ${options.out}`,
          `approvals: ${listText(summary.approvals)}; releases: ${listText(summary.releases)}; outcome: ${summary.outcome === null ? 'none yet' : summary.outcome.outcome}`,
          `check it offline: ledgerbus verify ${options.out} --network network.json`,
        ].join('\n'),
      );
    });

  return audit;
}

function listTable(audits: readonly AuditSummary[]): string {
  const header = ['REQUEST', 'MESSAGE', 'GROUP', 'AUDITOR', 'STATE', 'APPROVALS', 'RELEASES', 'OUTCOME'];
  const rows = audits.map((entry) => [
    entry.requestId,
    entry.id,
    entry.group,
    entry.auditor,
    entry.state,
    `${entry.approvals.length}/${entry.approvalsNeeded}`,
    listText(entry.releases.map((release) => release.holder)),
    entry.outcome === null ? '-' : entry.outcome.outcome,
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function statusText(status: EscrowStatus): string {
  const shares = status.shares.map(
    (share) => `${share.holder}#${share.index}:${share.attested ?? 'not attested'}`,
  );
  return [
    `${status.id} in ${status.group} from ${status.sender}: escrow ${status.status}, key ${status.threshold} of ${status.shares.length} shares`,
    `shares     ${shares.join(', ')}`,
    `chunks     ${status.placement.chunks} on ${status.placement.replicas} holders each among ${listText(status.placement.holders)}; ${status.placement.allDistinct ? 'all distinct' : 'NOT all distinct'}${status.placement.ownerHolds ? '; the owner holds some' : ''}`,
    `audits     ${status.audits.length === 0 ? 'none' : status.audits.map((entry) => `${entry.requestId} ${entry.state}`).join(', ')}`,
    status.retrievable ? 'retrievable: yes' : `retrievable: no — ${status.why ?? ''}`,
  ].join('\n');
}

/** Shows the seconds a long call has taken on a terminal's stderr until it settles. */
async function withTicker<T>(label: string, work: Promise<T>): Promise<T> {
  if (process.stderr.isTTY !== true) return work;
  const started = Date.now();
  const tick = (): void => {
    process.stderr.write(`\r${label}… ${Math.floor((Date.now() - started) / 1000)} s`);
  };
  tick();
  const timer = setInterval(tick, 1000);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    process.stderr.write('\r\x1b[K');
  }
}

/**
 * Writes `source` to `out` through a temporary file beside it, fsynced then renamed, so `out` is
 * either absent or whole; PAYLOAD_CORRUPT (nothing written) when the bytes are not `expected`'s.
 */
async function writeAtomically(out: string, source: Readable, expected: AuditFetchResult): Promise<void> {
  const temporary = join(dirname(out), `.${basename(out)}.${randomBytes(6).toString('hex')}.partial`);
  const hash = createHash('sha256');
  let seen = 0;
  const bar =
    expected.size >= progressThresholdBytes && process.stderr.isTTY === true
      ? new cliProgress.SingleBar({
          format: 'download [{bar}] {percentage}% {value}/{total} MiB',
          stream: process.stderr,
        })
      : undefined;
  bar?.start(Math.ceil(expected.size / 1048576), 0);
  const check = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      seen += chunk.length;
      bar?.update(Math.floor(seen / 1048576));
      callback(null, chunk);
    },
  });
  try {
    await pipeline(source, check, createWriteStream(temporary, { mode: 0o600 }));
    if (seen !== expected.size || hash.digest('hex') !== expected.sha256) {
      throw new LedgerbusError(
        ErrorCode.PayloadCorrupt,
        `the downloaded plaintext of ${expected.id} is not the ${expected.size} bytes with sha256 ${expected.sha256} the connector rebuilt`,
      );
    }
    const descriptor = openSync(temporary, 'r');
    try {
      fsyncSync(descriptor);
    } finally {
      closeSync(descriptor);
    }
    renameSync(temporary, out);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  } finally {
    bar?.stop();
  }
}
