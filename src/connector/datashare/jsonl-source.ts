/**
 * Reads a JSONL dataset (one JSON object per line) as it streams in, a line at a time. Blank lines
 * are skipped; anything else that is not a JSON object is refused with its line number.
 */
import { ErrorCode, LedgerbusError } from '../../errors.js';

/** A line longer than this is refused rather than buffered. */
export const jsonlLineCharsMax = 16 * 1024 * 1024;

export interface JsonlSink {
  record(line: number, record: Readonly<Record<string, unknown>>): void;
}

export async function readJsonl(chunks: AsyncIterable<Uint8Array>, sink: JsonlSink): Promise<void> {
  let line = 0;
  const take = (text: string): void => {
    line += 1;
    if (text.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `JSONL line ${line} is not valid JSON (${(error as Error).message}): every line must be one JSON object`,
      );
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `JSONL line ${line} is not a JSON object: every line must be one object of column values`,
      );
    sink.record(line, value as Record<string, unknown>);
  };
  const decoder = new TextDecoder('utf-8');
  let pending = '';
  for await (const chunk of chunks) {
    pending += decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let end = pending.indexOf('\n'); end !== -1; end = pending.indexOf('\n', start)) {
      take(stripCarriageReturn(pending.slice(start, end)));
      start = end + 1;
    }
    pending = pending.slice(start);
    if (pending.length > jsonlLineCharsMax)
      throw new LedgerbusError(
        ErrorCode.SchemaMismatch,
        `JSONL line ${line + 1} is longer than ${jsonlLineCharsMax} characters`,
      );
  }
  pending += decoder.decode();
  if (pending !== '') take(stripCarriageReturn(pending));
}

function stripCarriageReturn(text: string): string {
  return text.endsWith('\r') ? text.slice(0, -1) : text;
}
