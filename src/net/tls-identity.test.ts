import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { Buffer } from 'node:buffer';
import { X509Certificate, webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateSigningKey } from '../crypto/keys.js';
import { ErrorCode, isLedgerbusError } from '../errors.js';
import { publicKeyOfCertificate, tlsIdentityFor } from './tls-identity.js';

describe('tlsIdentityFor', () => {
  it('makes a self-signed certificate for the Ed25519 identity key', async () => {
    const key = generateSigningKey();
    const { certPem, keyPem } = await tlsIdentityFor(key, 'node-a, O=Example');
    const certificate = new X509Certificate(certPem);
    expect(certificate.subject).toBe('CN=node-a\\, O=Example');
    expect(certificate.verify(certificate.publicKey)).toBe(true);
    expect(certificate.ca).toBe(false);
    expect(Buffer.from(publicKeyOfCertificate(certificate.raw)).equals(Buffer.from(key.publicKey))).toBe(
      true,
    );
    expect(keyPem).toMatch(/BEGIN PRIVATE KEY/);
  });
});

describe('publicKeyOfCertificate', () => {
  it('refuses a certificate whose key is not Ed25519', async () => {
    const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = await webcrypto.subtle.generateKey(algorithm, false, ['sign', 'verify']);
    const certificate = await x509.X509CertificateGenerator.createSelfSigned(
      { name: 'CN=ecdsa', keys: keys as never, signingAlgorithm: algorithm },
      webcrypto as never,
    );
    expectBadCertificate(() => publicKeyOfCertificate(Buffer.from(certificate.rawData)));
  });

  it('refuses bytes that are not a certificate', () => {
    expectBadCertificate(() => publicKeyOfCertificate(Buffer.from('not a certificate')));
  });
});

function expectBadCertificate(action: () => unknown): void {
  let thrown: unknown;
  try {
    action();
  } catch (error) {
    thrown = error;
  }
  expect(isLedgerbusError(thrown, ErrorCode.BadCertificate)).toBe(true);
}
