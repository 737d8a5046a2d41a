/**
 * Reads a CSV dataset as it streams in (csv-parse): the first record is the header, every other
 * record a row of the same width. Nothing but the record being handed on is held, so a file of a
 * million rows loads in bounded memory. Cells are trimmed; empty lines are skipped; a UTF-8 byte
 * order mark is dropped.
 */
import { parse } from 'csv-parse';
import type { CsvError } from 'csv-parse';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, LedgerbusError } from '../../errors.js';

/** A record (a quoted field may span lines) longer than this is refused rather than buffered. */
export const csvRecordCharsMax = 16 * 1024 * 1024;

export interface CsvSink {
  header(headers: readonly string[]): void;
  /** `line` is where the record ends in the file (from 1). */
  row(line: number, cells: readonly string[]): void;
}

interface ParsedRecord {
  readonly record: string[];
  readonly info: { readonly lines: number };
}

export async function readCsv(chunks: AsyncIterable<Uint8Array>, sink: CsvSink): Promise<void> {
  const parser = parse({
    bom: true,
    trim: true,
    skip_empty_lines: true,
    relax_column_count: true,
    info: true,
    max_record_size: csvRecordCharsMax,
  });
  let width: number | undefined;
  try {
    await pipeline(chunks, parser, async (records: AsyncIterable<ParsedRecord>) => {
      for await (const { record, info } of records) {
        if (width === undefined) {
          width = record.length;
          sink.header(record);
        } else if (record.length !== width) {
          throw new LedgerbusError(
            ErrorCode.SchemaMismatch,
            `CSV line ${info.lines} has ${record.length} fields but the header has ${width}: every row needs one field per column (quote fields that hold commas)`,
          );
        } else {
          sink.row(info.lines, record);
        }
      }
    });
  } catch (error) {
    if (isCsvError(error)) {
      const line = typeof error.lines === 'number' ? `CSV line ${error.lines}: ` : '';
      throw new LedgerbusError(ErrorCode.SchemaMismatch, `${line}${error.message}`, { cause: error });
    }
    throw error;
  }
  if (width === undefined)
    throw new LedgerbusError(
      ErrorCode.SchemaMismatch,
      'the CSV file is empty: its first line must name the columns',
    );
}

function isCsvError(error: unknown): error is CsvError {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('CSV_');
}
