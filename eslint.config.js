// @ts-check
import js from '@eslint/js';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

const runtimeAreas = [
  'node',
  'connector',
  'runtime',
  'cli',
  'sim',
  'dashboard',
  'client',
  'partition',
  'raft-group',
  'protocol',
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'bench/results/**', 'tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { console: 'readonly', process: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      eqeqeq: ['error', 'always'],
    },
  },
  // No import cycles (issue 13): a module that imports itself through others sees it half-initialised
  // under ESM, and a circle of modules is one module in disguise. import-x/no-cycle follows value
  // imports only (`import type` vanishes at run time); src/import-cycles.test.ts follows them all.
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      // Only our own TypeScript is followed: parsing what node_modules resolves to would triple the
      // lint time, and no cycle of ours runs through a package.
      'import-x/extensions': ['.ts'],
      // Our imports name the emitted `.js`; resolve them to the `.ts` source as TypeScript does.
      'import-x/resolver-next': [
        createNodeResolver({ extensions: ['.ts', '.js'], extensionAlias: { '.js': ['.ts', '.js'] } }),
      ],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      // The connector is a process of its own beside the node: what both need lives in src/runtime,
      // which in turn depends on neither (nor on the CLI that starts them).
      'import-x/no-restricted-paths': [
        'error',
        {
          basePath: import.meta.dirname,
          zones: [
            {
              target: './src/connector',
              from: './src/node',
              message: 'The connector does not import the node: move what both use to src/runtime.',
            },
            {
              target: './src/runtime',
              from: ['./src/node', './src/connector', './src/cli'],
              message: 'src/runtime is shared by the node and the connector: it imports neither.',
            },
            {
              // The drivers are generic over storage, clock and transport so the node, the simulator and
              // the benchmarks run the same code: the node's I/O is passed in, never imported.
              target: ['./src/partition', './src/raft-group'],
              from: ['./src/node', './src/connector', './src/cli'],
              message: 'A driver gets its storage, clock and transport from its host: it imports no host.',
            },
            {
              target: './src/protocol',
              from: ['./src/node', './src/connector', './src/cli'],
              message: 'The connector–node method table is shared by both sides: it imports neither.',
            },
          ],
        },
      ],
    },
  },
  // The pure core never imports the runtime: dependencies point one way (STYLE.md, "Layout").
  {
    files: [
      'src/codec/**',
      'src/crypto/**',
      'src/consensus/**',
      'src/ledger/**',
      'src/contracts/**',
      'src/proofs/**',
      'src/registry/**',
      'src/datashare/**',
      'src/intelligence/**',
    ],
    ignores: ['**/*.test.ts', '**/testing/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: runtimeAreas.map((area) => ({
            group: [`**/${area}/**`, `../${area}/*`, `../../${area}/*`],
            message: 'The pure core must not import the runtime (node, connector, runtime, cli, sim...).',
          })),
        },
      ],
    },
  },
  // Consensus cores are pure deterministic state machines: no I/O, timers, clock, randomness or await
  // (DESIGN.md §5). Everything of that kind is injected by the driver.
  {
    files: ['src/consensus/**'],
    ignores: ['**/*.test.ts', '**/testing/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'Consensus cores do no I/O: inject what you need.' },
            ...runtimeAreas.map((area) => ({
              group: [`**/${area}/**`, `../${area}/*`, `../../${area}/*`],
              message: 'The pure core must not import the runtime.',
            })),
          ],
          paths: [
            'fs',
            'crypto',
            'net',
            'os',
            'child_process',
            'worker_threads',
            'timers',
            'better-sqlite3',
          ].map((name) => ({ name, message: 'Consensus cores do no I/O: inject what you need.' })),
        },
      ],
      'no-restricted-globals': [
        'error',
        ...[
          'setTimeout',
          'setInterval',
          'setImmediate',
          'queueMicrotask',
          'process',
          'performance',
          'fetch',
        ].map((name) => ({
          name,
          message: 'Consensus cores are deterministic: time and I/O come from the driver.',
        })),
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Time comes in ticks and in the primary’s timestamp.' },
        { object: 'Math', property: 'random', message: 'Consensus cores take no randomness.' },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: 'AwaitExpression', message: 'Consensus cores are synchronous.' },
        { selector: ':function[async=true]', message: 'Consensus cores are synchronous.' },
        { selector: "NewExpression[callee.name='Date']", message: 'Consensus cores read no clock.' },
        { selector: "NewExpression[callee.name='Promise']", message: 'Consensus cores are synchronous.' },
      ],
    },
  },
);
