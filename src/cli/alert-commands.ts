/**
 * `ledgerbus alerts ...` (DESIGN §9, docs/alerts.md): what nodes' anomaly detectors raised on the
 * ledger, through an organization's connector (the SDK's `Alerts`). A supervisor sees every alert,
 * acknowledges them (lifting any quota they imposed), confirms a proposed suspension with
 * `ack --suspend`, and sets what nodes may do on their own (`policy set`); anyone else sees the
 * alerts about itself. The connector is the `--as` organization's in the network file (default: the
 * `ledgerbus dev` network's), or `--connector` with `--token`.
 */
import { Command, InvalidArgumentError } from 'commander';
import { Alerts } from '../client/alerts.js';
import type { AlertJson, AlertPolicyJson } from '../client/alerts.js';
import { LedgerbusEvents } from '../client/events.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { alertLimits, defaultAlertPolicy } from '../registry/alert-schemas.js';
import { connectedCommand, print, transportFor } from './dataset-commands.js';
import type { ConnectionOptions } from './dataset-commands.js';
import { integerOption } from './option-parsers.js';
import { withUsageErrors } from './usage-errors.js';

const durationUnits = new Map<string, number>([
  ['ms', 1],
  ['s', 1000],
  ['m', 60_000],
  ['h', 3_600_000],
  ['d', 86_400_000],
]);

/** A duration such as 90s, 10m, 2h or 1d (or plain milliseconds) in ms; `name` is the flag. */
export function durationOption(name: string) {
  return (value: string): number => {
    const match = /^\s*(\d+)\s*(ms|s|m|h|d)?\s*$/.exec(value);
    const ms = match === null ? Number.NaN : Number(match[1]) * durationUnits.get(match[2] ?? 'ms')!;
    if (!Number.isSafeInteger(ms) || ms < 1) {
      throw new InvalidArgumentError(`${name} must be a duration such as 90s, 10m, 2h or 1d`);
    }
    return ms;
  };
}

/**
 * A point in time (ms since the epoch): an ISO 8601 time (2025-01-31T12:00:00Z) or a duration back
 * from `now` (10m: the last ten minutes).
 */
export function sinceOption(now: () => number = Date.now) {
  const duration = durationOption('--since');
  return (value: string): number => {
    if (/^\s*\d+\s*(ms|s|m|h|d)\s*$/.test(value)) return now() - duration(value);
    const time = /^\d{4}-\d{2}-\d{2}/.test(value.trim()) ? Date.parse(value) : Number.NaN;
    if (Number.isNaN(time)) {
      throw new InvalidArgumentError(
        '--since must be an ISO time (2025-01-31T12:00:00Z) or a duration back from now (10m, 2h, 1d)',
      );
    }
    return time;
  };
}

function severityOption(value: string): AlertPolicyJson['ledgerSeverityMin'] {
  if (value === 'info' || value === 'warning' || value === 'critical') return value;
  throw new InvalidArgumentError('--ledger-severity must be info, warning or critical');
}

/** The SDK's alerts client for the connector the options name (BAD_CONFIG when they name none). */
function alertsFor(options: ConnectionOptions): Alerts {
  const transport = transportFor(options);
  return new Alerts(transport, () => new LedgerbusEvents(transport));
}

export function buildAlertsCommand(): Command {
  const alerts = withUsageErrors(
    new Command('alerts').description(
      'Alerts nodes raised about organizations (DESIGN §9): list them; supervisors acknowledge them, confirm proposed suspensions and set what nodes may do on their own.',
    ),
    'alerts',
  );

  connectedCommand(
    alerts,
    'alerts',
    'list',
    'Alerts you may see, newest first: every alert for a supervisor, those about your organization for anyone else.',
  )
    .option('--org <org>', 'only alerts about this organization')
    .option(
      '--since <time>',
      'only alerts raised since an ISO time or a duration back from now (10m, 2h, 1d)',
      sinceOption(),
    )
    .option(
      '--limit <n>',
      `alerts at most (default 100, up to ${alertLimits.pageMax})`,
      integerOption('--limit', 1, alertLimits.pageMax),
    )
    .action(async (options: ConnectionOptions & { org?: string; since?: number; limit?: number }) => {
      const result = await alertsFor(options).list({
        ...(options.org === undefined ? {} : { organization: options.org }),
        ...(options.since === undefined ? {} : { since: options.since }),
        ...(options.limit === undefined ? {} : { limit: options.limit }),
      });
      const more = result.more ? `\n(older alerts match too: narrow with --since or raise --limit)` : '';
      print(
        options.json,
        result,
        result.alerts.length === 0 ? 'no alerts' : `${alertsTable(result.alerts)}${more}`,
      );
    });

  connectedCommand(
    alerts,
    'alerts',
    'ack',
    "Acknowledge an alert (supervisors): it is closed and any quota it imposed is lifted. With --suspend, also suspend the alert's subject — the supervisor's confirmation of a proposed suspension.",
  )
    .argument('<id>', 'the alert, as alerts list shows it')
    .option('--note <text>', `why (at most ${alertLimits.noteLengthMax} characters; recorded on the ledger)`)
    .option('--suspend', "also suspend the alert's subject organization", false)
    .action(async (id: string, options: ConnectionOptions & { note?: string; suspend: boolean }) => {
      if (options.note !== undefined && options.note.length > alertLimits.noteLengthMax) {
        throw new LedgerbusError(
          ErrorCode.BadConfig,
          `--note is ${options.note.length} characters; shorten it to ${alertLimits.noteLengthMax}`,
        );
      }
      const result = await alertsFor(options).ack(id, {
        ...(options.note === undefined ? {} : { note: options.note }),
        suspend: options.suspend,
      });
      const about = result.subject === '' ? 'an unregistered key' : result.subject;
      const lines = [`acknowledged alert ${result.id} about ${about} (__system index ${result.index})`];
      if (result.suspended !== undefined) {
        lines.push(
          `suspended ${result.suspended.organization} (__system index ${result.suspended.index}); ledgerbus org approve ${result.suspended.organization} restores it`,
        );
      }
      print(options.json, result, lines.join('\n'));
    });

  // `policy` alone shows it (its default subcommand); options belong to `show` and `set`, so that
  // the connection options after `set` are set's own.
  const policy = withUsageErrors(
    new Command('policy').description(
      'The alert policy: which alerts go on the ledger and what nodes may do about them on their own. `policy` (or `policy show`) prints it; `policy set` changes it.',
    ),
    'alerts policy',
  );
  alerts.addCommand(policy);
  // Built apart and added as the default, so `alerts policy --json` runs it.
  const show = connectedCommand(
    new Command('detached'),
    'alerts policy',
    'show',
    'Print the alert policy in force.',
  ).action(async (options: ConnectionOptions) => {
    const result = await alertsFor(options).policy();
    print(options.json, result, policyText(result.policy));
  });
  policy.addCommand(show, { isDefault: true });

  connectedCommand(
    policy,
    'alerts policy',
    'set',
    'Change the alert policy (supervisors); what you do not name stays as it is.',
  )
    .option(
      '--ledger-severity <severity>',
      'lowest severity written to the ledger: info, warning or critical',
      severityOption,
    )
    .option(
      '--rate-limit-min <n>',
      'lowest quota (requests/s) a node may impose on an organization',
      integerOption('--rate-limit-min', 1),
    )
    .option(
      '--rate-limit-max-duration <duration>',
      'longest a node-imposed quota may last (90s, 10m, 1h)',
      durationOption('--rate-limit-max-duration'),
    )
    .option('--no-rate-limit', 'nodes may not tighten quotas at all')
    .option('--propose-suspension', 'alerts may propose a suspension (a supervisor still decides)')
    .option('--no-propose-suspension', 'alerts may not propose suspensions')
    .action(
      async (
        options: ConnectionOptions & {
          ledgerSeverity?: AlertPolicyJson['ledgerSeverityMin'];
          rateLimitMin?: number;
          rateLimitMaxDuration?: number;
          rateLimit: boolean;
          proposeSuspension?: boolean;
        },
      ) => {
        const limits = options.rateLimitMin !== undefined || options.rateLimitMaxDuration !== undefined;
        if (!options.rateLimit && limits) {
          throw new LedgerbusError(
            ErrorCode.BadConfig,
            '--no-rate-limit and --rate-limit-min/--rate-limit-max-duration contradict each other: give one',
          );
        }
        if (
          options.ledgerSeverity === undefined &&
          !limits &&
          options.rateLimit &&
          options.proposeSuspension === undefined
        ) {
          throw new LedgerbusError(
            ErrorCode.BadConfig,
            'nothing to change: give --ledger-severity, --rate-limit-min, --rate-limit-max-duration, --no-rate-limit or --[no-]propose-suspension',
          );
        }
        const client = alertsFor(options);
        const current = (await client.policy()).policy;
        const base = current.rateLimit ?? defaultAlertPolicy.rateLimit!;
        const rateLimit = !options.rateLimit
          ? undefined
          : limits
            ? {
                requestsPerSecondMin: options.rateLimitMin ?? base.requestsPerSecondMin,
                durationMsMax: options.rateLimitMaxDuration ?? base.durationMsMax,
              }
            : current.rateLimit;
        const next: AlertPolicyJson = {
          ledgerSeverityMin: options.ledgerSeverity ?? current.ledgerSeverityMin,
          ...(rateLimit === undefined ? {} : { rateLimit }),
          proposeSuspension: options.proposeSuspension ?? current.proposeSuspension,
        };
        const result = await client.setPolicy(next);
        print(
          options.json,
          result,
          `alert policy set (__system index ${result.index}):\n${policyText(result.policy)}`,
        );
      },
    );

  return alerts;
}

/** Adds `ledgerbus alerts` to `program`. */
export function registerAlertCommands(program: Command): Command {
  const command = buildAlertsCommand();
  program.addCommand(command);
  return command;
}

function durationText(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

export function policyText(policy: AlertPolicyJson): string {
  return [
    `ledger severity    ${policy.ledgerSeverityMin} and above go on the ledger`,
    `rate limit         ${
      policy.rateLimit === undefined
        ? 'nodes may not tighten quotas'
        : `down to ${policy.rateLimit.requestsPerSecondMin}/s for at most ${durationText(policy.rateLimit.durationMsMax)}`
    }`,
    `propose suspension ${policy.proposeSuspension ? 'allowed (a supervisor decides)' : 'not allowed'}`,
  ].join('\n');
}

function responseText(alert: AlertJson): string {
  const response = alert.response;
  if (response === undefined) return '-';
  return response.kind === 'rateLimit'
    ? `rate ${response.requestsPerSecond}/s ${durationText(response.durationMs)}`
    : 'propose suspension';
}

function alertsTable(alerts: readonly AlertJson[]): string {
  const header = ['ID', 'RAISED', 'SUBJECT', 'RULE', 'SEVERITY', 'SCORE', 'RESPONSE', 'NODES', 'STATE'];
  const rows = alerts.map((alert) => [
    alert.id,
    new Date(alert.raisedAt).toISOString(),
    alert.subject === '' ? '(unknown key)' : alert.subject,
    alert.rule,
    alert.severity,
    `${alert.score}/${alert.threshold}`,
    responseText(alert),
    [alert.node, ...alert.corroboratedBy].join(','),
    alert.ack === undefined ? 'open' : `acked by ${alert.ack.by}`,
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (row: readonly string[]): string =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ');
  const lines = [line(header)];
  alerts.forEach((alert, index) => {
    lines.push(line(rows[index]!));
    if (alert.summary !== '') lines.push(`  ${alert.summary}`);
    if (alert.ack?.note !== undefined) lines.push(`  ack: ${alert.ack.note}`);
  });
  return lines.join('\n');
}
