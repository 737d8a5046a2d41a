/**
 * Lets the Jazzer.js 4 native addon load on glibc < 2.38 (Debian 12, Ubuntu 22.04), without touching
 * node_modules. Import it (`node --import tsx --import ./test/fuzz/guided/jazzer-compat.ts ...`)
 * before Jazzer.js starts.
 *
 * @jazzer.js/fuzzer ships only prebuilt addons, linked on a glibc 2.38 / GCC 13 system. The
 * linux-x64 one imports exactly two symbols newer than glibc 2.36 and one newer than GCC 12's
 * libstdc++:
 *   - __isoc23_strtol / __isoc23_strtoul @GLIBC_2.38: strtol/strtoul that also accept a "0b" prefix
 *     (C23). They differ from the classic functions only for base 0 or 2 inputs starting with 0b.
 *   - std::ios_base_library_init() @GLIBCXX_3.4.32: a link-time-only reference GCC 13's <iostream>
 *     emits to pull in the library's stream initialisation; it has no relocation, so it is never
 *     bound at run time.
 * The loader refuses the whole file because those two versions are missing. When (and only when)
 * the pristine addon fails with exactly that error, this module writes a patched copy — the two
 * __isoc23_ imports renamed to strtol/strtoul@GLIBC_2.2.5 (each name is a suffix of the original in
 * the same string table, so only the symbol's name offset changes) and the two missing version needs
 * marked weak — and registers that copy in the require cache under the prebuild's path, so Jazzer.js's
 * own `require` finds it. Anything else it does not recognise makes it throw rather than patch. On a
 * system with glibc >= 2.38 it does nothing.
 *
 * Loading a native file runs its code as us, so the copy must be exactly the bytes patchAddon makes:
 * it lives in a directory of the OS temp directory that only this user may change (created 0700;
 * refused if it is a symlink, has another owner, or is group/world-writable), and its sha256 is
 * checked against the freshly patched bytes before it is loaded; any difference is refused, not
 * overwritten, because it means someone or something else wrote there.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import type { Stats } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

/** Versions the prebuild needs that older systems lack, with what to do about the symbols using them. */
const missingVersions = new Map<string, 'rename-isoc23' | 'unbound-only'>([
  ['GLIBC_2.38', 'rename-isoc23'],
  ['GLIBCXX_3.4.32', 'unbound-only'],
]);
/** Symbols of a missing version that are referenced but never bound (no relocation names them). */
const unboundSymbols = new Set(['_ZSt21ios_base_library_initv']);
const isoc23Prefix = '__isoc23_';
const renamedIsoc23 = new Set(['strtol', 'strtoul']);
const fallbackLibc = { file: 'libc.so.6', version: 'GLIBC_2.2.5' };

const SHT_DYNSYM = 11;
const SHT_GNU_VERNEED = 0x6ffffffe;
const SHT_GNU_VERSYM = 0x6fffffff;
const SHT_RELA = 4;
const VER_FLG_WEAK = 0x2;

interface Section {
  readonly type: number;
  readonly offset: number;
  readonly size: number;
  readonly link: number;
  readonly entsize: number;
}

function cString(bytes: Buffer, at: number): string {
  const end = bytes.indexOf(0, at);
  return bytes.toString('latin1', at, end < 0 ? bytes.length : end);
}

function sections(elf: Buffer): Section[] {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) {
    throw new Error('jazzer-compat: the addon is not a little-endian ELF64 file');
  }
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const result: Section[] = [];
  for (let index = 0; index < shnum; index += 1) {
    const at = shoff + index * shentsize;
    result.push({
      type: elf.readUInt32LE(at + 4),
      offset: Number(elf.readBigUInt64LE(at + 0x18)),
      size: Number(elf.readBigUInt64LE(at + 0x20)),
      link: elf.readUInt32LE(at + 0x28),
      entsize: Number(elf.readBigUInt64LE(at + 0x38)),
    });
  }
  return result;
}

function only(all: Section[], type: number): Section {
  const found = all.filter((section) => section.type === type);
  if (found.length !== 1) throw new Error(`jazzer-compat: expected one section of type ${type}`);
  return found[0]!;
}

/** The patched copy of `original` described above; throws if the file is not shaped as expected. */
export function patchAddon(original: Buffer): Buffer {
  const elf = Buffer.from(original);
  const all = sections(elf);
  const dynsym = only(all, SHT_DYNSYM);
  const versym = only(all, SHT_GNU_VERSYM);
  const verneed = only(all, SHT_GNU_VERNEED);
  const dynstr = all[dynsym.link];
  if (dynstr === undefined) throw new Error('jazzer-compat: no dynamic string table');
  const name = (offset: number): string => cString(elf, dynstr.offset + offset);

  // Version needs: remember each version index, and mark the missing ones weak.
  const actionByIndex = new Map<number, 'rename-isoc23' | 'unbound-only'>();
  let fallbackIndex: number | undefined;
  for (let at = verneed.offset; ;) {
    const count = elf.readUInt16LE(at + 2);
    const file = name(elf.readUInt32LE(at + 4));
    for (let aux = at + elf.readUInt32LE(at + 8), left = count; left > 0; left -= 1) {
      const version = name(elf.readUInt32LE(aux + 8));
      const index = elf.readUInt16LE(aux + 6);
      const action = missingVersions.get(version);
      if (action !== undefined) {
        actionByIndex.set(index, action);
        elf.writeUInt16LE(elf.readUInt16LE(aux + 4) | VER_FLG_WEAK, aux + 4);
      }
      if (file === fallbackLibc.file && version === fallbackLibc.version) fallbackIndex = index;
      const next = elf.readUInt32LE(aux + 12);
      if (next === 0) break;
      aux += next;
    }
    const next = elf.readUInt32LE(at + 12);
    if (next === 0) break;
    at += next;
  }
  if (fallbackIndex === undefined) throw new Error('jazzer-compat: the addon does not use GLIBC_2.2.5');

  // Names of symbols that a relocation binds.
  const bound = new Set<number>();
  for (const rela of all.filter(
    (section) => section.type === SHT_RELA && section.link === all.indexOf(dynsym),
  )) {
    for (let at = rela.offset; at < rela.offset + rela.size; at += 24) {
      bound.add(Number(elf.readBigUInt64LE(at + 8) >> 32n));
    }
  }

  const symbolCount = dynsym.size / dynsym.entsize;
  for (let symbol = 0; symbol < symbolCount; symbol += 1) {
    const versionAt = versym.offset + symbol * 2;
    const action = actionByIndex.get(elf.readUInt16LE(versionAt) & 0x7fff);
    if (action === undefined) continue;
    const nameAt = dynsym.offset + symbol * dynsym.entsize;
    const symbolName = name(elf.readUInt32LE(nameAt));
    if (action === 'rename-isoc23') {
      const classic = symbolName.slice(isoc23Prefix.length);
      if (!symbolName.startsWith(isoc23Prefix) || !renamedIsoc23.has(classic)) {
        throw new Error(`jazzer-compat: unexpected glibc 2.38 import ${symbolName}`);
      }
      elf.writeUInt32LE(elf.readUInt32LE(nameAt) + isoc23Prefix.length, nameAt);
      elf.writeUInt16LE(fallbackIndex, versionAt);
    } else if (!unboundSymbols.has(symbolName) || bound.has(symbol)) {
      throw new Error(`jazzer-compat: unexpected libstdc++ import ${symbolName}`);
    }
  }
  return elf;
}

function isMissingVersionError(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  return [...missingVersions.keys()].some((version) => message.includes(`version \`${version}' not found`));
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function ownedByUs(stats: Stats): boolean {
  return stats.uid === process.getuid?.();
}

/**
 * Returns `path` once it is a directory that only this user can change: created 0700 if missing;
 * throws if it is a symlink or not a directory, has another owner, or is group/world-writable (any
 * of which would let another user swap the file we are about to load), or if its parent is
 * world-writable without the sticky bit (where anyone may rename our directory away).
 */
export function privateDirectory(path: string): string {
  const parent = lstatSync(dirname(path));
  if ((parent.mode & 0o002) !== 0 && (parent.mode & 0o1000) === 0) {
    throw new Error(`jazzer-compat: ${dirname(path)} is world-writable without the sticky bit`);
  }
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const stats = lstatSync(path);
  const refuse = (why: string): never => {
    throw new Error(
      `jazzer-compat: refusing to load the patched addon from ${path}: ${why}; remove it (or set TMPDIR to a private directory)`,
    );
  };
  if (!stats.isDirectory()) refuse('it is not a directory (a symlink?)');
  if (!ownedByUs(stats)) refuse(`it belongs to uid ${stats.uid}, not to this user`);
  if ((stats.mode & 0o022) !== 0) refuse('group or others may write to it');
  return path;
}

/**
 * Checks that `path` is a regular file of ours, writable only by us, whose sha256 is `expected`;
 * throws otherwise. The file is read through the descriptor that was checked, and the directory is
 * private, so the bytes checked are the bytes `dlopen` maps next.
 */
export function checkPatchedFile(path: string, expected: string): void {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const stats = fstatSync(fd);
    const refuse = (why: string): never => {
      throw new Error(`jazzer-compat: refusing to load ${path}: ${why}; remove it`);
    };
    if (!stats.isFile()) refuse('it is not a regular file');
    if (!ownedByUs(stats)) refuse(`it belongs to uid ${stats.uid}, not to this user`);
    if ((stats.mode & 0o022) !== 0) refuse('group or others may write to it');
    const actual = sha256(readFileSync(fd));
    if (actual !== expected) refuse(`its sha256 is ${actual}, the patched addon's is ${expected}`);
  } finally {
    closeSync(fd);
  }
}

function install(): void {
  if (process.platform !== 'linux' || process.arch !== 'x64') return;
  const prebuild = realpathSync(
    join(dirname(require.resolve('@jazzer.js/fuzzer')), '..', 'prebuilds', 'fuzzer-linux-x64.node'),
  );
  try {
    process.dlopen({ exports: {} }, prebuild);
    return; // Loads as shipped: nothing to do.
  } catch (error) {
    if (!isMissingVersionError(error)) throw error;
  }
  const bytes = patchAddon(readFileSync(prebuild));
  const expected = sha256(bytes);
  // Per user, so that two users of one machine do not refuse each other's directory.
  const directory = privateDirectory(join(tmpdir(), `ledgerbus-jazzer-compat-${process.getuid?.() ?? 0}`));
  const patched = join(directory, `fuzzer-linux-x64-${expected.slice(0, 16)}.node`);
  try {
    checkPatchedFile(patched, expected);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    // Written under another name and renamed, so a concurrent run never sees a partial file.
    const partial = `${patched}.${process.pid}.tmp`;
    writeFileSync(partial, bytes, { mode: 0o600, flag: 'wx' });
    renameSync(partial, patched);
    checkPatchedFile(patched, expected);
  }
  const addon = new Module(prebuild);
  addon.filename = prebuild;
  process.dlopen(addon, patched);
  addon.loaded = true;
  require.cache[prebuild] = addon;
}

install();
