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

/** Char codes of each byte's two hex digits: byte b is at [2b, 2b + 1]. */
const hexCodes = Uint16Array.from({ length: 512 }, (_, i) =>
  (i >> 1)
    .toString(16)
    .padStart(2, '0')
    .charCodeAt(i & 1),
);
/** Bytes turned into one String.fromCharCode call; well under engines' argument limits. */
const hexChunkBytes = 4096;

/**
 * Hex key for maps; kept here so the core needs nothing from node:*. Built in one call rather than
 * by `+=`, which leaves a rope of small strings per key: the core holds several such keys per
 * request, and ropes made them ~1 KB each and twice as slow to build.
 */
export function hexKey(bytes: Uint8Array): string {
  let out = '';
  for (let start = 0; start < bytes.length; start += hexChunkBytes) {
    const end = Math.min(bytes.length, start + hexChunkBytes);
    const codes = new Array<number>((end - start) * 2);
    for (let i = start; i < end; i++) {
      codes[2 * (i - start)] = hexCodes[2 * bytes[i]!]!;
      codes[2 * (i - start) + 1] = hexCodes[2 * bytes[i]! + 1]!;
    }
    out += String.fromCharCode(...codes);
  }
  return out;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
