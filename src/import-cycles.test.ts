/**
 * No module of src/, test/ or bench/ imports itself through others, `import type` included (issue 13).
 *
 * ESLint's import-x/no-cycle (eslint.config.js) reports value cycles as you edit, but it skips
 * type-only imports because they vanish at run time. A circle of modules is one module in disguise
 * whatever it imports, and the registry's cycle was of that kind (the genesis parser held the types
 * that the views it builds needed), so this test follows every import TypeScript sees.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const repositoryRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const scannedFolders = ['src', 'test', 'bench'];

type ImportGraph = ReadonlyMap<string, readonly string[]>;

function typeScriptFilesUnder(folder: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    // Dot folders hold fuzzing work files and the like, node_modules other people's code.
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const path = join(folder, entry.name);
    if (entry.isDirectory()) files.push(...typeScriptFilesUnder(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(path);
  }
  return files;
}

/**
 * The files `source` (the text of `file`) imports by a relative path: imports and re-exports, type-only
 * or not, and dynamic `import()`. An import names the emitted `.js`; the file is the `.ts` beside it.
 */
function relativeImportsOf(file: string, source: string): string[] {
  const imported: string[] = [];
  for (const { fileName } of ts.preProcessFile(source, true, true).importedFiles) {
    if (!fileName.startsWith('.')) continue;
    const target = resolve(dirname(file), fileName);
    const candidate = [target.replace(/\.js$/, '.ts'), target].find((path) => existsSync(path));
    if (candidate !== undefined) imported.push(candidate);
  }
  return imported;
}

/**
 * Every strongly connected component of more than one file (or a file importing itself), each given
 * as one cycle through it: "a.ts → b.ts → a.ts". Tarjan's algorithm.
 */
function importCycles(graph: ImportGraph): string[] {
  const indexOf = new Map<string, number>();
  const lowest = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (file: string): void => {
    indexOf.set(file, indexOf.size);
    lowest.set(file, indexOf.get(file) as number);
    stack.push(file);
    onStack.add(file);
    for (const next of graph.get(file) ?? []) {
      if (!indexOf.has(next)) {
        visit(next);
        lowest.set(file, Math.min(lowest.get(file) as number, lowest.get(next) as number));
      } else if (onStack.has(next)) {
        lowest.set(file, Math.min(lowest.get(file) as number, indexOf.get(next) as number));
      }
    }
    if (lowest.get(file) !== indexOf.get(file)) return;
    const component: string[] = [];
    let member: string | undefined;
    do {
      member = stack.pop() as string;
      onStack.delete(member);
      component.push(member);
    } while (member !== file);
    if (component.length > 1 || (graph.get(file) ?? []).includes(file)) components.push(component);
  };
  for (const file of [...graph.keys()].sort()) if (!indexOf.has(file)) visit(file);
  return components.map((component) => cycleThrough(graph, component).join(' → '));
}

/** The shortest import path from the component's first file (by name) back to itself. */
function cycleThrough(graph: ImportGraph, component: readonly string[]): string[] {
  const members = new Set(component);
  const start = [...component].sort()[0] as string;
  const cameFrom = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift() as string;
    for (const next of graph.get(file) ?? []) {
      if (!members.has(next)) continue;
      if (next === start) {
        const path = [file];
        while (path[0] !== start) path.unshift(cameFrom.get(path[0] as string) as string);
        return [...path, start];
      }
      if (!cameFrom.has(next)) {
        cameFrom.set(next, file);
        queue.push(next);
      }
    }
  }
  throw new Error(`no cycle through ${start}, yet it is in a strongly connected component`);
}

describe('the import graph', () => {
  it('has no cycle in src/, test/ or bench/, type imports included', () => {
    const graph = new Map<string, string[]>();
    for (const folder of scannedFolders) {
      for (const file of typeScriptFilesUnder(join(repositoryRoot, folder))) {
        const name = relative(repositoryRoot, file);
        const imports = relativeImportsOf(file, readFileSync(file, 'utf8'));
        graph.set(
          name,
          imports.map((path) => relative(repositoryRoot, path)),
        );
      }
    }
    expect(graph.size).toBeGreaterThan(100);
    expect(importCycles(graph)).toEqual([]);
  });

  it('follows type imports, re-exports and dynamic imports, and names one cycle per circle', () => {
    const folder = join(repositoryRoot, 'src', 'registry');
    const imports = relativeImportsOf(
      join(folder, 'example.ts'),
      [
        "import type { Genesis } from './genesis-schema.js';",
        "export { parseGenesis } from './genesis.js';",
        "const view = await import('./registry-view.js');",
        "import { t } from '../codec/index.js';",
        "import { describe } from 'vitest';",
      ].join('\n'),
    );
    expect(imports.map((path) => relative(repositoryRoot, path))).toEqual([
      'src/registry/genesis-schema.ts',
      'src/registry/genesis.ts',
      'src/registry/registry-view.ts',
      'src/codec/index.ts',
    ]);
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts', 'd.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', []],
      ['e.ts', ['e.ts']],
    ]);
    expect(importCycles(graph)).toEqual(['a.ts → b.ts → c.ts → a.ts', 'e.ts → e.ts']);
  });
});
