import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openFilesystemStorage } from './filesystem.js';
import { describeStorageContract } from './testing/contract-suite.js';
import { generated } from './testing/generated.js';

const root = mkdtempSync(join(tmpdir(), 'ledgerbus-fs-storage-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const contractDirectory = join(root, 'contract');
describeStorageContract('filesystem', {
  open: () => openFilesystemStorage(contractDirectory),
  leftovers: async () => (await readdir(join(contractDirectory, 'tmp'))).length,
});

describe('filesystem storage layout', () => {
  it('keeps objects under objects/<first two hex>/<key>', async () => {
    const directory = join(root, 'layout');
    const storage = await openFilesystemStorage(directory);
    const payload = generated(1000, 1);
    const { key } = await storage.put(payload.stream);
    expect(await readdir(join(directory, 'objects', key.slice(0, 2)))).toEqual([key]);
    expect(await readdir(join(directory, 'tmp'))).toEqual([]);
    await storage.close();
  });

  it('reports the bytes its objects take, for the storage metric', async () => {
    const storage = await openFilesystemStorage(join(root, 'usage'));
    expect(await storage.usage!()).toBe(0);
    const first = await storage.put(generated(1000, 2).stream);
    await storage.put(generated(500, 3).stream);
    expect(await storage.usage!()).toBe(1500);
    await storage.delete(first.key);
    expect(await storage.usage!()).toBe(500);
    await storage.close();
    await expect(storage.usage!()).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
  });

  it('removes temporary files left by a crash when it opens', async () => {
    const directory = join(root, 'leftovers');
    await mkdir(join(directory, 'tmp', 'a-directory'), { recursive: true });
    await writeFile(join(directory, 'tmp', 'half-written'), 'partial');
    const storage = await openFilesystemStorage(directory);
    expect(await readdir(join(directory, 'tmp'))).toEqual([]);
    await storage.close();
  });
});
