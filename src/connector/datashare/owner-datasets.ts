/**
 * The datasets an organization shares (DESIGN §8), as the API offers them: the DatasetStore's
 * datasets described without their file's path, and policy files read by `parseDatasetPolicy`
 * (BAD_CONFIG naming the field) before anything is stored.
 */
import type { Readable } from 'node:stream';
import { toHex } from '../../codec/index.js';
import { parseDatasetPolicy } from '../../datashare/query/policy.js';
import type { DatasetInfo, DatasetStore } from './dataset-store.js';
import type { DatasetAddOptions, DatasetDescription, DatasetsApi } from './jobs-api.js';

export class OwnerDatasets implements DatasetsApi {
  constructor(private readonly store: DatasetStore) {}

  async add(name: string, source: Readable, options: DatasetAddOptions): Promise<DatasetDescription> {
    let policy;
    try {
      policy = options.policy === undefined ? undefined : parseDatasetPolicy(options.policy);
    } catch (error) {
      // Refused before a byte is read: the upload is not wanted.
      source.destroy();
      throw error;
    }
    const info = await this.store.add(name, source, {
      format: options.format,
      ...(options.keyColumn === undefined ? {} : { keyColumn: options.keyColumn }),
      ...(policy === undefined ? {} : { policy }),
    });
    return describeDataset(info);
  }

  list(): DatasetDescription[] {
    return this.store.list().map(describeDataset);
  }

  get(name: string): DatasetDescription {
    return describeDataset(this.store.require(name));
  }

  remove(name: string): { name: string; removed: true } {
    this.store.remove(name);
    return { name, removed: true };
  }

  setPolicy(name: string, policy: unknown): DatasetDescription {
    return describeDataset(this.store.setPolicy(name, parseDatasetPolicy(policy)));
  }
}

/** A dataset as the API shows it: everything but where its file is. */
export function describeDataset(info: DatasetInfo): DatasetDescription {
  return {
    name: info.name,
    columns: info.columns,
    rowCount: info.rowCount,
    contentHash: toHex(info.contentHash),
    keyColumn: info.keyColumn,
    format: info.format,
    loadedAt: info.loadedAt,
    policy: info.policy,
  };
}
