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
 * the pristine addon fails with exactly that error, this module writes a patched copy to the OS temp
 * directory — the two __isoc23_ imports renamed to strtol/strtoul@GLIBC_2.2.5 (each name is a suffix
 * of the original in the same string table, so only the symbol's name offset changes) and the two
 * missing version needs marked weak — and registers that copy in the require cache under the
 * prebuild's path, so Jazzer.js's own `require` finds it. Anything else it does not recognise makes
 * it throw rather than patch. On a system with glibc >= 2.38 it does nothing.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
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
  const original = readFileSync(prebuild);
  const digest = createHash('sha256').update(original).digest('hex').slice(0, 16);
  const directory = join(tmpdir(), 'ledgerbus-jazzer-compat');
  const patched = join(directory, `fuzzer-linux-x64-${digest}.node`);
  if (!existsSync(patched)) {
    mkdirSync(directory, { recursive: true });
    const partial = `${patched}.${process.pid}.tmp`;
    writeFileSync(partial, patchAddon(original));
    renameSync(partial, patched);
  }
  const addon = new Module(prebuild);
  addon.filename = prebuild;
  process.dlopen(addon, patched);
  addon.loaded = true;
  require.cache[prebuild] = addon;
}

install();
