import { describe, expect, it } from 'vitest';
import { isLedgerbusError } from '../errors.js';
import { parseGenesis } from './genesis.js';
import { testGenesis } from './testing/fixtures.js';

function refusal(value: unknown): string {
  try {
    parseGenesis(value);
    return 'OK';
  } catch (error) {
    if (isLedgerbusError(error)) return `${error.code} ${error.message}`;
    throw error;
  }
}

describe('parseGenesis: one key, one party', () => {
  it('accepts the test genesis', () => {
    expect(refusal(testGenesis())).toBe('OK');
  });

  it("refuses a node key that is also an organization's signing key, in either order", () => {
    const genesis = testGenesis();
    const nodes = genesis.nodes.map((node, index) =>
      index === 0 ? { ...node, publicKey: genesis.organizations[1]!.signingKeys[0]! } : node,
    );
    expect(refusal({ ...genesis, nodes })).toMatch(/^BAD_CONFIG .*duplicate key/);
  });

  it('refuses one signing key for two organizations, and one key for two nodes', () => {
    const genesis = testGenesis();
    const organizations = genesis.organizations.map((organization, index) =>
      index === 1 ? { ...organization, signingKeys: genesis.organizations[0]!.signingKeys } : organization,
    );
    expect(refusal({ ...genesis, organizations })).toMatch(/^BAD_CONFIG .*duplicate key/);
    const nodes = genesis.nodes.map((node, index) =>
      index === 1 ? { ...node, publicKey: genesis.nodes[0]!.publicKey } : node,
    );
    expect(refusal({ ...genesis, nodes })).toMatch(/^BAD_CONFIG .*duplicate key/);
  });
});
