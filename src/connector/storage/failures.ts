import { ErrorCode, LedgerbusError } from '../../errors.js';

/** Node system-error codes after which trying again cannot help without someone fixing the setup. */
const permanentSystemCodes = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR', 'ELOOP']);
/** SQLSTATE classes of the same kind: bad credentials, missing database, privileges, bad SQL or data. */
const permanentSqlStateClasses = new Set(['28', '3D', '42', '22']);

/**
 * Wraps a failure of the storage backend (disk, database) as STORAGE_UNAVAILABLE. Our own errors pass
 * through unchanged, so HASH_MISMATCH or OVERSIZE raised inside a write loop keep their code.
 */
export function storageFailure(action: string, error: unknown): LedgerbusError {
  if (error instanceof LedgerbusError) return error;
  const code = systemCode(error);
  const retriable =
    code === undefined ||
    !(
      permanentSystemCodes.has(code) ||
      (/^[0-9A-Z]{5}$/.test(code) && permanentSqlStateClasses.has(code.slice(0, 2)))
    );
  const detail = error instanceof Error ? error.message : String(error);
  return new LedgerbusError(ErrorCode.StorageUnavailable, `payload storage could not ${action}: ${detail}`, {
    retriable,
    cause: error,
  });
}

export function systemCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return typeof error.code === 'string' ? error.code : undefined;
}

/** Runs `operation`, turning backend failures into STORAGE_UNAVAILABLE. */
export async function guarded<T>(action: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw storageFailure(action, error);
  }
}
