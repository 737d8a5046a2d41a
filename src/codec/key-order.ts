/**
 * RFC 8949 §4.2.1 orders map keys by their encoded bytes. For text keys that is: shorter UTF-8 first
 * (the head grows with the length), then bytewise. For ASCII keys, string length and code-unit order
 * are exactly the UTF-8 ones, so no encoding is needed.
 */
const utf8 = new TextEncoder();

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

export function compareTextKeys(a: string, b: string): number {
  if (isAscii(a) && isAscii(b)) {
    if (a.length !== b.length) return a.length - b.length;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  const left = utf8.encode(a);
  const right = utf8.encode(b);
  if (left.length !== right.length) return left.length - right.length;
  for (let i = 0; i < left.length; i++) if (left[i] !== right[i]) return left[i]! - right[i]!;
  return 0;
}
