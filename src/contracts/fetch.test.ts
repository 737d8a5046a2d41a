import { describe, expect, it } from 'vitest';
import { SigningDomain, signingKeyFromSeed } from '../crypto/index.js';
import { isLedgerbusError } from '../errors.js';
import {
  FetchNonceWindow,
  checkFetchFreshness,
  decodeFetchRequest,
  encodeFetchRequest,
  fetchLimits,
  fetchRequestSignatureValid,
} from './fetch.js';
import type { FetchRequest } from './fetch.js';

const key = signingKeyFromSeed(new Uint8Array(32).fill(7));
const netA = SigningDomain.of('net-a');
const netB = SigningDomain.of('net-b');
const t0 = 1_800_000_000_000;
let counter = 0;

function request(overrides: { timestamp?: number; expiresAt?: number; network?: string } = {}): FetchRequest {
  const nonce = new Uint8Array(16);
  new DataView(nonce.buffer).setUint32(0, ++counter);
  return decodeFetchRequest(
    encodeFetchRequest(
      {
        requester: 'org2',
        partitionId: 'demo/0',
        id: 'm-1',
        nonce,
        timestamp: overrides.timestamp ?? t0,
        ...(overrides.expiresAt === undefined ? {} : { expiresAt: overrides.expiresAt }),
      },
      SigningDomain.of(overrides.network ?? 'net-a').signer(key),
    ),
  );
}

function codeOf(body: () => void): string {
  try {
    body();
    return 'OK';
  } catch (error) {
    if (isLedgerbusError(error)) return error.code;
    throw error;
  }
}

describe('fetch requests: network and expiry', () => {
  it('signs the network and the expiry: changing either breaks the signature', () => {
    const signed = request();
    expect(signed.network).toBe('net-a');
    expect(fetchRequestSignatureValid(signed, netA)).toBe(true);
    expect(fetchRequestSignatureValid({ ...signed, network: 'net-b' }, netA)).toBe(false);
    expect(fetchRequestSignatureValid({ ...signed, expiresAt: signed.expiresAt + 1 }, netA)).toBe(false);
    expect(signed.expiresAt).toBe(t0 + fetchLimits.lifetimeMsDefault);
  });

  it("is signed in its network's domain: relabelled for another network, it verifies in neither", () => {
    const signed = request();
    expect(fetchRequestSignatureValid(signed, netB)).toBe(false);
    const relabelled = { ...signed, network: 'net-b' };
    expect(fetchRequestSignatureValid(relabelled, netB)).toBe(false);
    expect(fetchRequestSignatureValid(request({ network: 'net-b' }), netB)).toBe(true);
  });

  it('is valid from its timestamp (less the allowed skew) to its expiry, for its network only', () => {
    const signed = request();
    expect(codeOf(() => checkFetchFreshness(signed, 'net-a', t0))).toBe('OK');
    expect(codeOf(() => checkFetchFreshness(signed, 'net-a', signed.expiresAt))).toBe('OK');
    expect(codeOf(() => checkFetchFreshness(signed, 'net-a', signed.expiresAt + 1))).toBe('REQUEST_EXPIRED');
    expect(codeOf(() => checkFetchFreshness(signed, 'net-a', t0 - fetchLimits.clockSkewMsMax))).toBe('OK');
    expect(codeOf(() => checkFetchFreshness(signed, 'net-a', t0 - fetchLimits.clockSkewMsMax - 1))).toBe(
      'REQUEST_EXPIRED',
    );
    expect(codeOf(() => checkFetchFreshness(signed, 'net-b', t0))).toBe('WRONG_NETWORK');
  });

  it('refuses a lifetime over the maximum, and an expiry before the timestamp', () => {
    const long = request({ expiresAt: t0 + fetchLimits.lifetimeMsMax + 1 });
    expect(codeOf(() => checkFetchFreshness(long, 'net-a', t0))).toBe('REQUEST_EXPIRED');
    const backwards = request({ expiresAt: t0 - 1 });
    expect(codeOf(() => checkFetchFreshness(backwards, 'net-a', t0 - 2))).toBe('REQUEST_EXPIRED');
  });
});

describe('FetchNonceWindow', () => {
  it('refuses a nonce twice, whichever copy of the request carries it', () => {
    const window = new FetchNonceWindow();
    const signed = request();
    window.admit(signed, t0);
    expect(codeOf(() => window.admit({ ...signed }, t0 + 1))).toBe('REPLAY');
    window.admit(request(), t0);
    expect(window.size).toBe(2);
  });

  it('is bounded: when full it forgets expired nonces first, and refuses (retriable) if none has expired', () => {
    const window = new FetchNonceWindow(2);
    const first = request();
    window.admit(first, t0);
    window.admit(request(), t0);
    expect(codeOf(() => window.admit(request(), t0))).toBe('OVERLOADED');
    window.admit(request(), first.expiresAt + 1);
    expect(window.size).toBe(1);
  });
});
