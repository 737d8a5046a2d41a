/**
 * Compute-to-data (DESIGN §8, EntDSM): the shapes every part of a job shares — the requester's
 * connector that writes a job, the contract that records its plan hash, the owner's connector that
 * checks it against its policy, and the child process that runs it. Pure data: no I/O here.
 *
 * A job is never text handed to a database. An aggregate query in the SQL subset is parsed into an
 * `AggregatePlan` (query/parser.ts), checked against the dataset's columns and the owner's
 * `DatasetPolicy` (query/policy.ts) and compiled from the plan — identifiers taken from the
 * dataset's own column list, every literal a bound parameter — into SQL for the owner's SQLite file
 * (query/compile.ts). A model job is a `ModelPlan`: columns, an optional filter in the same
 * condition grammar, and numeric settings.
 *
 * The plan's hash (`planHash`, SHA-256 of its canonical JSON) is what goes on the ledger: the owner
 * recomputes it from the sealed job it received, so neither side can later claim another query ran.
 */

/** A dataset column's type, inferred when the dataset is loaded. */
export type ColumnType = 'integer' | 'real' | 'text' | 'boolean';

export interface ColumnInfo {
  readonly name: string;
  readonly type: ColumnType;
}

export const aggregateFunctions = ['count', 'sum', 'avg', 'min', 'max', 'quantile'] as const;
export type AggregateFunction = (typeof aggregateFunctions)[number];

export const modelKinds = ['linear', 'logistic'] as const;
export type ModelKind = (typeof modelKinds)[number];

/** A literal of a comparison: SQL strings, numbers, TRUE/FALSE. */
export type Literal = string | number | boolean;

export type Comparison = '=' | '!=' | '<' | '<=' | '>' | '>=';

/**
 * A filter: comparisons of a column with a literal, joined by AND / OR / NOT. `literal op column`
 * is normalised to `column op' literal` by the parser, so equal filters have equal plans.
 */
export type Condition =
  | { readonly op: 'and' | 'or'; readonly args: readonly Condition[] }
  | { readonly op: 'not'; readonly arg: Condition }
  | { readonly op: 'cmp'; readonly cmp: Comparison; readonly column: string; readonly value: Literal };

/** One output column of an aggregate query, in SELECT order. */
export type SelectItem =
  | { readonly type: 'group'; readonly column: string; readonly alias: string }
  | {
      readonly type: 'aggregate';
      readonly fn: AggregateFunction;
      /** null only for COUNT(*). */
      readonly column: string | null;
      /** QUANTILE(column, q): 0 ≤ q ≤ 1; absent for every other function. */
      readonly q?: number;
      /** The output name: the AS alias, or e.g. "avg(amount)". */
      readonly alias: string;
    };

export interface AggregatePlan {
  readonly kind: 'aggregate';
  /** The FROM name; must be the dataset's name. */
  readonly dataset: string;
  readonly select: readonly SelectItem[];
  readonly where: Condition | null;
  /** Every group column is also a `group` select item, and every `group` item is grouped by. */
  readonly groupBy: readonly string[];
}

export interface ModelPlan {
  readonly kind: 'model';
  readonly dataset: string;
  readonly model: ModelKind;
  /** 1 to `modelFeaturesMax` numeric (integer, real or boolean) columns. */
  readonly features: readonly string[];
  /** Numeric for linear; boolean or 0/1 integer for logistic. */
  readonly target: string;
  readonly where: Condition | null;
  /** Newton (IRLS) iterations for logistic, at most `modelIterationsMax`; linear ignores it. */
  readonly iterations: number;
  /** L2 penalty (ridge), ≥ 0. */
  readonly l2: number;
}

export type JobPlan = AggregatePlan | ModelPlan;

export const modelFeaturesMax = 32;
export const modelIterationsMax = 100;
export const queryTextLengthMax = 8 * 1024;

/**
 * What a requester sends its dataset's owner, sealed to the owner's key (never in the clear on the
 * ledger): the query text or model settings, as the requester wrote them.
 */
export type JobSpec =
  | {
      readonly kind: 'aggregate';
      readonly dataset: string;
      readonly query: string;
      /** 32 random bytes (hex) hashed with the plan (`planHash`); the owner requires it. */
      readonly salt?: string;
    }
  | {
      readonly kind: 'model';
      /** 32 random bytes (hex) hashed with the plan (`planHash`); the owner requires it. */
      readonly salt?: string;
      readonly dataset: string;
      readonly model: ModelKind;
      readonly features: readonly string[];
      readonly target: string;
      /** A condition in the query grammar (`year >= 2023 AND status = 'late'`), or absent. */
      readonly where?: string;
      readonly iterations?: number;
      readonly l2?: number;
    };

/**
 * What a dataset's owner allows (the policy file a data owner writes; DESIGN §8). Every job is
 * checked against it before it runs and again by what the child process returns.
 */
export interface DatasetPolicy {
  /** Columns a job may name anywhere (group, filter, aggregate, feature, target); "*" is all. */
  readonly allowedColumns: readonly string[] | '*';
  /** Aggregate functions aggregate jobs may use. */
  readonly aggregates: readonly AggregateFunction[];
  /** Model kinds model jobs may train; [] refuses model jobs. */
  readonly models: readonly ModelKind[];
  /**
   * Least number of dataset rows behind any released number: a result group smaller than this is
   * suppressed (and counted); a model needs at least this many rows. ≥ 10 (`minGroupSizeFloor`).
   */
  readonly minGroupSize: number;
  /** Most rows a job's filter may select; more is JOB_LIMIT_EXCEEDED. */
  readonly maxRows: number;
  /** Wall-clock limit of one job's child process (killed past it). */
  readonly timeLimitMs: number;
  /** Resident memory limit of one job's child process (killed past it). */
  readonly memoryBytesMax: number;
  /** Most result rows an aggregate job may return (after suppression). */
  readonly resultRowsMax: number;
  /** 'manual': a person decides every job (`ledgerbus job approve|reject`); 'auto': the policy does. */
  readonly approval: 'auto' | 'manual';
  /** Refuse a query whose filter differs from an earlier one on this dataset by a small group. */
  readonly differenceCheck: boolean;
}

export const minGroupSizeFloor = 10;

export const defaultDatasetPolicy: DatasetPolicy = {
  allowedColumns: '*',
  aggregates: [...aggregateFunctions],
  models: [...modelKinds],
  minGroupSize: 10,
  maxRows: 10_000_000,
  timeLimitMs: 30_000,
  memoryBytesMax: 512 * 1024 * 1024,
  resultRowsMax: 10_000,
  approval: 'auto',
  differenceCheck: true,
};

/** What the catalog shows of a policy, so requesters can write jobs that pass it. */
export interface PolicySummary {
  readonly allowedColumns: readonly string[] | '*';
  readonly aggregates: readonly AggregateFunction[];
  readonly models: readonly ModelKind[];
  readonly minGroupSize: number;
  readonly approval: 'auto' | 'manual';
}

export function policySummary(policy: DatasetPolicy): PolicySummary {
  return {
    allowedColumns: policy.allowedColumns,
    aggregates: policy.aggregates,
    models: policy.models,
    minGroupSize: policy.minGroupSize,
    approval: policy.approval,
  };
}

/** A cell of an aggregate result. */
export type Cell = string | number | boolean | null;

/** What a job returns to its requester: numbers about groups, or a model's parameters. Never rows. */
export type JobOutput =
  | {
      readonly kind: 'aggregate';
      /** The select aliases, in order. */
      readonly columns: readonly string[];
      readonly rows: readonly (readonly Cell[])[];
      /** Groups left out because they held fewer than the minimum group size. */
      readonly suppressedGroups: number;
      /** The minimum group size that applied. */
      readonly minGroupSize: number;
    }
  | {
      readonly kind: 'model';
      readonly model: ModelKind;
      readonly features: readonly string[];
      readonly target: string;
      /** One per feature, on the features' own scale. */
      readonly coefficients: readonly number[];
      readonly intercept: number;
      /** Rows the model was trained on. */
      readonly n: number;
      /** linear: r2, rmse; logistic: logLoss, accuracy, iterations. */
      readonly metrics: Readonly<Record<string, number>>;
    };

/**
 * SQL compiled from a validated plan for the table `data` of a dataset file: identifiers are the
 * dataset's own column names, double-quoted; every literal is in `params`. `groupSizeColumn` is
 * the hidden COUNT(*) the runner reads to suppress small groups.
 */
export interface CompiledQuery {
  readonly sql: string;
  readonly params: readonly (string | number)[];
  /** Result column names in order, the aliases first, then `groupSizeColumn`. */
  readonly outputs: readonly string[];
  readonly groupSizeColumn: string;
}

/** A filter compiled to a SQL boolean expression over `data` (`1` when there is none). */
export interface CompiledCondition {
  readonly sql: string;
  readonly params: readonly (string | number)[];
}
