/**
 * A spare runner's warm-up (JobSandbox): before it says `ready`, it runs one synthetic aggregate
 * job and one model job on a small in-memory table, so that the code a real job takes — plan
 * check, compilation, the difference check, SQLite statements, the QUANTILE aggregate, the model
 * fit — is loaded and compiled by V8 while the spare is idle rather than while a requester waits.
 * No dataset is opened: a spare holds no data before its job.
 */
import Database from 'better-sqlite3';
import { defaultDatasetPolicy } from '../../datashare/types.js';
import type { AggregatePlan, ColumnInfo, ModelPlan } from '../../datashare/types.js';
import { executeJob } from './job-execution.js';
import { registerQuantile } from './job-database.js';

const columns: readonly ColumnInfo[] = [
  { name: 'g', type: 'text' },
  { name: 'x', type: 'real' },
  { name: 'y', type: 'integer' },
  { name: 'b', type: 'boolean' },
];

const aggregate: AggregatePlan = {
  kind: 'aggregate',
  dataset: 'warm_up',
  select: [
    { type: 'group', column: 'g', alias: 'g' },
    { type: 'aggregate', fn: 'count', column: null, alias: 'count(*)' },
    { type: 'aggregate', fn: 'avg', column: 'x', alias: 'avg(x)' },
    { type: 'aggregate', fn: 'sum', column: 'y', alias: 'sum(y)' },
    { type: 'aggregate', fn: 'max', column: 'b', alias: 'max(b)' },
    { type: 'aggregate', fn: 'quantile', column: 'x', q: 0.5, alias: 'quantile(x,0.5)' },
  ],
  where: {
    op: 'and',
    args: [
      { op: 'cmp', cmp: '>=', column: 'y', value: 20 },
      { op: 'not', arg: { op: 'cmp', cmp: '=', column: 'g', value: 'none' } },
    ],
  },
  groupBy: ['g'],
};

const model: ModelPlan = {
  kind: 'model',
  dataset: 'warm_up',
  model: 'linear',
  features: ['x'],
  target: 'y',
  where: { op: 'cmp', cmp: '!=', column: 'b', value: true },
  iterations: 1,
  l2: 0,
};

export function warmUp(): void {
  const db = new Database(':memory:');
  try {
    db.exec('CREATE TABLE "data" ("g" TEXT, "x" REAL, "y" INTEGER, "b" INTEGER)');
    const insert = db.prepare('INSERT INTO "data" VALUES (?, ?, ?, ?)');
    for (let i = 0; i < 80; i++) insert.run(i % 2 === 0 ? 'a' : 'b', i / 3, i, i % 3 === 0 ? 1 : 0);
    registerQuantile(db);
    // 80 rows over a limit of 70 make the row limit count; the filter keeps 60 (30 a group), and
    // differs from the earlier one by 10 rows a group: every check runs, and passes.
    const policy = { ...defaultDatasetPolicy, maxRows: 70 };
    const earlier = {
      where: { op: 'cmp', cmp: '>=', column: 'y', value: 0 } as const,
      groupBy: [],
      suppressed: [],
    };
    const job = { datasetFile: ':memory:', columns, policy, history: [earlier] };
    executeJob(db, { ...job, plan: aggregate });
    executeJob(db, { ...job, plan: model });
  } finally {
    db.close();
  }
}
