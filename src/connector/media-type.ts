/**
 * Content types of messages. The sender chooses one, the ledger records it, and every recipient's
 * connector serves it back as the `Content-Type` of the payload download — to applications that may
 * be browsers. So a connector publishes only a syntactically valid media type (RFC 9110 §8.3.1),
 * in printable ASCII without control characters (a CR/LF would be a header injection at every
 * recipient), and serves anything else that reached the ledger as application/octet-stream.
 */
import { transactionLimits } from '../contracts/transactions.js';
import { ErrorCode, LedgerbusError } from '../errors.js';

const token = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
/** RFC 9110 quoted-string, less HTAB and obs-text: printable ASCII only. */
const quotedString = '"(?:[ !#-\\[\\]-~]|\\\\[ -~])*"';

/**
 * `type "/" subtype *( OWS ";" OWS [ parameter ] )`, with OWS as spaces only. As a string, so that
 * the REST API's request schema (and its OpenAPI document) can carry the same rule.
 */
export const mediaTypePattern = `^${token}/${token}(?: *; *(?:${token}=(?:${token}|${quotedString}))?)*$`;
const mediaType = new RegExp(mediaTypePattern);

/** Longest content type the ledger records. */
export const contentTypeLengthMax = transactionLimits.contentTypeLengthMax;

/** The content type a payload download is served with when the recorded one is not a media type. */
export const fallbackContentType = 'application/octet-stream';

export function isMediaType(value: string): boolean {
  return value.length <= contentTypeLengthMax && mediaType.test(value);
}

/** Throws SCHEMA_MISMATCH (HTTP 400) naming `field` unless `value` is a media type a connector publishes. */
export function checkContentType(value: string, field = 'contentType'): void {
  if (isMediaType(value)) return;
  const shown = JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  throw new LedgerbusError(
    ErrorCode.SchemaMismatch,
    `${field}: ${shown} is not a media type (type/subtype[; name=value]..., printable ASCII, at most ${contentTypeLengthMax} characters)`,
  );
}

/** What to serve a recorded content type as: itself when it is a media type, else the fallback. */
export function servableContentType(recorded: string): string {
  return isMediaType(recorded) ? recorded : fallbackContentType;
}
