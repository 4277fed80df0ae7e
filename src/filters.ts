import { createRequire } from 'node:module';
import type { RE2JS } from 're2js';
import { invalidArgument, resourceExhausted, StoreError } from './errors.js';
import { patternExpansion } from './filter-patterns.js';

/**
 * containerd's filter language (as `ctr content ls` and `ctr content active` send it):
 *
 *   selectors := selector ("," selector)*        all must match
 *   selector  := fieldpath [operator value]      no operator: the field must be present
 *   fieldpath := field ("." field)*
 *   field     := [A-Za-z0-9_-]+ | quoted
 *   operator  := "==" | "!=" | "~="
 *   value     := quoted | run of non-space, non-comma characters
 *   quoted    := "…" (Go escapes), /…/ or |…| (only the delimiter may be escaped)
 *
 * Several filter strings in one request are OR-ed; no filter (or an empty one) matches all.
 */

type Operator = 'present' | '==' | '!=' | '~=';

interface Selector {
  readonly fieldpath: readonly string[];
  readonly operator: Operator;
  readonly value: string;
  readonly regexp?: RE2JS;
}

/**
 * `~=` patterns run on RE2 (pure JavaScript, linear in the input, as containerd's Go regexp
 * is), never on V8's backtracking engine, where one pattern like `^(a+)+x$` blocks the event
 * loop for hours. Linear is not cheap: a match costs about the program's size times the text's
 * length, a List matches every item, and compiling is synchronous. So one request is bounded
 * (containerd bounds none of this; a message may be 16 MiB): how many filters and selectors it
 * carries, how long its patterns are, how far their counted repetitions may expand before
 * anything is compiled, and how large the compiled programs are.
 */
export const FILTER_LIMITS = {
  filters: 64,
  // A filter's text is parsed in one go on the event loop, a character at a time: 16 MiB of it
  // (the largest message) took seconds. A label's value is at most 4 KiB, 16 KiB even written
  // all in escapes, so no useful filter is longer.
  filterLength: 16 * 1024,
  filtersLength: 64 * 1024,
  selectors: 256,
  patternLength: 1024,
  patternsLength: 4096,
  /** Read from the pattern's text (filter-patterns.ts), which errs high: a looser bound. */
  expansion: 4000,
  instructions: 1000,
  requestInstructions: 2000,
} as const;

/** What the patterns of one request have used of FILTER_LIMITS so far. */
class Budget {
  selectors = 0;
  patternsLength = 0;
  instructions = 0;
}

// re2js is loaded at the first `~=` pattern, not at start-up: few clients send one, and a module
// once loaded stays in the daemon's memory for good (re2js is about 1 MiB of an idle daemon's RSS).
// Its CommonJS build, through require, keeps compiling synchronous.
const requireModule = createRequire(import.meta.url);
let re2: typeof RE2JS | undefined;
function re2js(): typeof RE2JS {
  if (re2) return re2;
  try {
    re2 = (requireModule('re2js') as typeof import('re2js')).RE2JS;
    return re2;
  } catch (err) {
    // the daemon's fault, not the pattern's; the module's path stays out of what clients read
    throw new StoreError('internal', 'the regular expression engine (re2js) could not be loaded', { cause: err });
  }
}

/** Looks a field path up on the object being filtered; undefined means "not present". */
export type FieldLookup = (fieldpath: readonly string[]) => string | undefined;

export interface Filter {
  matches(lookup: FieldLookup): boolean;
}

const MATCH_ALL: Filter = { matches: () => true };

class ParseError extends Error {}

class Parser {
  private pos = 0;
  constructor(
    private readonly input: string,
    private readonly budget: Budget,
  ) {}

  parse(): Selector[] {
    const selectors = [this.selector()];
    for (;;) {
      this.skipSpace();
      if (this.pos >= this.input.length) return selectors;
      if (this.input[this.pos] !== ',') this.fail(`unexpected input ${JSON.stringify(this.input[this.pos])}`);
      this.pos++;
      selectors.push(this.selector());
    }
  }

  private selector(): Selector {
    if (++this.budget.selectors > FILTER_LIMITS.selectors) {
      throw resourceExhausted(`a request may carry at most ${FILTER_LIMITS.selectors} filter selectors`);
    }
    const fieldpath = [this.field()];
    for (;;) {
      this.skipSpace();
      if (this.input[this.pos] !== '.') break;
      this.pos++;
      fieldpath.push(this.field());
    }
    this.skipSpace();
    if (this.pos >= this.input.length || this.input[this.pos] === ',') {
      return { fieldpath, operator: 'present', value: '' };
    }
    const operator = this.operator();
    const value = this.value();
    if (operator === '~=') return { fieldpath, operator, value, regexp: this.compile(value) };
    return { fieldpath, operator, value };
  }

  private compile(pattern: string): RE2JS {
    const limits = FILTER_LIMITS;
    if (pattern.length > limits.patternLength) {
      this.fail(`regular expression of ${pattern.length} characters is longer than the ${limits.patternLength} allowed`);
    }
    this.budget.patternsLength += pattern.length;
    if (this.budget.patternsLength > limits.patternsLength) {
      this.fail(`the regular expressions of one request may total at most ${limits.patternsLength} characters`);
    }
    const shown = JSON.stringify(pattern.length > 100 ? `${pattern.slice(0, 100)}…` : pattern);
    if (patternExpansion(pattern) > limits.expansion) {
      this.fail(`regular expression ${shown} is too large: its counted repetitions expand beyond ${limits.expansion} instructions`);
    }
    // loaded outside the try: a module that fails to load is the daemon's fault, not the pattern's
    const engine = re2js();
    let regexp: RE2JS;
    try {
      regexp = engine.compile(pattern);
    } catch (err) {
      this.fail(`invalid regular expression ${shown}: ${(err as Error).message}`);
    }
    const size = regexp.programSize();
    if (size > limits.instructions) {
      this.fail(`regular expression ${shown} is too large: it compiles to ${size} instructions, more than the ${limits.instructions} allowed`);
    }
    this.budget.instructions += size;
    if (this.budget.instructions > limits.requestInstructions) {
      this.fail(`the regular expressions of one request may compile to at most ${limits.requestInstructions} instructions in all`);
    }
    return regexp;
  }

  private field(): string {
    this.skipSpace();
    const ch = this.input[this.pos];
    if (ch !== undefined && isQuote(ch)) return this.quoted();
    const start = this.pos;
    while (this.pos < this.input.length && /[A-Za-z0-9_-]/.test(this.input[this.pos]!)) this.pos++;
    if (start === this.pos) this.fail('expected a field name or a quoted field');
    return this.input.slice(start, this.pos);
  }

  private operator(): Operator {
    const start = this.pos;
    while (this.pos < this.input.length && '=!~'.includes(this.input[this.pos]!)) this.pos++;
    const op = this.input.slice(start, this.pos);
    if (op === '==' || op === '!=' || op === '~=') return op;
    if (op === '') this.fail('expected an operator ("==", "!=" or "~=")');
    this.pos = start;
    this.fail(`unsupported operator ${JSON.stringify(op)}`);
  }

  private value(): string {
    this.skipSpace();
    const ch = this.input[this.pos];
    if (ch !== undefined && isQuote(ch)) return this.quoted();
    const start = this.pos;
    while (this.pos < this.input.length && !/[\s,]/.test(this.input[this.pos]!)) this.pos++;
    if (start === this.pos) this.fail('expected a value');
    return this.input.slice(start, this.pos);
  }

  private quoted(): string {
    const quote = this.input[this.pos]!;
    const start = this.pos;
    this.pos++;
    let out = '';
    for (;;) {
      if (this.pos >= this.input.length) {
        this.pos = start;
        this.fail('quoted literal not terminated');
      }
      const ch = this.input[this.pos++]!;
      if (ch === quote) return out;
      if (ch === '\n') this.fail('quoted literal not terminated');
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      const esc = this.input[this.pos++];
      if (esc === undefined) this.fail('quoted literal not terminated');
      if (esc === quote || esc === '\\') out += esc;
      else if (quote !== '"') out += `\\${esc}`; // a regexp body keeps its own escapes
      else out += this.goEscape(esc);
    }
  }

  private goEscape(esc: string): string {
    const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };
    if (simple[esc] !== undefined) return simple[esc]!;
    const widths: Record<string, number> = { x: 2, u: 4, U: 8 };
    const width = widths[esc];
    if (width !== undefined) {
      const digits = this.input.slice(this.pos, this.pos + width);
      if (!new RegExp(`^[0-9a-fA-F]{${width}}$`).test(digits)) this.fail('illegal escape sequence');
      this.pos += width;
      return String.fromCodePoint(parseInt(digits, 16));
    }
    if (/[0-7]/.test(esc)) {
      const digits = esc + this.input.slice(this.pos, this.pos + 2);
      if (!/^[0-7]{3}$/.test(digits)) this.fail('illegal escape sequence');
      this.pos += 2;
      return String.fromCharCode(parseInt(digits, 8));
    }
    this.fail(`illegal escape sequence \\${esc}`);
  }

  private skipSpace(): void {
    while (this.pos < this.input.length && /\s/.test(this.input[this.pos]!)) this.pos++;
  }

  private fail(message: string): never {
    throw new ParseError(`${message} at position ${this.pos}`);
  }
}

function isQuote(ch: string): boolean {
  return ch === '"' || ch === '/' || ch === '|';
}

function matchSelector(selector: Selector, lookup: FieldLookup): boolean {
  const value = lookup(selector.fieldpath);
  switch (selector.operator) {
    case 'present':
      return value !== undefined;
    case '==':
      return value !== undefined && value === selector.value;
    case '!=':
      // as containerd: a missing field is "not equal" too
      return value !== selector.value;
    case '~=':
      return selector.regexp!.test(value ?? '');
  }
}

/** A wild filter is named in the answer, but not echoed whole. */
function shownFilter(input: string): string {
  return JSON.stringify(input.length > 200 ? `${input.slice(0, 200)}…` : input);
}

function filterTooLong(input: string): Error {
  return resourceExhausted(`filter ${shownFilter(input)} is ${input.length} characters long; a filter may be at most ${FILTER_LIMITS.filterLength}`);
}

/** Parses one filter string (AND of its selectors). */
export function parseFilter(input: string, budget = new Budget()): Filter {
  const shown = shownFilter(input);
  if (input.length > FILTER_LIMITS.filterLength) throw filterTooLong(input);
  if (input.trim() === '') return MATCH_ALL;
  if (input.includes('\0')) throw invalidArgument(`invalid filter ${shown}: contains NUL`);
  let selectors: Selector[];
  try {
    selectors = new Parser(input, budget).parse();
  } catch (err) {
    if (err instanceof ParseError) throw invalidArgument(`invalid filter ${shown}: ${err.message}`);
    throw err;
  }
  return { matches: (lookup) => selectors.every((s) => matchSelector(s, lookup)) };
}

/** Parses the filters of one request: any of them may match. */
export function parseFilters(inputs: readonly string[]): Filter {
  if (inputs.length === 0) return MATCH_ALL;
  if (inputs.length > FILTER_LIMITS.filters) {
    throw resourceExhausted(`a request may carry at most ${FILTER_LIMITS.filters} filters, not ${inputs.length}`);
  }
  const long = inputs.find((input) => input.length > FILTER_LIMITS.filterLength);
  if (long !== undefined) throw filterTooLong(long);
  const length = inputs.reduce((sum, input) => sum + input.length, 0);
  if (length > FILTER_LIMITS.filtersLength) {
    throw resourceExhausted(`a request's filters may total at most ${FILTER_LIMITS.filtersLength} characters, not ${length}`);
  }
  const budget = new Budget();
  const filters = inputs.map((input) => parseFilter(input, budget));
  return { matches: (lookup) => filters.some((f) => f.matches(lookup)) };
}
