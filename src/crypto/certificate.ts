import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';
import { decodeWith, encodeWith, t } from '../codec/schema.js';
import { publicKeyBytes } from './keys.js';
import { signatureBytes } from './sign.js';
import type { Signer, SigningDomain } from './sign.js';

/**
 * An organization's statement that `publicKey` belongs to its node or connector `subjectId` between
 * `notBefore` (inclusive) and `notAfter` (exclusive), both in ms since the Unix epoch, in one
 * network: the signature is in that network's domain, so it says nothing in another network where
 * the organization uses the same key.
 */
export interface Certificate {
  readonly version: 1;
  readonly orgId: string;
  readonly subjectId: string;
  readonly role: 'node' | 'connector';
  readonly publicKey: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly signature: Uint8Array;
}

export type CertificateFields = Omit<Certificate, 'version' | 'signature'>;

/** Signing domain type of certificates (see `domainHash`). */
export const certificateDomain = 'certificate';
/** Upper bound on an encoded certificate; real ones are about 200 bytes. */
export const certificateBytesMax = 1024;

const identifier = t.string({ minLength: 1, maxLength: 128 });

const signedFields = {
  version: t.literal(1),
  orgId: identifier,
  subjectId: identifier,
  role: t.oneOf('node', 'connector'),
  publicKey: t.bytes({ length: publicKeyBytes }),
  notBefore: t.uint(),
  notAfter: t.uint(),
};

const windowIsOrdered = (fields: { notBefore: number; notAfter: number }): string | undefined =>
  fields.notBefore < fields.notAfter ? undefined : 'notBefore must be earlier than notAfter';

const unsignedCertificateSchema = t.refine(t.record(signedFields), windowIsOrdered);

/** Strict schema of an encoded certificate (exact fields, key and signature lengths, ordered window). */
export const certificateSchema = t.refine(
  t.record({ ...signedFields, signature: t.bytes({ length: signatureBytes }) }),
  windowIsOrdered,
);

/**
 * Certificate for `fields`, signed by `orgSigner` (the organization's key, bound to the network the
 * certificate is for) over the canonical encoding of every field except the signature. Throws
 * LedgerbusError(SchemaMismatch) naming the field if `fields` would not pass `certificateSchema` (so
 * we never issue something peers reject), e.g. notBefore ≥ notAfter.
 */
export function issueCertificate(orgSigner: Signer, fields: CertificateFields): Certificate {
  const unsigned = {
    version: 1 as const,
    orgId: fields.orgId,
    subjectId: fields.subjectId,
    role: fields.role,
    publicKey: fields.publicKey,
    notBefore: fields.notBefore,
    notAfter: fields.notAfter,
  };
  const signature = orgSigner.sign(certificateDomain, encodeWith(unsignedCertificateSchema, unsigned));
  return Object.freeze({ ...unsigned, signature });
}

/** What a certificate is checked against. */
export interface CertificateCheck {
  /** The network the certificate must have been issued for. */
  readonly signing: SigningDomain;
  /** The key the registry holds for `cert.orgId`; the signature check ties the two together. */
  readonly orgPublicKey: Uint8Array;
  readonly nowMs: number;
  readonly expected?: { orgId?: string; subjectId?: string; role?: Certificate['role'] };
}

/**
 * Accepts `cert` only if it is well formed, names the expected org/subject/role when `expected`
 * gives them, is signed by `orgPublicKey` for the network of `signing`, and
 * `notBefore ≤ nowMs < notAfter`. Otherwise throws LedgerbusError(BadCertificate) whose message
 * gives the reason (malformed, wrong org, wrong subject, wrong role, bad signature — a certificate
 * issued in another network among them — not yet valid, expired).
 */
export function verifyCertificate(cert: Certificate, check: CertificateCheck): void {
  const { signing, orgPublicKey, nowMs, expected = {} } = check;
  let signedBytes: Uint8Array;
  try {
    certificateSchema.parse(cert, 'certificate');
    signedBytes = encodeWith(unsignedCertificateSchema, withoutSignature(cert));
  } catch (error) {
    if (!isLedgerbusError(error)) throw error;
    throw badCertificate(cert, `is malformed (${error.message})`);
  }
  if (expected.orgId !== undefined && cert.orgId !== expected.orgId) {
    throw badCertificate(cert, `is from the wrong org (expected ${expected.orgId})`);
  }
  if (expected.subjectId !== undefined && cert.subjectId !== expected.subjectId) {
    throw badCertificate(cert, `is for the wrong subject (expected ${expected.subjectId})`);
  }
  if (expected.role !== undefined && cert.role !== expected.role) {
    throw badCertificate(cert, `is for the wrong role (expected ${expected.role})`);
  }
  if (!signing.verify(orgPublicKey, certificateDomain, signedBytes, cert.signature)) {
    throw badCertificate(
      cert,
      `has a bad signature: not signed by this key of org ${cert.orgId} for network ${signing.network}`,
    );
  }
  if (nowMs < cert.notBefore) {
    throw badCertificate(cert, `is not yet valid (valid from ${new Date(cert.notBefore).toISOString()})`);
  }
  if (nowMs >= cert.notAfter) {
    throw badCertificate(cert, `has expired (valid until ${new Date(cert.notAfter).toISOString()})`);
  }
}

/** Canonical CBOR of `cert`. Throws LedgerbusError(SchemaMismatch) if `cert` is malformed. */
export function encodeCertificate(cert: Certificate): Uint8Array {
  return encodeWith(certificateSchema, cert);
}

/**
 * Strictly decodes a certificate (at most `certificateBytesMax` bytes). Throws LedgerbusError:
 * Oversize, MalformedEncoding or SchemaMismatch. Decoding checks shape only: call
 * `verifyCertificate` before trusting it.
 */
export function decodeCertificate(bytes: Uint8Array): Certificate {
  return decodeWith(certificateSchema, bytes, { maxBytes: certificateBytesMax });
}

function withoutSignature(cert: Certificate): Omit<Certificate, 'signature'> {
  const { signature: _signature, ...unsigned } = cert;
  return unsigned;
}

function badCertificate(cert: Certificate, reason: string): LedgerbusError {
  // The certificate may be malformed, so nothing in it is trusted to be a string.
  const subject = `${String(cert.role)} ${String(cert.orgId)}/${String(cert.subjectId)}`;
  return new LedgerbusError(ErrorCode.BadCertificate, `certificate of ${subject} ${reason}`);
}
