import { describe, expect, it } from 'vitest';
import { encodeCanonical } from '../codec/index.js';
import { ErrorCode } from '../errors.js';
import type { Certificate } from './certificate.js';
import { decodeCertificate, encodeCertificate, issueCertificate, verifyCertificate } from './certificate.js';
import { signingKeyFromSeed } from './keys.js';
import { SigningDomain } from './sign.js';

const network = SigningDomain.of('acme-consortium');

const orgKey = signingKeyFromSeed(new Uint8Array(32).fill(10));
const otherOrgKey = signingKeyFromSeed(new Uint8Array(32).fill(11));
const nodeKey = signingKeyFromSeed(new Uint8Array(32).fill(12));
const day = 86_400_000;
const now = Date.UTC(2025, 0, 1);

const fields = {
  orgId: 'acme',
  subjectId: 'node-1',
  role: 'node',
  publicKey: nodeKey.publicKey,
  notBefore: now - day,
  notAfter: now + day,
} as const;
const cert = issueCertificate(network.signer(orgKey), fields);

/** `verifyCertificate` in `network` (or `domain`). */
function verifyIn(
  certificate: Certificate,
  orgPublicKey: Uint8Array,
  nowMs: number,
  expected?: { orgId?: string; subjectId?: string; role?: Certificate['role'] },
  domain: SigningDomain = network,
): void {
  verifyCertificate(certificate, {
    signing: domain,
    orgPublicKey,
    nowMs,
    ...(expected === undefined ? {} : { expected }),
  });
}

function rejection(action: () => void): string {
  try {
    action();
  } catch (error) {
    expect(error).toMatchObject({ code: ErrorCode.BadCertificate });
    return (error as Error).message;
  }
  throw new Error('expected BadCertificate');
}

describe('certificates', () => {
  it('accepts a valid certificate within its window, boundaries included as documented', () => {
    expect(cert.version).toBe(1);
    expect(cert.signature).toHaveLength(64);
    verifyIn(cert, orgKey.publicKey, now);
    verifyIn(cert, orgKey.publicKey, fields.notBefore);
    verifyIn(cert, orgKey.publicKey, fields.notAfter - 1);
    verifyIn(cert, orgKey.publicKey, now, { orgId: 'acme', subjectId: 'node-1', role: 'node' });
  });

  it('rejects an expired certificate', () => {
    expect(rejection(() => verifyIn(cert, orgKey.publicKey, fields.notAfter))).toMatch(/expired/);
  });

  it('rejects a certificate that is not yet valid', () => {
    expect(rejection(() => verifyIn(cert, orgKey.publicKey, fields.notBefore - 1))).toMatch(/not yet valid/);
  });

  it('rejects a certificate issued in another network by the same org key', () => {
    const elsewhere = SigningDomain.of('acme-test-consortium');
    const issuedElsewhere = issueCertificate(elsewhere.signer(orgKey), fields);
    verifyIn(issuedElsewhere, orgKey.publicKey, now, undefined, elsewhere);
    expect(rejection(() => verifyIn(issuedElsewhere, orgKey.publicKey, now))).toMatch(
      /bad signature.*acme-consortium/,
    );
    expect(rejection(() => verifyIn(cert, orgKey.publicKey, now, undefined, elsewhere))).toMatch(
      /bad signature/,
    );
  });

  it('rejects a certificate signed by another org', () => {
    const forged = issueCertificate(network.signer(otherOrgKey), fields);
    expect(rejection(() => verifyIn(forged, orgKey.publicKey, now))).toMatch(/bad signature/);
  });

  it('rejects a certificate for the wrong org, subject or role when the caller says which it expects', () => {
    expect(rejection(() => verifyIn(cert, orgKey.publicKey, now, { orgId: 'globex' }))).toMatch(/wrong org/);
    expect(rejection(() => verifyIn(cert, orgKey.publicKey, now, { subjectId: 'node-2' }))).toMatch(
      /wrong subject/,
    );
    expect(rejection(() => verifyIn(cert, orgKey.publicKey, now, { role: 'connector' }))).toMatch(
      /wrong role/,
    );
  });

  it.each<[string, Partial<Certificate>]>([
    ['orgId', { orgId: 'acme2' }],
    ['subjectId', { subjectId: 'node-2' }],
    ['role', { role: 'connector' }],
    ['publicKey', { publicKey: signingKeyFromSeed(new Uint8Array(32).fill(13)).publicKey }],
    ['notBefore', { notBefore: fields.notBefore - 1 }],
    ['notAfter', { notAfter: fields.notAfter + day }],
    ['signature', { signature: cert.signature.map((byte, index) => (index === 0 ? byte ^ 1 : byte)) }],
  ])('rejects a certificate whose %s was tampered with', (_field, change) => {
    expect(rejection(() => verifyIn({ ...cert, ...change }, orgKey.publicKey, now))).toMatch(/bad signature/);
  });

  it('rejects a malformed certificate as BadCertificate, not a crash', () => {
    const malformed = { ...cert, publicKey: new Uint8Array(31) };
    expect(rejection(() => verifyIn(malformed, orgKey.publicKey, now))).toMatch(
      /malformed.*certificate\.publicKey/,
    );
    expect(rejection(() => verifyIn({ ...cert, version: 2 as 1 }, orgKey.publicKey, now))).toMatch(
      /malformed/,
    );
  });

  it('refuses to issue a certificate that peers would reject', () => {
    expect(() => issueCertificate(network.signer(orgKey), { ...fields, notAfter: fields.notBefore })).toThrow(
      expect.objectContaining({ code: ErrorCode.SchemaMismatch }),
    );
    expect(() => issueCertificate(network.signer(orgKey), { ...fields, orgId: '' })).toThrow(/^orgId: /);
  });

  it('round-trips through its strict encoding', () => {
    const decoded = decodeCertificate(encodeCertificate(cert));
    expect(decoded).toEqual(cert);
    verifyIn(decoded, orgKey.publicKey, now);
  });

  it('decodes strictly: unknown fields, missing fields and oversize input are rejected', () => {
    expect(() => decodeCertificate(encodeCanonical({ ...cert, extra: 1 }))).toThrow(
      expect.objectContaining({ code: ErrorCode.SchemaMismatch, message: 'extra: unknown field' }),
    );
    const { signature: _signature, ...unsigned } = cert;
    expect(() => decodeCertificate(encodeCanonical(unsigned))).toThrow(/^signature: missing field/);
    expect(() => decodeCertificate(encodeCanonical({ ...cert, orgId: 'x'.repeat(2000) }))).toThrow(
      expect.objectContaining({ code: ErrorCode.Oversize }),
    );
  });
});
