/** The connector's payload storage: content-addressed, streaming, durable before acknowledging. */
import { openFilesystemStorage } from './filesystem.js';
import { openPostgresStorage } from './postgres.js';
import type { PayloadStorage } from './types.js';

export type { ByteRange, PayloadStorage, PutOptions, StoredObject } from './types.js';
export type { PostgresStorageOptions } from './postgres.js';
export { openFilesystemStorage, openPostgresStorage };
export { isValidKey } from './validation.js';

export type StorageConfig =
  | { readonly kind: 'filesystem'; readonly directory: string }
  | { readonly kind: 'postgres'; readonly connectionString: string; readonly schema?: string };

export function openStorage(config: StorageConfig): Promise<PayloadStorage> {
  switch (config.kind) {
    case 'filesystem':
      return openFilesystemStorage(config.directory);
    case 'postgres':
      return openPostgresStorage({ connectionString: config.connectionString, schema: config.schema });
  }
}
