/** Group arithmetic of Castro & Liskov §4: n = 3f + 1 replicas tolerate f faulty ones. */

/** f, the number of faulty replicas a group of n tolerates. */
export function faultTolerance(replicaCount: number): number {
  return Math.floor((replicaCount - 1) / 3);
}

/**
 * The smallest quorum any two of which share a correct replica: ceil((n + f + 1) / 2). It is 2f + 1
 * when n = 3f + 1; for n = 5 or 6 it is larger than 2f + 1, which would be unsafe there.
 */
export function quorumSize(replicaCount: number): number {
  return Math.ceil((replicaCount + faultTolerance(replicaCount) + 1) / 2);
}

/** The primary of view v is replica v mod n (§4.1). */
export function primaryOf(view: number, replicaCount: number): number {
  return view % replicaCount;
}

const hexByte = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/** Hex key for maps; kept here so the core needs nothing from node:*. */
export function hexKey(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += hexByte[byte]!;
  return out;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
