#!/usr/bin/env node
// Runs the compiled CLI; `npm ci` builds it (the "prepare" script), `npm run build` rebuilds it.
import { existsSync } from 'node:fs';
import { URL } from 'node:url';

const entry = new URL('../dist/cli/run.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('ledgerbus is not built yet: run `npm run build` in the ledgerbus folder first.\n');
  process.exit(2);
}
await import(entry.href);
