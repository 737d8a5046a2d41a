// @peculiar/x509 builds on tsyringe, which needs the Reflect metadata API that no JavaScript engine
// ships; its README asks the application to load a polyfill before the library. ESM evaluates
// imports in order, so this line must stay above the x509 import.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { Buffer } from 'node:buffer';
import { X509Certificate, webcrypto } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { SigningKeyPair } from '../crypto/keys.js';
import { asBuffer } from '../codec/index.js';

/** A certificate and its private key, PEM-encoded as `tls.createSecureContext` takes them. */
export interface TlsIdentity {
  readonly certPem: string;
  readonly keyPem: string;
}

// DER SubjectPublicKeyInfo of an Ed25519 key (RFC 8410 §4) is this 12-byte prefix, then the raw key.
const spkiEd25519Prefix = Buffer.from('302a300506032b6570032100', 'hex');
const ed25519PublicKeyBytes = 32;

// Clocks of peers disagree; a certificate "not yet valid" by a few minutes must not matter. Nothing
// checks validity dates anyway (peers are pinned by key), so the window is simply generous.
const backdateMs = 24 * 60 * 60 * 1000;
const validityMs = 100 * 365 * 24 * 60 * 60 * 1000;

/**
 * A self-signed X.509 certificate for `key`'s Ed25519 public key, named `commonName`, with the PEM
 * private key to go with it. TLS needs a certificate to carry the key; peers authenticate by
 * pinning the key itself (see link.ts), so the certificate's name, dates and self-signature are not
 * what anybody trusts.
 */
export async function tlsIdentityFor(key: SigningKeyPair, commonName: string): Promise<TlsIdentity> {
  if (key.privateKey.asymmetricKeyType !== 'ed25519') {
    throw new LedgerbusError(ErrorCode.BadConfig, 'a TLS identity needs an Ed25519 signing key');
  }
  const keys = await webCryptoKeys(key);
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerialNumber(),
      // The JSON form, unlike a "CN=..." string, needs no escaping of commas or equals signs.
      name: [{ CN: [commonName] }],
      notBefore: new Date(now - backdateMs),
      notAfter: new Date(now + validityMs),
      signingAlgorithm: { name: 'Ed25519' },
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ],
    },
    // Passed explicitly rather than through x509.cryptoProvider.set, which is process-wide state.
    webcrypto as unknown as WebCryptoProvider,
  );
  return {
    certPem: certificate.toString('pem'),
    keyPem: key.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}

/**
 * The raw 32-byte Ed25519 public key in the DER certificate `der`. Throws
 * LedgerbusError(BadCertificate) if `der` is not a certificate or its key is not Ed25519.
 */
export function publicKeyOfCertificate(der: Buffer): Uint8Array {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(der);
  } catch (error) {
    throw new LedgerbusError(ErrorCode.BadCertificate, 'peer certificate is not a valid X.509 certificate', {
      cause: error,
    });
  }
  return rawEd25519PublicKey(certificate.publicKey);
}

function rawEd25519PublicKey(publicKey: KeyObject): Uint8Array {
  if (publicKey.asymmetricKeyType !== 'ed25519') {
    throw new LedgerbusError(
      ErrorCode.BadCertificate,
      `peer certificate holds a ${publicKey.asymmetricKeyType ?? 'non-asymmetric'} key, expected Ed25519`,
    );
  }
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  if (
    spki.length !== spkiEd25519Prefix.length + ed25519PublicKeyBytes ||
    !spki.subarray(0, spkiEd25519Prefix.length).equals(spkiEd25519Prefix)
  ) {
    throw new LedgerbusError(ErrorCode.BadCertificate, 'peer certificate has a malformed Ed25519 key');
  }
  return Uint8Array.from(spki.subarray(spkiEd25519Prefix.length));
}

// The library types these with the DOM's Crypto and CryptoKeyPair, which this Node-only project does
// not load; Node's webcrypto implements the same interfaces.
type WebCryptoProvider = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[1];
type WebCryptoKeyPair = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'];

async function webCryptoKeys(key: SigningKeyPair): Promise<WebCryptoKeyPair> {
  const algorithm = { name: 'Ed25519' };
  const pkcs8 = key.privateKey.export({ format: 'der', type: 'pkcs8' });
  const [privateKey, publicKey] = await Promise.all([
    webcrypto.subtle.importKey('pkcs8', pkcs8, algorithm, false, ['sign']),
    webcrypto.subtle.importKey('raw', asBuffer(key.publicKey), algorithm, true, ['verify']),
  ]);
  return { privateKey, publicKey } as unknown as WebCryptoKeyPair;
}

/** 16 random bytes with the top bit clear: RFC 5280 serials are positive and at most 20 bytes. */
function randomSerialNumber(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = bytes[0]! & 0x7f;
  return Buffer.from(bytes).toString('hex');
}
