/**
 * Reading the YAML files a node or a connector is configured by (`node.yaml`, `connector.yaml`, a
 * genesis in YAML or JSON). Both processes read theirs the same way, so this lives in the runtime
 * they share rather than in either of them.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { assertOwnerOnly } from '../crypto/keys.js';
import { ErrorCode, LedgerbusError, isLedgerbusError } from '../errors.js';

/**
 * Reads a YAML (or JSON) file into a plain value; BAD_CONFIG if unreadable or not YAML. With `secret`
 * (what the file holds that others must not see, e.g. "the API token"), the file must also be private
 * as key files are: KEY_FILE_PERMISSIONS, with the `chmod 600` to run, if group or others may read or
 * write it.
 */
export function readConfigFile(path: string, secret?: string): unknown {
  let text: string;
  try {
    const fd = openSync(path, 'r');
    try {
      // fstat on the open descriptor, so the file checked is the file read.
      if (secret !== undefined) assertOwnerOnly(fstatSync(fd), path, `${path} holds ${secret} and`);
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    if (isLedgerbusError(error)) throw error;
    throw new LedgerbusError(ErrorCode.BadConfig, `cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return parseYaml(text) as unknown;
  } catch (error) {
    throw new LedgerbusError(ErrorCode.BadConfig, `${path} is not valid YAML: ${(error as Error).message}`);
  }
}
