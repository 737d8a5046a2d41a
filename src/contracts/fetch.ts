/**
 * A recipient's signed request for a payload (DESIGN §3 steps 7–12). The node that relays it checks
 * the requester against committed state; the sender's connector checks the signature and its own
 * record of the recipients again, so neither has to trust the other.
 *
 * A request names its network and expires (a minute after it is made, five at the most), and whoever
 * releases a payload for it remembers its nonce until then: a captured request cannot be replayed
 * later, twice, or in another network whose organizations use the same keys. The network is in the
 * request twice on purpose: its signature is in that network's domain, like every signature (so a
 * request relabelled with another network is BAD_SIGNATURE), and its `network` field says which one
 * in the clear, so a request for another network is refused as WRONG_NETWORK before any signature
 * check, with a message that says so.
 */
import { decodeWith, encodeCanonical, encodeWith, t, toHex } from '../codec/index.js';
import type { Infer } from '../codec/index.js';
import type { Signer, SigningDomain } from '../crypto/index.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { nonceBytes, transactionLimits } from './transactions.js';

export const FETCH_SIGNING_TYPE = 'sdt-fetch';

export const fetchLimits = {
  /** How long a request is valid when its maker does not say. */
  lifetimeMsDefault: 60_000,
  /** The longest validity a request may claim: bounds how long a nonce must be remembered. */
  lifetimeMsMax: 5 * 60_000,
  /** How far ahead of the checker's clock a request's timestamp may be. */
  clockSkewMsMax: 30_000,
  /** Nonces a checker remembers at once; past it, requests are refused (retriable) until some expire. */
  noncesMax: 100_000,
} as const;

export const fetchRequestSchema = t.record({
  type: t.literal('fetch'),
  requester: t.string({ minLength: 1, maxLength: transactionLimits.organizationIdLengthMax }),
  signerKey: t.bytes({ length: 32 }),
  partitionId: t.string({ minLength: 1, maxLength: 512 }),
  id: t.string({ minLength: 1, maxLength: transactionLimits.messageIdLengthMax }),
  nonce: t.bytes({ length: nonceBytes }),
  timestamp: t.uint(),
  /** The network (genesis `network`) the request is for. */
  network: t.string({ minLength: 1, maxLength: 128 }),
  /** Milliseconds since the epoch after which nobody serves it. */
  expiresAt: t.uint(),
  signature: t.bytes({ length: 64 }),
});
export type FetchRequest = Infer<typeof fetchRequestSchema>;

function signingPayload(request: Omit<FetchRequest, 'signature'>): Uint8Array {
  return encodeCanonical({
    type: 'fetch',
    requester: request.requester,
    signerKey: request.signerKey,
    partitionId: request.partitionId,
    id: request.id,
    nonce: request.nonce,
    timestamp: request.timestamp,
    network: request.network,
    expiresAt: request.expiresAt,
  });
}

/**
 * Signs a fetch request for the signer's network, which also goes into its `network` field; it
 * expires `fetchLimits.lifetimeMsDefault` after `timestamp` unless told.
 */
export function encodeFetchRequest(
  request: Omit<FetchRequest, 'signature' | 'signerKey' | 'type' | 'expiresAt' | 'network'> & {
    expiresAt?: number;
  },
  signer: Signer,
): Uint8Array {
  const unsigned = {
    type: 'fetch' as const,
    ...request,
    network: signer.domain.network,
    expiresAt: request.expiresAt ?? request.timestamp + fetchLimits.lifetimeMsDefault,
    signerKey: signer.publicKey,
  };
  return encodeWith(fetchRequestSchema, {
    ...unsigned,
    signature: signer.sign(FETCH_SIGNING_TYPE, signingPayload(unsigned)),
  });
}

/** Decodes strictly; throws LedgerbusError on malformed bytes. Does not check the signature. */
export function decodeFetchRequest(bytes: Uint8Array): FetchRequest {
  return decodeWith(fetchRequestSchema, bytes, { maxBytes: 4096 });
}

/** True if `request` carries a valid signature by its `signerKey` in the network of `signing`. */
export function fetchRequestSignatureValid(request: FetchRequest, signing: SigningDomain): boolean {
  return signing.verify(request.signerKey, FETCH_SIGNING_TYPE, signingPayload(request), request.signature);
}

/**
 * What the freshness and replay checks read of a signed off-chain request: a payload fetch request,
 * or an escrow chunk request (contracts/escrow/chunk-requests.ts), which follow the same rules.
 */
export interface SignedRequestWindow {
  readonly requester: string;
  readonly id: string;
  readonly nonce: Uint8Array;
  readonly network: string;
  readonly timestamp: number;
  readonly expiresAt: number;
}

/**
 * Throws unless `request` is for `network` and valid at `now`: WRONG_NETWORK, or REQUEST_EXPIRED
 * (retriable: the requester signs a new one) when it expired, claims a lifetime over
 * `fetchLimits.lifetimeMsMax`, or is stamped further ahead than the allowed clock skew. `kind`
 * names the request in the messages ("fetch request" unless told).
 */
export function checkFetchFreshness(
  request: SignedRequestWindow,
  network: string,
  now: number,
  kind = 'fetch request',
): void {
  if (request.network !== network) {
    throw new LedgerbusError(
      ErrorCode.WrongNetwork,
      `${kind} is for network ${request.network}, this is ${network}`,
    );
  }
  const expired =
    now > request.expiresAt ||
    request.expiresAt < request.timestamp ||
    request.expiresAt - request.timestamp > fetchLimits.lifetimeMsMax ||
    request.timestamp > now + fetchLimits.clockSkewMsMax;
  if (expired) {
    throw new LedgerbusError(
      ErrorCode.RequestExpired,
      `${kind} ${request.id} is not valid now (signed at ${request.timestamp}, expires ${request.expiresAt}, now ${now}); sign a new one`,
      { retriable: true },
    );
  }
}

/**
 * The nonces of the signed requests something was released for, each kept until its request
 * expires: a second use of one is REPLAY. Fresh requests only (see `checkFetchFreshness`), so an
 * entry is never needed for longer than `fetchLimits.lifetimeMsMax`. `kind` names the requests in
 * the messages ("fetch request" unless told).
 */
export class FetchNonceWindow {
  /** At most `noncesMax`: expired entries are forgotten when it fills, and past that `admit` refuses. */
  private readonly expiries = new Map<string, number>();

  constructor(
    private readonly noncesMax: number = fetchLimits.noncesMax,
    private readonly kind = 'fetch request',
  ) {}

  /** Records `request`'s nonce; throws REPLAY if it is already recorded. Call after the freshness check. */
  admit(request: SignedRequestWindow, now: number): void {
    const key = `${request.requester}:${toHex(request.nonce)}`;
    if (this.expiries.has(key)) {
      throw new LedgerbusError(ErrorCode.Replay, `${this.kind} ${request.id} was already used`);
    }
    if (this.expiries.size >= this.noncesMax) this.forgetExpired(now);
    if (this.expiries.size >= this.noncesMax) {
      throw new LedgerbusError(ErrorCode.Overloaded, `too many ${this.kind}s in flight; try again`, {
        retriable: true,
      });
    }
    this.expiries.set(key, request.expiresAt);
  }

  get size(): number {
    return this.expiries.size;
  }

  private forgetExpired(now: number): void {
    for (const [key, expiresAt] of this.expiries) if (expiresAt < now) this.expiries.delete(key);
  }
}
