/**
 * Large payloads in parts (issue 17, item 5): a value whose declared size is above the connector's
 * part size is sealed and published part by part, so the recipients fetch the first parts while
 * the sender still encrypts the next ones, instead of waiting for the whole payload to be sealed.
 *
 * On the ledger a part is an ordinary message (same topic, partition, recipients and key as the
 * message it belongs to), with its own envelope and content root and an id of its own; the
 * application's message comes after its last part and carries no payload of its own, only the
 * headers below, which bind the parts in order by the Merkle root of their content roots. A
 * recipient's connector keeps parts aside, and lists the message (size and sha256 of the whole
 * plaintext, its value the parts in order) only once every part is stored and matches that root;
 * otherwise the message fails as PAYLOAD_CORRUPT. Parts are looked up under the sender of the
 * message, so no other organization can supply them.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCode, LedgerbusError } from '../errors.js';
import { merkleRoot } from '../crypto/merkle.js';
import { bytesEqual } from '../codec/bytes.js';

/** Plaintext bytes per part unless connector.yaml `producer.partBytes` says otherwise. */
export const defaultPartBytes = 64 * 1024 * 1024;
/** A part is at least a chunk's worth (the envelope's chunk size), or parts would cost more than they give. */
export const partBytesMin = 1024 * 1024;
/** Parts one message may have; with the default part size, 16 TiB. */
export const partsMax = 256 * 1024;

/** Message headers of this convention; applications may not set any header with this prefix. */
export const reservedHeaderPrefix = 'ledgerbus.';
export const partHeaders = {
  /** On parts and on their message: the random id of one attempt's parts (hex). */
  set: 'ledgerbus.part-set',
  /** On a part: its index, from 0, in decimal. */
  index: 'ledgerbus.part',
  /** On the message: how many parts it has, in decimal. */
  count: 'ledgerbus.parts',
  /** On the message: merkleRoot of its parts' content roots, in index order (32 bytes). */
  root: 'ledgerbus.parts-root',
} as const;

const partSetPattern = /^[0-9a-f]{32}$/;
const decimalPattern = /^(0|[1-9][0-9]{0,9})$/;

/** What a message's reserved headers say about it. */
export type PartRole =
  | { readonly kind: 'part'; readonly set: string; readonly index: number }
  | { readonly kind: 'parts'; readonly set: string; readonly count: number; readonly root: Uint8Array };

/** A fresh part set: parts of a retried send never mix with those of the attempt before. */
export function newPartSet(): string {
  return randomBytes(16).toString('hex');
}

/** The id of part `index` of `set` (ids are at most 128 characters; this is 45 at most). */
export function partMessageId(set: string, index: number): string {
  return `part-${set}-${index}`;
}

const partMessageIdPattern = /^part-[0-9a-f]{32}-(0|[1-9][0-9]{0,9})$/;

/**
 * Whether `id` has the form of a part's id. Applications may not give their messages such ids, so
 * that what the sender hears of its parts (their deliveries) is known to be about parts.
 */
export function isPartMessageId(id: string): boolean {
  return partMessageIdPattern.test(id);
}

/**
 * Whether a message's headers say it is a part of a large value (its id then has `isPartMessageId`'s
 * form too; `partRoleOf` checks the whole binding).
 */
export function carriesPart(headers: Readonly<Record<string, Uint8Array>>): boolean {
  return headers[partHeaders.index] !== undefined;
}

export function partsRoot(contentRoots: readonly Uint8Array[]): Uint8Array {
  return merkleRoot(contentRoots);
}

/** The headers of part `index` of `set`. */
export function partHeaderValues(set: string, index: number): Record<string, Uint8Array> {
  return { [partHeaders.set]: ascii(set), [partHeaders.index]: ascii(String(index)) };
}

/** The application's headers with those that bind its parts added. */
export function partsHeaderValues(
  headers: Readonly<Record<string, Uint8Array>>,
  set: string,
  contentRoots: readonly Uint8Array[],
): Record<string, Uint8Array> {
  return {
    ...headers,
    [partHeaders.set]: ascii(set),
    [partHeaders.count]: ascii(String(contentRoots.length)),
    [partHeaders.root]: partsRoot(contentRoots),
  };
}

/** SCHEMA_MISMATCH when an application's message uses a part's id form or the reserved header prefix. */
export function checkApplicationMessage(
  id: string | undefined,
  headers: Readonly<Record<string, unknown>>,
  label: string,
): void {
  if (id !== undefined && isPartMessageId(id)) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `message ${label}: ids of the form part-<32 hex digits>-<number> are reserved for the parts of large values; choose another id`,
    );
  }
  const reserved = Object.keys(headers).find((name) => name.startsWith(reservedHeaderPrefix));
  if (reserved !== undefined) {
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      `message ${label}: header ${reserved} is reserved (names starting with ${reservedHeaderPrefix} belong to ledgerbus); rename it`,
    );
  }
}

/**
 * The role a message's headers give it: undefined for an ordinary message, and PAYLOAD_CORRUPT
 * (not retriable) when reserved headers are present but malformed.
 */
export function partRoleOf(
  headers: Readonly<Record<string, Uint8Array>>,
  label: string,
): PartRole | undefined {
  const set = headers[partHeaders.set];
  const index = headers[partHeaders.index];
  const count = headers[partHeaders.count];
  const root = headers[partHeaders.root];
  if (set === undefined && index === undefined && count === undefined && root === undefined) return undefined;
  const corrupt = (why: string): LedgerbusError =>
    new LedgerbusError(ErrorCode.PayloadCorrupt, `message ${label}: ${why}`, { retriable: false });
  const setText = set === undefined ? '' : text(set);
  if (!partSetPattern.test(setText)) throw corrupt(`header ${partHeaders.set} is not 32 hex digits`);
  if (index !== undefined) {
    if (count !== undefined || root !== undefined)
      throw corrupt(`a part cannot also carry ${partHeaders.count} or ${partHeaders.root}`);
    return { kind: 'part', set: setText, index: decimal(index, partHeaders.index, corrupt) };
  }
  if (count === undefined || root === undefined || root.length !== 32)
    throw corrupt(
      `${partHeaders.count} and a 32-byte ${partHeaders.root} are required with ${partHeaders.set}`,
    );
  const parsed = decimal(count, partHeaders.count, corrupt);
  if (parsed < 1 || parsed > partsMax) throw corrupt(`${partHeaders.count} must be in [1, ${partsMax}]`);
  return { kind: 'parts', set: setText, count: parsed, root };
}

/** PAYLOAD_CORRUPT unless `contentRoots` are exactly the parts `role` announces. */
export function checkParts(
  role: Extract<PartRole, { kind: 'parts' }>,
  contentRoots: readonly Uint8Array[],
  label: string,
): void {
  if (contentRoots.length !== role.count) {
    throw new LedgerbusError(
      ErrorCode.PayloadCorrupt,
      `message ${label}: ${contentRoots.length} of its ${role.count} parts were received before it`,
      { retriable: false },
    );
  }
  if (!bytesEqual(partsRoot(contentRoots), role.root)) {
    throw new LedgerbusError(
      ErrorCode.PayloadCorrupt,
      `message ${label}: its parts do not match the ${partHeaders.root} it was published with`,
      { retriable: false },
    );
  }
}

function decimal(value: Uint8Array, name: string, corrupt: (why: string) => LedgerbusError): number {
  const digits = text(value);
  if (!decimalPattern.test(digits)) throw corrupt(`header ${name} is not a decimal number`);
  return Number(digits);
}

function ascii(value: string): Uint8Array {
  return new Uint8Array(Buffer.from(value, 'ascii'));
}

function text(value: Uint8Array): string {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1');
}

const partsStorageKeyPrefix = 'parts:';

/**
 * What a received message whose value is in parts records as its storage key: its part set.
 * Storage keys are otherwise sha256 hex, so the two never meet.
 */
export function partsStorageKey(set: string): string {
  return `${partsStorageKeyPrefix}${set}`;
}

/** The part set a received message's storage key names, or undefined for a value stored whole. */
export function partSetOfStorageKey(key: string): string | undefined {
  return key.startsWith(partsStorageKeyPrefix) ? key.slice(partsStorageKeyPrefix.length) : undefined;
}
