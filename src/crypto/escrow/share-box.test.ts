import { describe, expect, it } from 'vitest';
import { ErrorCode, isLedgerbusError } from '../../errors.js';
import { generateEncryptionKey } from '../envelope/keys.js';
import { splitSecret, verifyShare } from './feldman.js';
import type { Share } from './feldman.js';
import { openShare, sealShare } from './share-box.js';
import type { ShareBoxContext } from './share-box.js';

const holderKey = generateEncryptionKey();
const auditorKey = generateEncryptionKey();
const escrow: ShareBoxContext = {
  network: 'escrow-testnet',
  sender: 'org-a',
  id: 'message-1',
  holder: 'org-b',
  purpose: 'escrow',
};
const release: ShareBoxContext = { ...escrow, holder: 'auditor', purpose: 'release', requestId: 'request-1' };

async function codeOf(run: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await run();
  } catch (error) {
    return isLedgerbusError(error) ? error.code : `other: ${String(error)}`;
  }
  return undefined;
}

describe('share box', () => {
  const sharing = splitSecret(2, 3);
  const share = sharing.shares[0] as Share;

  it('round-trips a share to its holder, and a release to the auditor', async () => {
    const sealed = await sealShare(share.value, holderKey.publicKey, escrow);
    expect(sealed.encapsulatedKey).toHaveLength(32);
    expect(sealed.sealedShare).toHaveLength(48);
    const opened = await openShare(sealed, holderKey, escrow);
    expect(opened).toEqual(share.value);
    expect(verifyShare(sharing.commitments, { index: share.index, value: opened })).toBe(true);

    const released = await sealShare(opened, auditorKey.publicKey, release);
    expect(await openShare(released, auditorKey, release)).toEqual(share.value);
  });

  it('seals with fresh randomness every time', async () => {
    const first = await sealShare(share.value, holderKey.publicKey, escrow);
    const second = await sealShare(share.value, holderKey.publicKey, escrow);
    expect(first.encapsulatedKey).not.toEqual(second.encapsulatedKey);
  });

  it('does not open with another key, in another context, or when tampered', async () => {
    const sealed = await sealShare(share.value, holderKey.publicKey, escrow);
    expect(await codeOf(() => openShare(sealed, auditorKey, escrow))).toBe(ErrorCode.BadSignature);
    for (const change of [
      { network: 'other-net' },
      { sender: 'org-c' },
      { id: 'message-2' },
      { holder: 'org-c' },
    ] satisfies Partial<ShareBoxContext>[]) {
      expect(await codeOf(() => openShare(sealed, holderKey, { ...escrow, ...change }))).toBe(
        ErrorCode.BadSignature,
      );
    }
    // An escrowed share cannot be passed off as a release, nor a release for one request as another.
    expect(
      await codeOf(() =>
        openShare(sealed, holderKey, { ...escrow, purpose: 'release', requestId: 'request-1' }),
      ),
    ).toBe(ErrorCode.BadSignature);
    const released = await sealShare(share.value, auditorKey.publicKey, release);
    expect(await codeOf(() => openShare(released, auditorKey, { ...release, requestId: 'request-2' }))).toBe(
      ErrorCode.BadSignature,
    );
    for (const field of ['encapsulatedKey', 'sealedShare'] as const) {
      for (const position of [0, sealed[field].length - 1]) {
        const bytes = Uint8Array.from(sealed[field]);
        bytes[position] = (bytes[position] as number) ^ 1;
        expect(await codeOf(() => openShare({ ...sealed, [field]: bytes }, holderKey, escrow))).toBe(
          ErrorCode.BadSignature,
        );
      }
    }
  });

  it('refuses unusable public keys, bad values and a requestId that does not fit the purpose', async () => {
    expect(await codeOf(() => sealShare(share.value, holderKey.publicKey.subarray(1), escrow))).toBe(
      ErrorCode.SchemaMismatch,
    );
    // The all-zero u-coordinate is a low-order point: X25519 with it gives the all-zero secret.
    expect(await codeOf(() => sealShare(share.value, new Uint8Array(32), escrow))).toBe(
      ErrorCode.SchemaMismatch,
    );
    expect(await codeOf(() => sealShare(share.value.subarray(1), holderKey.publicKey, escrow))).toBe(
      ErrorCode.BadConfig,
    );
    expect(
      await codeOf(() => sealShare(share.value, holderKey.publicKey, { ...escrow, requestId: 'request-1' })),
    ).toBe(ErrorCode.BadConfig);
    const { requestId: _requestId, ...withoutRequest } = release;
    expect(await codeOf(() => sealShare(share.value, auditorKey.publicKey, withoutRequest))).toBe(
      ErrorCode.BadConfig,
    );
  });
});
