import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ErrorCode } from '../errors.js';
import { refusal } from '../testing/refusal.js';
import { loadConnectorConfig } from './config.js';

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function configFile(fields: Record<string, unknown>): string {
  const directory = mkdtempSync(join(tmpdir(), 'ledgerbus-connector-config-'));
  directories.push(directory);
  const path = join(directory, 'connector.yaml');
  const base = {
    organization: 'org1',
    keyFile: 'connector.key',
    encryptionKeyFile: 'encryption.key',
    dataDirectory: 'data',
    genesis: 'genesis.json',
    api: { listen: '127.0.0.1:7501', token: 'a-token-of-sixteen-chars' },
  };
  writeFileSync(path, stringify({ ...base, ...fields }), { mode: 0o600 });
  return path;
}

describe('connector.yaml nodes and balancer', () => {
  it('takes node ids or { id, address } entries, and a balancer policy', () => {
    const config = loadConnectorConfig(
      configFile({
        nodes: ['node1', { id: 'node1b', address: '10.0.0.5:7401' }],
        balancer: { policy: 'least-loaded', decayMs: 3000 },
      }),
    );
    expect(config.nodes).toEqual([{ id: 'node1' }, { id: 'node1b', address: '10.0.0.5:7401' }]);
    expect(config.balancer).toEqual({ policy: 'least-loaded', decayMs: 3000 });
  });

  it('keeps the single node of older files, and refuses both forms at once or an unknown policy', async () => {
    expect(loadConnectorConfig(configFile({ node: 'node1' })).node).toBe('node1');
    const both = await refusal(() => loadConnectorConfig(configFile({ node: 'node1', nodes: ['node1'] })));
    expect(both.code).toBe(ErrorCode.BadConfig);
    expect(both.message).toContain('either node or nodes');
    const policy = await refusal(() => loadConnectorConfig(configFile({ balancer: { policy: 'random' } })));
    expect(policy.code).toBe(ErrorCode.BadConfig);
  });
});

describe('connector.yaml producer', () => {
  it('takes lingerMs and inFlightBatchesMax, and leaves them to the defaults when absent', () => {
    const config = loadConnectorConfig(configFile({ producer: { lingerMs: 5, inFlightBatchesMax: 4 } }));
    expect(config.producer).toEqual({ lingerMs: 5, inFlightBatchesMax: 4 });
    expect(loadConnectorConfig(configFile({ producer: { lingerMs: 0 } })).producer).toEqual({ lingerMs: 0 });
    expect(loadConnectorConfig(configFile({})).producer).toBeUndefined();
  });

  it.each([
    [{ lingerMs: 1001 }, 'producer.lingerMs'],
    [{ lingerMs: -1 }, 'producer.lingerMs'],
    [{ lingerMs: 2.5 }, 'producer.lingerMs'],
    [{ lingerMs: '5' }, 'producer.lingerMs'],
    [{ inFlightBatchesMax: 0 }, 'producer.inFlightBatchesMax'],
    [{ inFlightBatchesMax: 65 }, 'producer.inFlightBatchesMax'],
    [{ inFlightBatchesMax: 1.5 }, 'producer.inFlightBatchesMax'],
    [{ lingerMS: 5 }, 'producer.lingerMS'],
  ])('refuses producer %j as BAD_CONFIG naming %s', async (producer, field) => {
    const error = await refusal(() => loadConnectorConfig(configFile({ producer })));
    expect(error.code).toBe(ErrorCode.BadConfig);
    expect(error.message).toContain(field);
  });
});
