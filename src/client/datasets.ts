/**
 * Datasets an organization shares by compute-to-data (DESIGN §8), from an application: loaded into
 * this organization's connector, where only jobs read them and only their results leave.
 *
 *   const datasets = lb.datasets();
 *   const loans = await datasets.addFile('loans', 'loans.csv', { policy: { minGroupSize: 20 } });
 *   console.log(loans.columns, loans.rowCount);
 *   await datasets.setPolicy('loans', { approval: 'manual' });
 */
import { createReadStream } from 'node:fs';
import { extname } from 'node:path';
import { Readable } from 'node:stream';
import type { DatasetDescription, DatasetFormat } from '../connector/datashare/jobs-api.js';
import { ErrorCode, LedgerbusError } from '../errors.js';
import type { Transport } from './transport.js';

export interface DatasetAddInput {
  readonly name: string;
  /** The rows: CSV with a header line, or one JSON object per line. Streamed, never held whole. */
  readonly data: ReadableStream<Uint8Array> | Uint8Array | string;
  readonly format: DatasetFormat;
  /** A column to index. */
  readonly keyColumn?: string;
  /** A policy (the policy file's JSON); the default policy when absent. */
  readonly policy?: unknown;
}

const contentTypes: Readonly<Record<DatasetFormat, string>> = {
  csv: 'text/csv',
  jsonl: 'application/x-ndjson',
};

/** The format a file name implies (.csv, .jsonl / .ndjson); BAD_CONFIG asking for one otherwise. */
export function datasetFormatOf(file: string): DatasetFormat {
  const extension = extname(file).toLowerCase();
  if (extension === '.csv') return 'csv';
  if (extension === '.jsonl' || extension === '.ndjson') return 'jsonl';
  throw new LedgerbusError(
    ErrorCode.BadConfig,
    `cannot tell the format of ${file} from its name: give --format csv or --format jsonl`,
  );
}

function datasetPath(name: string, what = ''): string {
  return `/v1/datasets/${encodeURIComponent(name)}${what}`;
}

export class Datasets {
  constructor(private readonly transport: Transport) {}

  /** Loads a dataset into the connector; answers its inferred columns, row count and content hash. */
  async add(input: DatasetAddInput): Promise<DatasetDescription> {
    const headers: Record<string, string> = { 'content-type': contentTypes[input.format] };
    if (input.policy !== undefined) {
      headers['ledgerbus-policy'] = Buffer.from(JSON.stringify(input.policy), 'utf8').toString('base64');
    }
    return this.transport.json<DatasetDescription>('POST', '/v1/datasets', {
      query: { name: input.name, format: input.format, keyColumn: input.keyColumn },
      body: input.data as RequestInit['body'],
      headers,
      // A large file takes as long as it takes; the connector cuts an upload that stalls.
      timeoutMs: null,
    });
  }

  /** Loads the file at `path` (format from its extension unless given) as dataset `name`. */
  async addFile(
    name: string,
    path: string,
    options: { format?: DatasetFormat; keyColumn?: string; policy?: unknown } = {},
  ): Promise<DatasetDescription> {
    const format = options.format ?? datasetFormatOf(path);
    return this.add({
      name,
      data: Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>,
      format,
      ...(options.keyColumn === undefined ? {} : { keyColumn: options.keyColumn }),
      ...(options.policy === undefined ? {} : { policy: options.policy }),
    });
  }

  async list(): Promise<DatasetDescription[]> {
    return (await this.transport.json<{ datasets: DatasetDescription[] }>('GET', '/v1/datasets')).datasets;
  }

  /** DATASET_NOT_FOUND when there is none. */
  async get(name: string): Promise<DatasetDescription> {
    return this.transport.json<DatasetDescription>('GET', datasetPath(name));
  }

  async remove(name: string): Promise<{ name: string; removed: true }> {
    return this.transport.json<{ name: string; removed: true }>('DELETE', datasetPath(name));
  }

  /** Replaces the dataset's policy (BAD_CONFIG naming the field that is wrong). */
  async setPolicy(name: string, policy: unknown): Promise<DatasetDescription> {
    return this.transport.json<DatasetDescription>('PUT', datasetPath(name, '/policy'), { json: policy });
  }
}
