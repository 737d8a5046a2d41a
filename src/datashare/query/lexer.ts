/**
 * The tokens of the job query language (a small SQL subset, parser.ts). The lexer already refuses
 * what the language never holds — comments, arithmetic, dots, parameters, any other character —
 * so nothing it lets through can change the meaning of the plan the parser builds.
 *
 * Every refusal is LedgerbusError(QUERY_REJECTED) naming the offending text and its position
 * (1-based, in characters), the only error a query can cause.
 */
import { ErrorCode, LedgerbusError } from '../../errors.js';

export type TokenKind =
  /** An unquoted identifier or keyword; `value` is lower-cased. */
  | 'word'
  /** A "double-quoted" identifier; `value` is its text, case kept. */
  | 'quoted'
  /** A 'single-quoted' string literal; `value` is its text. */
  | 'string'
  | 'number'
  /** = != <> < <= > >= ( ) , ; * */
  | 'symbol'
  | 'end';

export interface Token {
  readonly kind: TokenKind;
  readonly value: string;
  /** Set for numbers. */
  readonly number?: number;
  /** The source text of the token, for messages. */
  readonly raw: string;
  /** 1-based character position of the token's first character. */
  readonly position: number;
}

export function queryRejected(message: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.QueryRejected, message);
}

/** How a token is shown in a message: its source text, shortened. */
export function describeToken(token: Token): string {
  if (token.kind === 'end') return 'the end of the query';
  const raw = token.raw.length > 40 ? `${token.raw.slice(0, 40)}...` : token.raw;
  return `${JSON.stringify(raw)} at position ${token.position}`;
}

const symbols = ['<=', '>=', '<>', '!=', '=', '<', '>', '(', ')', ',', ';', '*'];
const wordStart = /[A-Za-z_]/;
const wordPart = /[A-Za-z0-9_]/;
const digit = /[0-9]/;
const numberPattern = /^[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/;
// Control characters could end or split the SQL text SQLite reads (a NUL ends it): never in a name.
// eslint-disable-next-line no-control-regex
const controlCharacter = /[\u0000-\u001f\u007f]/;

export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const position = i + 1;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
    } else if (wordStart.test(c)) {
      let end = i + 1;
      while (end < text.length && wordPart.test(text[end]!)) end++;
      const raw = text.slice(i, end);
      tokens.push({ kind: 'word', value: raw.toLowerCase(), raw, position });
      i = end;
    } else if (c === '"' || c === "'") {
      const { value, end } = readQuoted(text, i);
      const raw = text.slice(i, end);
      if (c === '"') {
        if (value.length === 0) throw queryRejected(`empty quoted name at position ${position}`);
        if (controlCharacter.test(value)) {
          throw queryRejected(`quoted name at position ${position} holds a control character`);
        }
      }
      tokens.push({ kind: c === '"' ? 'quoted' : 'string', value, raw, position });
      i = end;
    } else if (digit.test(c) || (c === '-' && digit.test(text[i + 1] ?? ''))) {
      tokens.push(readNumber(text, i));
      i += tokens[tokens.length - 1]!.raw.length;
    } else if (c === '-' && text[i + 1] === '-') {
      throw queryRejected(`comments are not allowed (-- at position ${position})`);
    } else if (c === '/' && text[i + 1] === '*') {
      throw queryRejected(`comments are not allowed (/* at position ${position})`);
    } else {
      const symbol = symbols.find((s) => text.startsWith(s, i));
      if (symbol === undefined) throw queryRejected(unexpectedCharacter(text, i));
      tokens.push({ kind: 'symbol', value: symbol, raw: symbol, position });
      i += symbol.length;
    }
  }
  tokens.push({ kind: 'end', value: '', raw: '', position: text.length + 1 });
  return tokens;
}

/** A quoted run starting at `start` ('...' or "..."), the quote doubled inside to stand for itself. */
function readQuoted(text: string, start: number): { value: string; end: number } {
  const quote = text[start]!;
  let value = '';
  let i = start + 1;
  for (;;) {
    const next = text.indexOf(quote, i);
    if (next < 0) {
      const what = quote === "'" ? 'string' : 'quoted name';
      throw queryRejected(`unterminated ${what} starting at position ${start + 1}`);
    }
    value += text.slice(i, next);
    if (text[next + 1] === quote) {
      value += quote;
      i = next + 2;
    } else {
      return { value, end: next + 1 };
    }
  }
}

function readNumber(text: string, start: number): Token {
  const negative = text[start] === '-';
  const match = numberPattern.exec(text.slice(negative ? start + 1 : start, start + 400));
  // The caller saw a digit (after an optional minus), so the pattern matches at least one digit.
  const raw = (negative ? '-' : '') + match![0];
  const number = Number(raw);
  if (!Number.isFinite(number)) throw queryRejected(`number ${raw} at position ${start + 1} is out of range`);
  const after = text[start + raw.length];
  if (after !== undefined && (wordPart.test(after) || after === '.')) {
    throw queryRejected(`malformed number at position ${start + 1}`);
  }
  // -0 would print as 0 and hash like it; keep the plan's literal the number people read.
  return { kind: 'number', value: raw, number: number === 0 ? 0 : number, raw, position: start + 1 };
}

function unexpectedCharacter(text: string, i: number): string {
  const c = String.fromCodePoint(text.codePointAt(i)!);
  const shown = controlCharacter.test(c) ? `U+${c.codePointAt(0)!.toString(16).padStart(4, '0')}` : `"${c}"`;
  const hint: Record<string, string> = {
    '+': ': arithmetic is not supported',
    '-': ': arithmetic is not supported',
    '/': ': arithmetic is not supported',
    '%': ': arithmetic is not supported',
    '|': ': operators other than comparisons are not supported',
    '.': ': qualified names are not supported (quote a name that holds a dot)',
    '?': ': parameters are not supported; write the value',
    '`': ': quote names with "double quotes"',
    '[': ': quote names with "double quotes"',
  };
  return `unexpected character ${shown} at position ${i + 1}${hint[c] ?? ''}`;
}
