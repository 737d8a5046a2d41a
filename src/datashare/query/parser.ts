/**
 * The job query language: a small SQL subset analysts already know, parsed into a plan that is
 * checked and compiled by ledgerbus — the text never reaches a database.
 *
 *   query      := SELECT item {, item} FROM name [WHERE condition] [GROUP BY name {, name}] [;]
 *   item       := (name | aggregate) [AS name]
 *   aggregate  := COUNT(*) | COUNT(name) | SUM|AVG|MIN|MAX(name)
 *               | QUANTILE|APPROX_QUANTILE|PERCENTILE(name, number in [0,1])
 *   condition  := and {OR and};  and := not {AND not};  not := NOT not | ( condition ) | comparison
 *   comparison := name op literal | literal op name;  op := = != <> < <= > >=
 *   literal    := 'string' | number | TRUE | FALSE
 *
 * Keywords are case-insensitive, unquoted names are lower-cased, "quoted" names are kept as
 * written. Plans are normal forms so that equal queries hash alike: `literal op name` becomes
 * `name op' literal`, `<>` becomes `!=`, nested ANDs (ORs) are flattened, quantile aliases are
 * `quantile`. Every failure is LedgerbusError(QUERY_REJECTED) naming the offending token.
 */
import type {
  AggregateFunction,
  AggregatePlan,
  Comparison,
  Condition,
  Literal,
  SelectItem,
} from '../types.js';
import { queryTextLengthMax } from '../types.js';
import { describeToken, queryRejected, tokenize } from './lexer.js';
import type { Token } from './lexer.js';

/** Deepest nesting of parentheses and NOTs a condition may have (bounds the parser's recursion). */
export const conditionDepthMax = 64;
/**
 * Comparisons one filter may hold. SQLite parses `a OR b OR c...` into a tree as deep as the chain,
 * and refuses one deeper than 1000 at run time ("Expression tree is too large"): a long chain is
 * refused here, as the query it is, rather than failing in the runner.
 */
export const conditionComparisonsMax = 256;

/** The alias the compiled query gives its hidden group size: no select item may take it. */
export const reservedAlias = '__group_size';

const functionNames: Readonly<Record<string, AggregateFunction>> = {
  count: 'count',
  sum: 'sum',
  avg: 'avg',
  min: 'min',
  max: 'max',
  quantile: 'quantile',
  approx_quantile: 'quantile',
  percentile: 'quantile',
};

/** Words that cannot be an unquoted name: the language's own, and SQL's that it refuses. */
const refusedWords: Readonly<Record<string, string>> = {
  join: 'joins are not supported',
  inner: 'joins are not supported',
  left: 'joins are not supported',
  right: 'joins are not supported',
  full: 'joins are not supported',
  cross: 'joins are not supported',
  natural: 'joins are not supported',
  on: 'joins are not supported',
  using: 'joins are not supported',
  union: 'set operations are not supported',
  intersect: 'set operations are not supported',
  except: 'set operations are not supported',
  order: 'ORDER BY is not supported (results come ordered by the group columns)',
  limit: 'LIMIT is not supported',
  offset: 'OFFSET is not supported',
  having: 'HAVING is not supported',
  in: 'IN is not supported; write comparisons joined by OR',
  like: 'LIKE is not supported',
  glob: 'GLOB is not supported',
  between: 'BETWEEN is not supported; write two comparisons joined by AND',
  is: 'IS is not supported',
  null: 'NULL is not supported',
  distinct: 'DISTINCT is not supported',
  all: 'ALL is not supported',
  case: 'CASE is not supported',
  cast: 'CAST is not supported',
  exists: 'subqueries are not supported',
  with: 'WITH is not supported',
  select: 'subqueries are not supported',
  window: 'window functions are not supported',
  over: 'window functions are not supported',
  escape: 'LIKE is not supported',
  collate: 'COLLATE is not supported',
  from: '',
  where: '',
  group: '',
  by: '',
  as: '',
  and: '',
  or: '',
  not: '',
  true: '',
  false: '',
};

const comparisons: Readonly<Record<string, Comparison>> = {
  '=': '=',
  '!=': '!=',
  '<>': '!=',
  '<': '<',
  '<=': '<=',
  '>': '>',
  '>=': '>=',
};

/** `5 < x` says `x > 5`. */
const flipped: Readonly<Record<Comparison, Comparison>> = {
  '=': '=',
  '!=': '!=',
  '<': '>',
  '<=': '>=',
  '>': '<',
  '>=': '<=',
};

export function parseAggregateQuery(text: string): AggregatePlan {
  const parser = new Parser(text);
  const plan = parser.query();
  parser.finish(true);
  return plan;
}

/** A condition alone (a model job's filter), in the grammar of WHERE. */
export function parseCondition(text: string): Condition {
  const parser = new Parser(text);
  const condition = parser.condition(0);
  parser.finish(false);
  return condition;
}

/** The default output name of an aggregate: `count(*)`, `avg(amount)`, `quantile(amount,0.5)`. */
export function defaultAlias(fn: AggregateFunction, column: string | null, q?: number): string {
  const argument = column ?? '*';
  return q === undefined ? `${fn}(${argument})` : `${fn}(${argument},${q})`;
}

class Parser {
  private readonly tokens: Token[];
  private index = 0;
  private comparisons = 0;

  constructor(text: string) {
    if (text.length > queryTextLengthMax) {
      throw queryRejected(
        `the query is ${text.length} characters long; at most ${queryTextLengthMax} are allowed`,
      );
    }
    this.tokens = tokenize(text);
  }

  query(): AggregatePlan {
    this.expectWord('select', 'a query starts with SELECT');
    const select: SelectItem[] = [];
    do select.push(this.selectItem());
    while (this.acceptSymbol(','));
    this.expectWord('from', 'expected "," or FROM after a select item');
    const dataset = this.name('the dataset name after FROM');
    const where = this.acceptWord('where') ? this.condition(0) : null;
    const groupBy: string[] = [];
    if (this.acceptWord('group')) {
      this.expectWord('by', 'expected BY after GROUP');
      do groupBy.push(this.groupColumn(groupBy));
      while (this.acceptSymbol(','));
    }
    checkGrouping(select, groupBy);
    return { kind: 'aggregate', dataset, select, where, groupBy };
  }

  /** After a whole query or condition: an optional `;` (queries only), then nothing. */
  finish(allowSemicolon: boolean): void {
    if (allowSemicolon && this.acceptSymbol(';')) {
      const next = this.peek();
      if (next.kind !== 'end') {
        throw queryRejected(`multiple statements are not supported (${describeToken(next)})`);
      }
      return;
    }
    const next = this.peek();
    if (next.kind === 'end') return;
    if (next.kind === 'symbol' && next.value === ';') {
      throw queryRejected(`unexpected ${describeToken(next)}: a filter is one condition`);
    }
    const expected = allowSemicolon
      ? 'expected WHERE, GROUP BY, "," or the end of the query'
      : 'expected AND, OR or the end of the condition';
    throw this.unexpected(next, expected);
  }

  condition(depth: number): Condition {
    const args = [this.conjunction(depth)];
    while (this.acceptWord('or')) args.push(this.conjunction(depth));
    return joined('or', args);
  }

  private conjunction(depth: number): Condition {
    const args = [this.negation(depth)];
    while (this.acceptWord('and')) args.push(this.negation(depth));
    return joined('and', args);
  }

  private negation(depth: number): Condition {
    if (depth > conditionDepthMax) {
      throw queryRejected(
        `the condition nests deeper than ${conditionDepthMax} levels at ${describeToken(this.peek())}`,
      );
    }
    if (this.acceptWord('not')) return { op: 'not', arg: this.negation(depth + 1) };
    if (this.acceptSymbol('(')) {
      const inner = this.condition(depth + 1);
      this.expectSymbol(')', 'expected ")" or AND / OR');
      return inner;
    }
    return this.comparison();
  }

  private comparison(): Condition {
    this.comparisons += 1;
    if (this.comparisons > conditionComparisonsMax) {
      throw queryRejected(
        `the condition holds more than ${conditionComparisonsMax} comparisons: narrow it with ranges (x >= a AND x <= b) instead of long OR chains`,
      );
    }
    const left = this.operand();
    const operator = this.next();
    const cmp = operator.kind === 'symbol' ? comparisons[operator.value] : undefined;
    if (cmp === undefined) throw this.unexpected(operator, 'expected a comparison (= != <> < <= > >=)');
    const right = this.operand();
    if (left.kind === 'column' && right.kind === 'literal') {
      return { op: 'cmp', cmp, column: left.name, value: right.value };
    }
    if (left.kind === 'literal' && right.kind === 'column') {
      return { op: 'cmp', cmp: flipped[cmp], column: right.name, value: left.value };
    }
    const what = left.kind === 'column' ? 'two columns' : 'two literals';
    throw queryRejected(
      `the comparison at position ${left.token.position} compares ${what}: compare one column with one literal`,
    );
  }

  private operand():
    { kind: 'column'; name: string; token: Token } | { kind: 'literal'; value: Literal; token: Token } {
    const token = this.peek();
    if (token.kind === 'string') {
      this.index++;
      return { kind: 'literal', value: token.value, token };
    }
    if (token.kind === 'number') {
      this.index++;
      return { kind: 'literal', value: token.number!, token };
    }
    if (token.kind === 'word' && (token.value === 'true' || token.value === 'false')) {
      this.index++;
      return { kind: 'literal', value: token.value === 'true', token };
    }
    if (token.kind === 'word' && this.tokens[this.index + 1]?.value === '(') {
      throw queryRejected(`functions are not allowed in a condition (${describeToken(token)})`);
    }
    return { kind: 'column', name: this.name('a column or a literal'), token };
  }

  private selectItem(): SelectItem {
    const token = this.peek();
    let item: SelectItem;
    if (token.kind === 'word' && this.tokens[this.index + 1]?.value === '(') {
      item = this.aggregate();
    } else {
      if (token.kind === 'symbol' && token.value === '*') {
        throw queryRejected(
          `SELECT * is not supported (position ${token.position}): name the groups and aggregates`,
        );
      }
      const column = this.name('a column or an aggregate');
      item = { type: 'group', column, alias: column };
    }
    if (this.acceptWord('as')) return { ...item, alias: this.name('an alias after AS') };
    return item;
  }

  private aggregate(): SelectItem {
    const nameToken = this.next();
    const fn = functionNames[nameToken.value];
    if (fn === undefined) {
      throw queryRejected(
        `function ${describeToken(nameToken)} is not supported: use COUNT, SUM, AVG, MIN, MAX or QUANTILE`,
      );
    }
    this.expectSymbol('(', 'expected "("');
    if (fn === 'count' && this.acceptSymbol('*')) {
      this.expectSymbol(')', 'expected ")" after COUNT(*');
      return { type: 'aggregate', fn, column: null, alias: defaultAlias(fn, null) };
    }
    const column = this.name(`a column inside ${nameToken.raw}(...)`);
    if (fn !== 'quantile') {
      this.expectSymbol(')', `expected ")": ${nameToken.raw} takes one column`);
      return { type: 'aggregate', fn, column, alias: defaultAlias(fn, column) };
    }
    this.expectSymbol(',', `expected ", q" after the column of ${nameToken.raw}`);
    const qToken = this.next();
    const q = qToken.number;
    if (qToken.kind !== 'number' || q === undefined || !(q >= 0 && q <= 1)) {
      throw queryRejected(`${nameToken.raw} needs a number between 0 and 1, not ${describeToken(qToken)}`);
    }
    this.expectSymbol(')', `expected ")" after the quantile of ${nameToken.raw}`);
    return { type: 'aggregate', fn, column, q, alias: defaultAlias(fn, column, q) };
  }

  private groupColumn(earlier: readonly string[]): string {
    const token = this.peek();
    const column = this.name('a column after GROUP BY');
    if (earlier.includes(column)) {
      throw queryRejected(`GROUP BY names ${column} twice (position ${token.position})`);
    }
    return column;
  }

  /** An identifier: an unquoted word that is no keyword, or a "quoted" name. */
  private name(what: string): string {
    const token = this.peek();
    if (token.kind === 'quoted') {
      this.index++;
      return token.value;
    }
    if (token.kind === 'word' && refusedWords[token.value] === undefined) {
      this.index++;
      return token.value;
    }
    throw this.unexpected(token, `expected ${what}`);
  }

  private unexpected(token: Token, expected: string): never {
    if (token.kind === 'word') {
      const refusal = refusedWords[token.value];
      if (refusal) throw queryRejected(`${refusal} (${describeToken(token)})`);
    }
    if (token.kind === 'symbol' && token.value === '(' && this.tokens[this.index + 1]?.value === 'select') {
      throw queryRejected(`subqueries are not supported (${describeToken(token)})`);
    }
    if (token.kind === 'symbol' && token.value === '*') {
      throw queryRejected(`unexpected ${describeToken(token)}: arithmetic is not supported; ${expected}`);
    }
    if (token.kind === 'end') throw queryRejected(`the query ends too early: ${expected}`);
    throw queryRejected(`unexpected ${describeToken(token)}: ${expected}`);
  }

  private peek(): Token {
    return this.tokens[this.index]!;
  }

  private next(): Token {
    const token = this.peek();
    if (token.kind !== 'end') this.index++;
    return token;
  }

  private acceptWord(word: string): boolean {
    const token = this.peek();
    if (token.kind !== 'word' || token.value !== word) return false;
    this.index++;
    return true;
  }

  private acceptSymbol(symbol: string): boolean {
    const token = this.peek();
    if (token.kind !== 'symbol' || token.value !== symbol) return false;
    this.index++;
    return true;
  }

  private expectWord(word: string, expected: string): void {
    if (!this.acceptWord(word)) throw this.unexpected(this.peek(), expected);
  }

  private expectSymbol(symbol: string, expected: string): void {
    if (!this.acceptSymbol(symbol)) throw this.unexpected(this.peek(), expected);
  }
}

/** One AND (OR) of `args`, a nested AND (OR) among them flattened into it. */
function joined(op: 'and' | 'or', args: Condition[]): Condition {
  if (args.length === 1) return args[0]!;
  return { op, args: args.flatMap((arg) => (arg.op === op ? arg.args : [arg])) };
}

/**
 * SQL's rule for grouped queries, made strict: a plain column is released only as a group, so it
 * must be grouped by, and a group is always shown, so every GROUP BY column must be selected.
 */
function checkGrouping(select: readonly SelectItem[], groupBy: readonly string[]): void {
  const aliases = new Set<string>();
  for (const item of select) {
    // SQLite matches names without regard to ASCII case: two such aliases would be one column.
    const key = item.alias.toLowerCase();
    if (key === reservedAlias) throw queryRejected(`the alias ${reservedAlias} is reserved; choose another`);
    if (aliases.has(key)) {
      throw queryRejected(`two select items are named ${item.alias}: give one an alias with AS`);
    }
    aliases.add(key);
    if (item.type === 'group' && !groupBy.includes(item.column)) {
      throw queryRejected(`column ${item.column} must be aggregated or appear in GROUP BY`);
    }
  }
  for (const column of groupBy) {
    if (!select.some((item) => item.type === 'group' && item.column === column)) {
      throw queryRejected(`GROUP BY column ${column} must also be selected`);
    }
  }
}
