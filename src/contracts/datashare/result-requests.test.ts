import { describe, expect, it } from 'vitest';
import { codeOf } from '../../testing/code-of.js';
import { decodeCanonical, encodeCanonical } from '../../codec/index.js';
import type { CborValue } from '../../codec/index.js';
import { SigningDomain } from '../../crypto/index.js';
import { ErrorCode } from '../../errors.js';
import { FetchNonceWindow, fetchLimits } from '../fetch.js';
import {
  decodeJobResultRequest,
  encodeJobResultRequest,
  jobResultRequestSignatureValid,
  jobResultRequestWindow,
  verifyJobResultRequest,
} from './result-requests.js';
import { nonce } from '../testing/fixtures.js';
import { keys, network } from './testing/fixtures.js';

const signing = SigningDomain.of(network);
const now = 1_700_000_000_000;
const fields = {
  requester: 'alice',
  owner: 'bob',
  group: 'datashare/0',
  jobId: 'job-0001-abcdef',
  nonce: nonce(1, 3),
  timestamp: now,
};
const registered = (organization: string): readonly Uint8Array[] | undefined =>
  organization === 'alice'
    ? [keys.alice.publicKey]
    : organization === 'carol'
      ? [keys.carol.publicKey]
      : undefined;
const checks = { signing, owner: 'bob', signingKeys: registered, now: now + 1000 };

const code = codeOf;

describe('job result requests', () => {
  it('are signed by the requester for one owner, job and network, and verify there', () => {
    const bytes = encodeJobResultRequest(fields, signing.signer(keys.alice));
    const request = verifyJobResultRequest(bytes, checks);
    expect(request).toMatchObject({
      ...fields,
      type: 'jobResultGet',
      network,
      expiresAt: now + fetchLimits.lifetimeMsDefault,
    });
    expect(request.signerKey).toEqual(keys.alice.publicKey);
    expect(jobResultRequestSignatureValid(decodeJobResultRequest(bytes), signing)).toBe(true);
  });

  it('are refused for another owner, network or time, or when not signed by a key of their requester', () => {
    const alice = signing.signer(keys.alice);
    const bytes = encodeJobResultRequest(fields, alice);
    expect(code(() => verifyJobResultRequest(bytes, { ...checks, owner: 'carol' }))).toBe(
      ErrorCode.Forbidden,
    );
    expect(
      code(() => verifyJobResultRequest(bytes, { ...checks, signing: SigningDomain.of('other-net') })),
    ).toBe(ErrorCode.WrongNetwork);
    // Signed in another network that names this one in its field: the signature fails here.
    const foreign = SigningDomain.of('other-net').signer(keys.alice);
    const relabelled = decodeCanonical(encodeJobResultRequest(fields, foreign)) as Record<string, CborValue>;
    relabelled['network'] = network;
    expect(code(() => verifyJobResultRequest(encodeCanonical(relabelled), checks))).toBe(
      ErrorCode.BadSignature,
    );
    expect(
      code(() => verifyJobResultRequest(bytes, { ...checks, now: now + fetchLimits.lifetimeMsDefault + 1 })),
    ).toBe(ErrorCode.RequestExpired);
    const tooLong = encodeJobResultRequest(
      { ...fields, expiresAt: now + fetchLimits.lifetimeMsMax + 1 },
      alice,
    );
    expect(code(() => verifyJobResultRequest(tooLong, checks))).toBe(ErrorCode.RequestExpired);
    // carol's key, alice's name.
    const impostor = encodeJobResultRequest(fields, signing.signer(keys.carol));
    expect(code(() => verifyJobResultRequest(impostor, checks))).toBe(ErrorCode.BadSignature);
    // A field changed after signing (another job).
    const tampered = decodeCanonical(bytes) as Record<string, CborValue>;
    tampered['jobId'] = 'job-0002-abcdef';
    expect(code(() => verifyJobResultRequest(encodeCanonical(tampered), checks))).toBe(
      ErrorCode.BadSignature,
    );
    expect(code(() => verifyJobResultRequest(Uint8Array.of(1, 2), checks))).not.toBe('VALID');
  });

  it('are single use within their lifetime, through a nonce window', () => {
    const window = new FetchNonceWindow(100, 'job result request');
    const request = verifyJobResultRequest(
      encodeJobResultRequest(fields, signing.signer(keys.alice)),
      checks,
    );
    window.admit(jobResultRequestWindow(request), checks.now);
    expect(code(() => window.admit(jobResultRequestWindow(request), checks.now))).toBe(ErrorCode.Replay);
  });
});
