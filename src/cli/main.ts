/**
 * The `ledgerbus` command. Every subcommand has --help; expected failures print their stable error
 * code and a sentence saying what to do, and exit with status 2 (1 is kept for "ran, found a problem").
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { isLedgerbusError } from '../errors.js';
import {
  decodeCertificate,
  encodeCertificate,
  fromHex,
  generateSigningKey,
  issueCertificate,
  SigningDomain,
  loadSigningKey,
  networkIdPattern,
  saveSigningKey,
  toHex,
  verifyCertificate,
} from '../crypto/index.js';
import { buildSimCommand } from '../sim/cli.js';
import { generateEncryptionKey, saveEncryptionKey } from '../crypto/envelope/index.js';
import { buildOrgCommand, buildTopicCommand } from './admin-commands.js';
import { buildAlertsCommand } from './alert-commands.js';
import { buildAuditCommand } from './audit-commands.js';
import { buildCatalogCommand } from './catalog-commands.js';
import { buildDatasetCommand } from './dataset-commands.js';
import { buildJobCommand } from './job-commands.js';
import { errorText, invalidVerdict } from './error-output.js';
import {
  buildConnectorCommand,
  buildConsumeCommand,
  buildDevCommand,
  buildNodeCommand,
  buildReceiptCommand,
  buildDeleteReceivedCommand,
  buildSendCommand,
  buildVerifyCommand,
} from './network-commands.js';
import { connectorText } from './connector-target.js';

const version = '0.1.0';

function positiveInteger(name: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 1)
      throw new InvalidArgumentError(`${name} must be a positive integer`);
    return parsed;
  };
}

function hexKey(value: string): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(value))
    throw new InvalidArgumentError('expected 64 hex digits (an Ed25519 public key)');
  return fromHex(value);
}

function networkId(value: string): string {
  if (!networkIdPattern.test(value))
    throw new InvalidArgumentError(
      "expected a network id: genesis `network`, 1 to 128 letters, digits, '.', '_' or '-'",
    );
  return value;
}

function output(json: boolean, data: Record<string, unknown>, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(data)}\n` : `${text}\n`);
}

export function buildProgram(): Command {
  const program = new Command('ledgerbus')
    .version(version)
    .description(
      'ledgerbus: a Kafka-like message broker for cross-organization data, run as a permissioned blockchain.',
    )
    .showHelpAfterError();

  const keys = program
    .command('keys')
    .description(
      'Keys: Ed25519 identities of nodes and connectors, X25519 encryption keys of organizations.',
    );
  keys
    .command('generate')
    .description(
      'Generate a key and save it (PKCS#8 PEM, mode 0600): Ed25519 for signing, X25519 for encryption.',
    )
    .requiredOption('--out <file>', 'where to write the private key')
    .option(
      '--type <type>',
      "ed25519 (nodes, connectors) or x25519 (an organization's encryption key)",
      'ed25519',
    )
    .option('--json', 'print JSON', false)
    .action((options: { out: string; type: string; json: boolean }) => {
      if (options.type !== 'ed25519' && options.type !== 'x25519') {
        throw new InvalidArgumentError('--type must be ed25519 or x25519');
      }
      const key = options.type === 'ed25519' ? generateSigningKey() : generateEncryptionKey();
      if (options.type === 'ed25519') saveSigningKey(options.out, key);
      else saveEncryptionKey(options.out, key);
      const publicKey = toHex(key.publicKey);
      output(
        options.json,
        { file: options.out, type: options.type, publicKey },
        `saved ${options.out}\npublic key ${publicKey}`,
      );
    });
  keys
    .command('public')
    .description('Print the public key of a saved private key.')
    .argument('<file>', 'private key file')
    .option('--json', 'print JSON', false)
    .action((file: string, options: { json: boolean }) => {
      const publicKey = toHex(loadSigningKey(file).publicKey);
      output(options.json, { file, publicKey }, publicKey);
    });

  const cert = program.command('cert').description('Org-signed certificates for node and connector keys.');
  cert
    .command('issue')
    .description("Sign a node's or connector's public key with the org key.")
    .requiredOption('--org-key <file>', "the org's private key")
    .requiredOption('--org <id>', 'org id')
    .requiredOption(
      '--network-id <id>',
      'the network (genesis `network`) the certificate is for; it verifies in no other',
      networkId,
    )
    .requiredOption('--subject <id>', 'node or connector id')
    .requiredOption('--role <role>', 'node or connector')
    .requiredOption('--public-key <hex>', "the subject's Ed25519 public key", hexKey)
    .option('--days <n>', 'validity in days', positiveInteger('--days'), 365)
    .requiredOption('--out <file>', 'where to write the certificate (CBOR)')
    .option('--json', 'print JSON', false)
    .action(
      (options: {
        orgKey: string;
        org: string;
        networkId: string;
        subject: string;
        role: string;
        publicKey: Uint8Array;
        days: number;
        out: string;
        json: boolean;
      }) => {
        if (options.role !== 'node' && options.role !== 'connector') {
          throw new InvalidArgumentError('--role must be node or connector');
        }
        const now = Date.now();
        const orgSigner = SigningDomain.of(options.networkId).signer(loadSigningKey(options.orgKey));
        const certificate = issueCertificate(orgSigner, {
          orgId: options.org,
          subjectId: options.subject,
          role: options.role,
          publicKey: options.publicKey,
          notBefore: now,
          notAfter: now + options.days * 86_400_000,
        });
        writeFileSync(options.out, encodeCertificate(certificate));
        output(
          options.json,
          {
            file: options.out,
            network: options.networkId,
            orgId: options.org,
            subjectId: options.subject,
            role: options.role,
            notAfter: certificate.notAfter,
          },
          `saved ${options.out}: ${options.role} ${options.subject} of ${options.org} in network ${options.networkId}, valid until ${new Date(certificate.notAfter).toISOString()}`,
        );
      },
    );
  cert
    .command('verify')
    .description(
      'Check a certificate against the org public key in one network; exit 0 when valid, 1 with the reason otherwise.',
    )
    .argument('<file>', 'certificate file')
    .requiredOption('--org-public-key <hex>', "the org's Ed25519 public key", hexKey)
    .requiredOption(
      '--network-id <id>',
      'the network (genesis `network`) it must have been issued for',
      networkId,
    )
    .option('--json', 'print JSON', false)
    .action((file: string, options: { orgPublicKey: Uint8Array; networkId: string; json: boolean }) => {
      const certificate = decodeCertificate(readFileSync(file));
      try {
        verifyCertificate(certificate, {
          signing: SigningDomain.of(options.networkId),
          orgPublicKey: options.orgPublicKey,
          nowMs: Date.now(),
        });
      } catch (error) {
        if (!isLedgerbusError(error)) throw error;
        process.stdout.write(invalidVerdict(options.json, error.code, error.message));
        process.exitCode = 1;
        return;
      }
      output(
        options.json,
        {
          valid: true,
          network: options.networkId,
          orgId: certificate.orgId,
          subjectId: certificate.subjectId,
          role: certificate.role,
        },
        `valid: ${certificate.role} ${certificate.subjectId} of ${certificate.orgId} in network ${options.networkId}`,
      );
    });

  program.addCommand(
    buildSimCommand().description('Run the deterministic PBFT simulator (faults, Byzantine replicas).'),
  );
  for (const command of [
    buildDevCommand(),
    buildNodeCommand(),
    buildConnectorCommand(),
    buildSendCommand(),
    buildConsumeCommand(),
    buildReceiptCommand(),
    buildDeleteReceivedCommand(),
    buildVerifyCommand(),
    buildTopicCommand(),
    buildOrgCommand(),
    buildAuditCommand(),
    buildCatalogCommand(),
    buildDatasetCommand(),
    buildJobCommand(),
    buildAlertsCommand(),
  ]) {
    program.addCommand(command);
  }
  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (error) {
    if (isLedgerbusError(error)) {
      const hint =
        error.code === 'CONNECTION_CLOSED' ? ' (is the connector, or `ledgerbus dev`, running?)' : '';
      process.stderr.write(errorText(error, hint) + connectorText(error.code));
      process.exitCode = 2;
      return;
    }
    if (error instanceof InvalidArgumentError) {
      process.stderr.write(`error: ${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw error;
  }
}
