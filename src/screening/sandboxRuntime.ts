// The trusted code that runs first inside every trader's isolate: compiles the filter, builds its inputs lazily, reads its verdict.
//
// `installRuntime` is never called in Node: the sandbox injects its source (with `createJudge`) into a
// fresh isolate (types are stripped by then), so both must stay self-contained plain JavaScript that
// only touch their parameters and the isolate's own builtins. A filter may replace any prototype
// method or global of its isolate, so every builtin the runtime uses is captured before any filter
// runs, and the runtime reads arrays with indexed loops (never `for…of`, spread or a method call on a
// value a filter could have touched). Everything it hands the host is built from primitives here:
// a number, a boolean, or one bounded string; the host checks it again anyway.

/**
 * One timeframe of one symbol as the runtime needs it: [interval, seriesId, generation, start, length]
 * (`length` rows from row `start` of the series' shared buffer). A symbol's spec is
 * [position of the hvnNodes timeframe among them or -1, ...timeframes flattened].
 */
export type SymbolSpec = Array<string | number>;

export interface IsolateRuntime {
  /** Compile the filter body; null on success, else the error message. */
  compile(code: string): string | null;
  /**
   * Take this tick's tickers and symbol specs as JSON (Array<Record<string, string>> and
   * SymbolSpec[]): one string per trader and tick is the cheapest way across the isolate boundary.
   */
  beginTick(tickersJson: string, specsJson: string): void;
  /** Run the filter for the tick's symbol number `symbol`: a boolean, or an encoded verdict (see decodeVerdict). */
  evaluate(symbol: number): boolean | string;
}

/** Returns the shared buffer holding a series' rows, or undefined when the id is unknown. */
type Attach = (seriesId: number) => SharedArrayBuffer | undefined;
/**
 * A helper's result on `length` candles from `offset` of a series (the whole series when both are
 * omitted), or undefined. `argsKey` encodes the helper's other arguments (see encodeArgs): the only
 * thing of the filter's that reaches the host is that one short string.
 */
type Memo = (seriesId: number, helper: string, argsKey: string, offset?: number, length?: number) => unknown;

/**
 * At most `conditions` conditions of at most `conditionChars` characters cross into the host (DESIGN.md's
 * contract); error and warning texts are cut to `messageChars`. Handed to the judge in the isolates too.
 */
export const JUDGE_LIMITS = { conditions: 50, conditionChars: 500, messageChars: 500, values: 20, valueKeyChars: 32 } as const;
export type JudgeLimits = { conditions: number; conditionChars: number; messageChars: number; values: number; valueKeyChars: number };
const MAX_CONDITIONS = JUDGE_LIMITS.conditions;
const MAX_CONDITION_CHARS = JUDGE_LIMITS.conditionChars;
const MAX_VALUES = JUDGE_LIMITS.values;
const MAX_VALUE_KEY_CHARS = JUDGE_LIMITS.valueKeyChars;
export const MAX_MESSAGE_CHARS = JUDGE_LIMITS.messageChars;
/** The longest memo key the host accepts; longer argument lists are computed in the isolate. */
export const MAX_ARGS_KEY_CHARS = 512;

/** Separates the fields of an encoded verdict; every text is sanitized, so none contains it. */
const FIELD = '\u0000';

/** The verdict of one evaluation as read like the browser reads it. */
export interface Verdict {
  match: boolean;
  conditions: string[];
  /** Set when the filter broke the contract in a way the browser tolerates (read by truthiness). */
  warning: string | null;
  /**
   * A match's `values` (explain): at most JUDGE_LIMITS.values finite numbers under plain keys (letters, digits,
   * `_`, `.`, `-`, at most valueKeyChars); absent when the filter returned none. Anything else is dropped with a warning.
   */
  values?: Record<string, number>;
}

export type DecodedOutcome = { kind: 'verdict'; verdict: Verdict } | { kind: 'error'; message: string };

/** Builtins the judge uses, captured before any filter code ran. */
interface Intrinsics {
  apply: typeof Reflect.apply;
  isArray: (value: unknown) => boolean;
  charCodeAt: (this: string, index: number) => number;
  fromCharCode: (...codes: number[]) => string;
  defineProperty: typeof Reflect.defineProperty;
  ownKeys: typeof Reflect.ownKeys;
}

/**
 * The judge of a filter's answer: reads a returned value like the browser's screener (truthiness,
 * `{ match, conditions }`), turns a thrown value into one line, and makes every text safe for a
 * database row and a log line. Shared by the isolates (with the isolate's captured builtins) and by
 * the unsandboxed reference (with Node's), so both read a verdict the same way.
 */
export function createJudge(intrinsics: Intrinsics, limits: JudgeLimits) {
  'use strict';
  const { apply, isArray, charCodeAt, fromCharCode, defineProperty, ownKeys } = intrinsics;
  const MAX_CONDITIONS = limits.conditions;
  const MAX_CONDITION_CHARS = limits.conditionChars;
  const MAX_MESSAGE_CHARS = limits.messageChars;
  const MAX_VALUES = limits.values;
  const MAX_VALUE_KEY_CHARS = limits.valueKeyChars;

  /**
   * At most `max` characters of `text`, with control characters (NUL included: PostgreSQL's jsonb
   * refuses it) turned into spaces and lone surrogates into U+FFFD, so no row or log line can be
   * refused or broken by it.
   */
  function sanitize(text: string, max: number): string {
    const length = text.length < max ? text.length : max;
    let clean = text.length <= max;
    for (let i = 0; clean && i < length; i++) {
      const code = apply(charCodeAt, text, [i]) as number;
      if (code < 32 || code === 127 || (code >= 0xd800 && code <= 0xdfff)) clean = false;
    }
    if (clean) return text;
    let out = '';
    for (let i = 0; i < length; i++) {
      const code = apply(charCodeAt, text, [i]) as number;
      if (code < 32 || code === 127) out += ' ';
      else if (code >= 0xd800 && code <= 0xdbff) {
        const next = i + 1 < length ? (apply(charCodeAt, text, [i + 1]) as number) : 0;
        if (next >= 0xdc00 && next <= 0xdfff) {
          out += fromCharCode(code, next);
          i++;
        } else out += '\uFFFD';
      } else if (code >= 0xdc00 && code <= 0xdfff) out += '\uFFFD';
      else out += fromCharCode(code);
    }
    return out;
  }

  function kindOf(value: unknown): string {
    if (value === null) return 'null';
    if (isArray(value)) return 'an array';
    const type = typeof value;
    return type === 'object' ? 'an object' : type === 'undefined' ? 'undefined' : 'a ' + type;
  }

  /** A thrown value as one bounded line; reading it may run filter code, so it runs under the filter's time limit. */
  function describeError(error: unknown): string {
    try {
      if (error !== null && (typeof error === 'object' || typeof error === 'function')) {
        const name = (error as { name?: unknown }).name;
        const message = (error as { message?: unknown }).message;
        const prefix = typeof name === 'string' ? sanitize(name, 100) + ': ' : '';
        if (typeof message === 'string') return sanitize(prefix + sanitize(message, MAX_MESSAGE_CHARS), MAX_MESSAGE_CHARS);
        return 'threw ' + kindOf(error);
      }
      if (typeof error === 'string') return sanitize('threw ' + error, MAX_MESSAGE_CHARS);
      if (typeof error === 'number' || typeof error === 'boolean' || typeof error === 'bigint') return 'threw ' + error;
      return 'threw ' + kindOf(error);
    } catch {
      return 'threw a value that cannot be described';
    }
  }

  /** The conditions of a match: strings only, at most MAX_CONDITIONS of at most MAX_CONDITION_CHARS. */
  function readConditions(list: unknown, out: { conditions: string[]; warning: string | null }): void {
    if (list === undefined || list === null) return;
    if (!isArray(list)) {
      out.warning = 'conditions is ' + kindOf(list) + ', not an array of strings; ignored';
      return;
    }
    const length = (list as { length: unknown }).length;
    const count = typeof length === 'number' && length > 0 ? (length < MAX_CONDITIONS ? length : MAX_CONDITIONS) : 0;
    const conditions: string[] = [];
    let kept = 0;
    for (let i = 0; i < count; i++) {
      const condition = (list as Record<number, unknown>)[i];
      // Defined, not assigned (and by a descriptor without a prototype): an index setter or a `get` a
      // filter put on a prototype must not swallow or spoil it.
      if (typeof condition === 'string') defineProperty(conditions, kept++, { __proto__: null, value: sanitize(condition, MAX_CONDITION_CHARS), writable: true, enumerable: true, configurable: true } as PropertyDescriptor);
      else if (out.warning === null) out.warning = 'conditions[' + i + '] is ' + kindOf(condition) + ', not a string; skipped';
    }
    out.conditions = conditions;
  }

  /** A value key the encoding and a database column can carry verbatim: letters, digits, `_`, `.`, `-`. */
  function isValueKey(key: unknown): boolean {
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_VALUE_KEY_CHARS) return false;
    for (let i = 0; i < key.length; i++) {
      const c = apply(charCodeAt, key, [i]) as number;
      if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 46 || c === 45)) return false;
    }
    return true;
  }

  /**
   * A match's `values`: own keys of a plain object, at most MAX_VALUES finite numbers under plain keys. Anything else
   * is dropped with a warning, never a failure. Reading may run filter code (getters, proxies): the filter's time limit holds.
   */
  function readValues(source: unknown, out: { values?: Record<string, number>; warning: string | null }): void {
    if (source === undefined || source === null) return;
    if (typeof source !== 'object' || isArray(source)) {
      out.warning = 'values is ' + kindOf(source) + ', not an object of numbers; ignored';
      return;
    }
    const keys = ownKeys(source as object);
    const values = { __proto__: null } as unknown as Record<string, number>;
    let kept = 0;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (kept >= MAX_VALUES) {
        if (out.warning === null) out.warning = 'values has more than ' + MAX_VALUES + ' keys; the rest dropped';
        break;
      }
      if (!isValueKey(key)) {
        if (out.warning === null) out.warning = 'values has a key that is not a short plain name (letters, digits, _ . -, at most ' + MAX_VALUE_KEY_CHARS + '); dropped';
        continue;
      }
      const value = (source as Record<string, unknown>)[key as string];
      if (typeof value !== 'number' || value !== value || value === Infinity || value === -Infinity) {
        if (out.warning === null) out.warning = 'values.' + (key as string) + ' is ' + (typeof value === 'number' ? 'not finite' : kindOf(value)) + ', not a finite number; dropped';
        continue;
      }
      defineProperty(values, key as string, { __proto__: null, value, writable: true, enumerable: true, configurable: true } as PropertyDescriptor);
      kept++;
    }
    if (kept > 0) out.values = values;
  }

  /**
   * The browser's reading: `undefined`, `null`, `false` and `{ match: false }` are no match, `true`
   * and `{ match: true }` a match, anything else counts by its truthiness with a warning. May run
   * filter code (getters, proxies), so it runs under the filter's time limit; a throw from it is the
   * filter's throw.
   */
  function readVerdict(result: unknown): Verdict {
    if (result === true) return { match: true, conditions: [], warning: null };
    if (result === false || result === undefined || result === null) return { match: false, conditions: [], warning: null };
    if (typeof result === 'object' && !isArray(result)) {
      const match = (result as { match?: unknown }).match;
      if (match === false) return { match: false, conditions: [], warning: null };
      const out = { conditions: [] as string[], warning: null as string | null, values: undefined as Record<string, number> | undefined };
      readConditions((result as { conditions?: unknown }).conditions, out);
      readValues((result as { values?: unknown }).values, out);
      if (match === true) return out.values === undefined ? { match: true, conditions: out.conditions, warning: out.warning } : { match: true, conditions: out.conditions, warning: out.warning, values: out.values };
      const loose = 'returned an object whose match is ' + kindOf(match) + ', not a boolean; read as a match by its truthiness, as the browser does';
      // Object literals, never assignments: a setter a filter put on Object.prototype must not see the verdict.
      return out.values === undefined ? { match: true, conditions: out.conditions, warning: loose } : { match: true, conditions: out.conditions, warning: loose, values: out.values };
    }
    const truthy = !!result;
    return { match: truthy, conditions: [], warning: 'returned ' + kindOf(result) + '; expected true, false or { match, conditions }; read as ' + (truthy ? 'a match' : 'no match') + ' by its truthiness, as the browser does' };
  }

  /**
   * A verdict as the one string the host decodes (decodeVerdict): fields joined by NUL, which no sanitized text holds.
   * With values, tag `w` and one more field after the warning: `key=number` pairs joined by `;` (neither can occur in a
   * plain key or in a number's text).
   */
  function encodeVerdict(verdict: Verdict): string {
    const values = verdict.values;
    let out = (values === undefined ? 'v' : 'w') + '\u0000' + (verdict.match ? '1' : '0') + '\u0000' + (verdict.warning === null ? '' : sanitize(verdict.warning, MAX_MESSAGE_CHARS));
    if (values !== undefined) {
      const keys = ownKeys(values);
      out += '\u0000';
      for (let i = 0; i < keys.length; i++) out += (i > 0 ? ';' : '') + (keys[i] as string) + '=' + values[keys[i] as string];
    }
    const conditions = verdict.conditions;
    for (let i = 0; i < conditions.length; i++) out += '\u0000' + conditions[i];
    return out;
  }

  function encodeError(message: string): string {
    return 'e\u0000' + sanitize(message, MAX_MESSAGE_CHARS);
  }

  return { sanitize, kindOf, describeError, readVerdict, encodeVerdict, encodeError };
}

export type Judge = ReturnType<typeof createJudge>;

/** Node's own builtins: the host side of the judge (reference evaluator, host checks). */
export const hostJudge: Judge = createJudge({
  apply: Reflect.apply,
  isArray: Array.isArray,
  charCodeAt: String.prototype.charCodeAt,
  fromCharCode: String.fromCharCode,
  defineProperty: Reflect.defineProperty,
  ownKeys: Reflect.ownKeys,
}, JUDGE_LIMITS);

/**
 * The host's reading of what `evaluate` returned: checked again with the host's own code (bounds,
 * sanitizing), since the isolate's runtime may have been subverted. Null when it is not a verdict
 * the runtime could have produced.
 */
export function decodeVerdict(raw: unknown): DecodedOutcome | null {
  if (raw === true || raw === false) return { kind: 'verdict', verdict: { match: raw, conditions: [], warning: null } };
  // Each field is bounded, so a genuine encoding is never longer than this.
  // A number's text is at most 24 characters (-1.2345678901234567e-308).
  const limit = 16 + (MAX_MESSAGE_CHARS + 1) * 2 + MAX_CONDITIONS * (MAX_CONDITION_CHARS * 2 + 1) + MAX_VALUES * (MAX_VALUE_KEY_CHARS + 26);
  if (typeof raw !== 'string' || raw.length > limit) return null;
  const fields = raw.split(FIELD);
  if (fields[0] === 'e' && fields.length === 2) return { kind: 'error', message: hostJudge.sanitize(fields[1]!, MAX_MESSAGE_CHARS) };
  const first = fields[0] === 'w' ? 4 : 3;
  if ((fields[0] !== 'v' && fields[0] !== 'w') || fields.length < first || fields.length > first + MAX_CONDITIONS || (fields[1] !== '1' && fields[1] !== '0')) return null;
  const conditions: string[] = [];
  for (let i = first; i < fields.length; i++) conditions.push(hostJudge.sanitize(fields[i]!, MAX_CONDITION_CHARS));
  const warning = fields[2] === '' ? null : hostJudge.sanitize(fields[2]!, MAX_MESSAGE_CHARS);
  const verdict: Verdict = { match: fields[1] === '1', conditions, warning };
  if (fields[0] === 'w') {
    const values = decodeValues(fields[3]!);
    if (values === null) return null;
    verdict.values = values;
  }
  return { kind: 'verdict', verdict };
}

const VALUE_KEY = /^[A-Za-z0-9_.-]+$/;

/** The host's reading of an encoded `values` field: null unless it is what the judge writes (bounded plain keys, finite numbers). */
function decodeValues(text: string): Record<string, number> | null {
  const pairs = text.split(';');
  if (pairs.length > MAX_VALUES) return null;
  const values: Record<string, number> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    const key = pair.slice(0, at);
    const value = Number(pair.slice(at + 1));
    if (at < 1 || key.length > MAX_VALUE_KEY_CHARS || !VALUE_KEY.test(key) || Object.hasOwn(values, key) || !Number.isFinite(value) || pair.slice(at + 1).trim() === '') return null;
    // Defined, not assigned: a key named `__proto__` stays an own value.
    Object.defineProperty(values, key, { value, writable: true, enumerable: true, configurable: true });
  }
  return values;
}

/**
 * Make the builtins that allocate a result in one piece refuse sizes past the isolate's own budget.
 * isolated-vm enforces its memory limit as the heap grows, but one builtin call that sizes its result
 * up front (`new Array(1e8).fill(0)`, `Array.from({ length: 1e8 })`, `toSorted`, `'x'.repeat(5e8)`)
 * allocates it in one go: up to a few hundred MB it silently exceeds the limit (the worker's RSS pays),
 * beyond that V8 fails fatally and the whole process dies (SIGSEGV, isolated-vm issues #107, #186,
 * #527). Growth step by step (push, spread, string building) is stopped by the memory limit as usual.
 * Runs before any filter code, on the isolate's own builtins, after installRuntime has captured the
 * originals it uses; the wrappers call the originals too, so results are unchanged below the limits.
 */
export function guardAllocations(maxElements: number, maxChars: number): void {
  'use strict';
  const apply = Reflect.apply;
  const defineProperty = Reflect.defineProperty;
  const isArray = Array.isArray;
  const isView = ArrayBuffer.isView;
  const RangeErrorCtor = RangeError;
  const TypedArrayPrototype = Object.getPrototypeOf(Int8Array.prototype) as Record<string, unknown>;

  function lengthOf(value: unknown): number {
    if (value === null || value === undefined) return 0;
    const n = +(value as { length?: unknown }).length!;
    return n > 0 ? n : 0;
  }
  function textLength(value: unknown, fallback: number): number {
    return typeof value === 'string' ? value.length : fallback;
  }
  function refuse(what: string, size: number, limit: number): never {
    throw new RangeErrorCtor(what + ' of ' + size + ' exceeds the sandbox limit of ' + limit + ' (FILTER_MEMORY_MB)');
  }
  /** Replace `owner[name]` by a wrapper that checks `sizeOf(this, args)` (elements, or characters with `chars`) first. */
  function guard(owner: Record<string, unknown>, name: string, sizeOf: (self: unknown, args: IArguments) => number, chars: boolean): void {
    const original = owner[name] as (...args: unknown[]) => unknown;
    if (typeof original !== 'function') return;
    const limit = chars ? maxChars : maxElements;
    const wrapper = {
      [name](this: unknown) {
        // eslint-disable-next-line prefer-rest-params
        const args = arguments;
        const size = sizeOf(this, args);
        if (size > limit) refuse(name + (chars ? ' result' : ' on a length'), size, limit);
        return apply(original, this, args);
      },
    }[name]!;
    defineProperty(owner, name, { __proto__: null, value: wrapper, writable: true, enumerable: false, configurable: true } as PropertyDescriptor);
  }
  const own = (self: unknown) => lengthOf(self);
  const arrayPrototype = Array.prototype as unknown as Record<string, unknown>;
  const arrayMethods = ['fill', 'slice', 'splice', 'map', 'filter', 'flat', 'flatMap', 'concat', 'sort', 'reverse', 'copyWithin', 'toReversed', 'toSorted', 'toSpliced', 'with', 'join', 'toString', 'toLocaleString'];
  for (let i = 0; i < arrayMethods.length; i++) {
    const name = arrayMethods[i]!;
    if (name === 'concat') {
      guard(arrayPrototype, name, (self, args) => {
        let total = lengthOf(self);
        for (let a = 0; a < args.length; a++) total += isArray(args[a]) ? lengthOf(args[a]) : 1;
        return total;
      }, false);
    } else guard(arrayPrototype, name, own, false);
  }
  // A joined string: elements times the separator, whatever the elements hold (each is at least as long as nothing).
  guard(arrayPrototype, 'join', (self, args) => lengthOf(self) * textLength(args[0], 1), true);
  guard(TypedArrayPrototype, 'join', (self, args) => lengthOf(self) * (textLength(args[0], 1) + 1), true);
  guard(TypedArrayPrototype, 'toString', (self) => lengthOf(self) * 2, true);
  guard(TypedArrayPrototype, 'toLocaleString', (self) => lengthOf(self) * 2, true);
  guard(Array as unknown as Record<string, unknown>, 'from', (_self, args) => lengthOf(args[0]), false);
  const stringPrototype = String.prototype as unknown as Record<string, unknown>;
  guard(stringPrototype, 'repeat', (self, args) => textLength(self, 0) * (+args[0] > 0 ? +args[0] : 0), true);
  guard(stringPrototype, 'padStart', (_self, args) => (+args[0] > 0 ? +args[0] : 0), true);
  guard(stringPrototype, 'padEnd', (_self, args) => (+args[0] > 0 ? +args[0] : 0), true);
  guard(stringPrototype, 'concat', (self, args) => {
    let total = textLength(self, 0);
    for (let a = 0; a < args.length; a++) total += textLength(args[a], 0);
    return total;
  }, true);
  const replacing = (self: unknown, args: IArguments) => textLength(self, 0) * (textLength(args[1], 1) > 1 ? textLength(args[1], 1) : 1);
  guard(stringPrototype, 'replace', replacing, true);
  guard(stringPrototype, 'replaceAll', replacing, true);
  guard(stringPrototype, 'split', (self) => textLength(self, 0), false);
  // Listing the keys of an array or typed array builds them all at once.
  const listed = (_self: unknown, args: IArguments) => (isArray(args[0]) || isView(args[0]) || typeof args[0] === 'string' ? lengthOf(args[0]) : 0);
  const objectCtor = Object as unknown as Record<string, unknown>;
  for (const name of ['keys', 'values', 'entries', 'getOwnPropertyNames']) guard(objectCtor, name, listed, false);
  guard(Reflect as unknown as Record<string, unknown>, 'ownKeys', listed, false);
  // An argument list is built in one piece from an array-like, before any stack check.
  guard(Function.prototype as unknown as Record<string, unknown>, 'apply', (_self, args) => lengthOf(args[1]), false);
  guard(Reflect as unknown as Record<string, unknown>, 'apply', (_self, args) => lengthOf(args[2]), false);
  guard(Reflect as unknown as Record<string, unknown>, 'construct', (_self, args) => lengthOf(args[1]), false);
}

export function installRuntime(attach: Attach, memo: Memo, library: Record<string, (...args: unknown[]) => unknown>, klineHelperNames: string[], rowFields: number, judgeLimits: JudgeLimits): IsolateRuntime {
  'use strict';
  const FIELDS = rowFields;
  const apply = Reflect.apply;
  const ownKeys = Reflect.ownKeys;
  const getOwnPropertyDescriptor = Reflect.getOwnPropertyDescriptor;
  const defineProperty = Reflect.defineProperty;
  const isInteger = Number.isInteger;
  const trunc = Math.trunc;
  const isArrayValue = Array.isArray;
  const numberText = String;
  const FunctionCtor = Function;
  const Float64 = Float64Array;
  const ProxyCtor = Proxy;
  const getPrototypeOf = Object.getPrototypeOf;
  const objectPrototype = Object.prototype;
  const weakMapGet = WeakMap.prototype.get;
  const weakMapSet = WeakMap.prototype.set;
  const bind = Function.prototype.bind;
  const mapGet = Map.prototype.get;
  const mapSet = Map.prototype.set;
  const charCodeAt = String.prototype.charCodeAt;
  const freeze = Object.freeze;
  const parseJson = JSON.parse;
  const seriesHandles = new WeakMap();
  const judge = createJudge({ apply, isArray: isArrayValue, charCodeAt, fromCharCode: String.fromCharCode, defineProperty, ownKeys }, judgeLimits);
  // Views on the thread's shared market rows, by series id. They never leave this closure, and the
  // code below only reads them by integer index (never .length, .buffer or a method, which a filter
  // could have redefined on the prototype to capture the view).
  const views = new Map();
  // Bound once, before any filter runs: later changes to the prototypes cannot reach these.
  const viewsGet = apply(bind, mapGet, [views]) as (key: number) => unknown;
  const viewsSet = apply(bind, mapSet, [views]) as (key: number, value: unknown) => void;
  const weakMapGetOn = apply(bind, weakMapGet, [seriesHandles]) as (key: unknown) => unknown;
  const weakMapSetOn = apply(bind, weakMapSet, [seriesHandles]) as (key: unknown, value: unknown) => void;
  // Descriptors reused for every definition the runtime makes on each evaluation (never handed to a
  // filter): a fresh `{ __proto__: null, … }` object per definition cost more than the rest of the setup.
  const stateDescriptor = { __proto__: null, value: undefined as unknown, writable: true, enumerable: false, configurable: true } as PropertyDescriptor;
  const entryDescriptor = { __proto__: null, value: undefined as unknown, writable: true, enumerable: true, configurable: true } as PropertyDescriptor;
  let filter: ((...args: unknown[]) => unknown) | null = null;
  let wantsHvnNodes = true;
  let tickTickers: Array<Record<string, string>> = [];
  let tickSpecs: SymbolSpec[] = [];

  function rowsOf(seriesId: number, generation: number): Float64Array {
    const cached = viewsGet(seriesId) as [number, Float64Array] | undefined;
    if (cached !== undefined && cached[0] === generation) return cached[1];
    const buffer = attach(seriesId);
    if (buffer === undefined) throw new Error('market data unavailable');
    const rows = new Float64(buffer);
    viewsSet(seriesId, [generation, rows]);
    return rows;
  }

  /** One timeframe of one evaluation: where its rows are, and the candles built so far (shared by the array and its slices). */
  interface SeriesState {
    seriesId: number;
    generation: number;
    rowStart: number;
    built: unknown[];
  }

  /** One kline array (the timeframe's, or a slice of it): `length` candles from `offset` of its series. */
  interface LazyState {
    series: SeriesState;
    offset: number;
    length: number;
    full: unknown[] | null;
    handle: MemoHandle;
  }

  /**
   * What the helpers need to ask the host for a memoized result, kept apart from LazyState: as a
   * WeakMap value it must not hold the built candles, or every evaluation's candles would survive
   * young-generation collections (measured: 10× slower for `k.map(...)`).
   */
  interface MemoHandle {
    seriesId: number;
    offset: number;
    length: number;
    /** Written through (or by a mutating method): helpers then run here on what the filter sees. */
    dirty: boolean;
  }

  function kline(state: LazyState, index: number): unknown {
    const series = state.series;
    const at = state.offset + index;
    let candle = series.built[at];
    if (candle !== undefined) return candle;
    const r = rowsOf(series.seriesId, series.generation);
    const o = (series.rowStart + at) * FIELDS;
    candle = [r[o], r[o + 1], r[o + 2], r[o + 3], r[o + 4], r[o + 5], r[o + 6], r[o + 7], r[o + 8], r[o + 9], r[o + 10], 0];
    series.built[at] = candle;
    return candle;
  }

  function materialize(state: LazyState): unknown[] {
    if (state.full === null) {
      const array = new Array(state.length);
      for (let i = 0; i < state.length; i++) array[i] = kline(state, i);
      state.full = array;
    }
    return state.full;
  }

  /** Array methods that change the array they are called on. */
  function isMutator(name: string): boolean {
    return name === 'push' || name === 'pop' || name === 'shift' || name === 'unshift' || name === 'splice' || name === 'reverse' || name === 'sort' || name === 'fill' || name === 'copyWithin';
  }

  function indexOf(state: LazyState, key: string | symbol): number {
    if (typeof key !== 'string' || key.length === 0) return -1;
    const first = apply(charCodeAt, key, [0]) as number;
    if (first < 48 || first > 57) return -1;
    const index = +key;
    return isInteger(index) && index < state.length && numberText(index) === key ? index : -1;
  }

  function relative(state: LazyState, value: unknown, fallback: number): number {
    if (value === undefined) return fallback;
    const n = trunc(+(value as number)) || 0;
    if (n < 0) return state.length + n > 0 ? state.length + n : 0;
    return n < state.length ? n : state.length;
  }

  function lazyAt(state: LazyState, position: unknown): unknown {
    if (state.full !== null) return state.full.at(position as number);
    const n = trunc(+(position as number)) || 0;
    const index = n < 0 ? state.length + n : n;
    return index >= 0 && index < state.length ? kline(state, index) : undefined;
  }

  /**
   * A slice is another lazy array over the same candles (the same objects, as Array.prototype.slice
   * would give), so `helpers.x(k.slice(-50))` builds nothing and is memoized like `k` itself.
   */
  function lazySlice(state: LazyState, start: unknown, end: unknown): unknown[] {
    if (state.full !== null) return state.full.slice(start as number, end as number);
    const from = relative(state, start, 0);
    const to = relative(state, end, state.length);
    return lazyArray(state.series, state.offset + from, to > from ? to - from : 0);
  }

  // One handler for every lazy array; each proxy's state hangs off its target under a symbol the
  // filter never sees (the traps below answer for the materialized array, never for the target).
  // No prototype: a trap the handler lacks must not be found on a tampered Object.prototype.
  const STATE = Symbol('state');
  const stateOf = (target: unknown[]) => (target as unknown as Record<symbol, LazyState>)[STATE]!;
  const handler: ProxyHandler<unknown[]> = {
    __proto__: null,
    get(target, key) {
      const state = stateOf(target);
      if (state.full === null) {
        const index = indexOf(state, key);
        if (index >= 0) return kline(state, index);
        if (key === 'length') return state.length;
        if (key === 'at') return (position: unknown) => lazyAt(state, position);
        if (key === 'slice') return (start: unknown, end: unknown) => lazySlice(state, start, end);
      }
      const array = materialize(state);
      const value = (array as unknown as Record<string | symbol, unknown>)[key];
      if (typeof value !== 'function' || key === 'constructor') return value;
      if (typeof key === 'string' && isMutator(key)) state.handle.dirty = true;
      // Array methods run on the real array: no trap per element.
      return (...args: unknown[]) => apply(value as (...a: unknown[]) => unknown, array, args);
    },
    has(target, key) {
      const state = stateOf(target);
      if (state.full === null && indexOf(state, key) >= 0) return true;
      return key in materialize(state);
    },
    set(target, key, value) {
      const state = stateOf(target);
      state.handle.dirty = true;
      (materialize(state) as unknown as Record<string | symbol, unknown>)[key] = value;
      return true;
    },
    deleteProperty(target, key) {
      const state = stateOf(target);
      state.handle.dirty = true;
      return delete (materialize(state) as unknown as Record<string | symbol, unknown>)[key];
    },
    ownKeys(target) {
      return ownKeys(materialize(stateOf(target)));
    },
    getOwnPropertyDescriptor(target, key) {
      const descriptor = getOwnPropertyDescriptor(materialize(stateOf(target)), key);
      if (descriptor && key !== 'length') descriptor.configurable = true;
      return descriptor;
    },
    defineProperty(target, key, descriptor) {
      const state = stateOf(target);
      state.handle.dirty = true;
      return defineProperty(materialize(state), key, descriptor);
    },
  } as ProxyHandler<unknown[]>;

  /** A kline array that builds its candles only when read, so helpers-only filters build nothing. */
  function lazyArray(series: SeriesState, offset: number, length: number): unknown[] {
    const target: unknown[] = [];
    const handle: MemoHandle = { seriesId: series.seriesId, offset, length, dirty: false };
    stateDescriptor.value = { series, offset, length, full: null, handle };
    defineProperty(target, STATE, stateDescriptor);
    stateDescriptor.value = undefined;
    const proxy = new ProxyCtor(target, handler);
    weakMapSetOn(proxy, handle);
    return proxy;
  }

  /** Undo the host's encodeResult: `{ $series: Float64Array }` back to an array with null for NaN. Runs under the filter's time limit. */
  function decodeResult(value: unknown): unknown {
    if (value === null || typeof value !== 'object') return value;
    if (isArrayValue(value)) {
      const list = value as unknown[];
      for (let i = 0; i < list.length; i++) list[i] = decodeResult(list[i]);
      return list;
    }
    const packed = (value as { $series?: Float64Array }).$series;
    if (packed !== undefined) {
      const count = packed.length;
      const out = new Array(count);
      for (let i = 0; i < count; i++) {
        const n = packed[i]!;
        out[i] = n === n ? n : null;
      }
      return out;
    }
    const record = value as Record<string, unknown>;
    const keys = ownKeys(record) as string[];
    for (let i = 0; i < keys.length; i++) record[keys[i]!] = decodeResult(record[keys[i]!]);
    return record;
  }

  /** Strings the memo key may carry verbatim: short, and of characters that cannot break the key's grammar. */
  function isPlainWord(text: string): boolean {
    if (text.length > 64) return false;
    for (let i = 0; i < text.length; i++) {
      const c = apply(charCodeAt, text, [i]) as number;
      const ok = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45 || c === 46;
      if (!ok) return false;
    }
    return true;
  }

  const HVN_OPTIONS = ['bins', 'threshold', 'lookback', 'minStrength', 'peakTolerance'];

  /**
   * The helper's arguments after the klines as the memo key the host decodes (TickMemo's parseArgsKey),
   * built from primitives only: `u`, `n`, `t`, `f`, `#<number>`, `s<word>`, and for the high-volume
   * nodes' options `{name=<number>;…}`, joined by `|`. Null when an argument is anything else: the
   * helper then runs here, on what the filter passed, inside its own limits.
   */
  function encodeArgs(args: unknown[], from: number, allowOptions: boolean): string | null {
    const count = args.length;
    if (count - from > 6) return null;
    let key = '';
    for (let i = from; i < count; i++) {
      const arg = args[i];
      let part: string;
      if (arg === undefined) part = 'u';
      else if (arg === null) part = 'n';
      else if (arg === true) part = 't';
      else if (arg === false) part = 'f';
      else if (typeof arg === 'number') part = '#' + arg;
      else if (typeof arg === 'string') {
        if (!isPlainWord(arg)) return null;
        part = 's' + arg;
      } else if (allowOptions && typeof arg === 'object' && getPrototypeOf(arg) === objectPrototype) {
        part = '{';
        for (let o = 0; o < HVN_OPTIONS.length; o++) {
          const value = (arg as Record<string, unknown>)[HVN_OPTIONS[o]!];
          if (value === undefined) continue;
          if (typeof value !== 'number') return null;
          part += (part.length > 1 ? ';' : '') + HVN_OPTIONS[o] + '=' + value;
        }
        part += '}';
      } else return null;
      key += (i > from ? '|' : '') + part;
    }
    return key;
  }

  // Helpers called on a tick's own series (or a slice of it the filter has not written to) are
  // computed once per thread and symbol by the host; anything else (copies, numbers, odd
  // arguments) runs here on what the filter passed.
  const helpers: Record<string, unknown> = {};
  const libraryNames = ownKeys(library) as string[];
  for (let i = 0; i < libraryNames.length; i++) helpers[libraryNames[i]!] = library[libraryNames[i]!];
  for (let i = 0; i < klineHelperNames.length; i++) {
    const name = klineHelperNames[i]!;
    const local = library[name]!;
    const allowOptions = name === 'calculateHighVolumeNodes';
    helpers[name] = function (...args: unknown[]) {
      const handle = weakMapGetOn(args[0]) as MemoHandle | undefined;
      if (handle !== undefined && !handle.dirty) {
        const key = encodeArgs(args, 1, allowOptions);
        if (key !== null) {
          const result = memo(handle.seriesId, name, key, handle.offset, handle.length);
          if (result !== undefined) return decodeResult(result);
        }
      }
      return apply(local, undefined, args);
    };
  }
  freeze(helpers);

  /** The browser's hvnNodes: the high-volume nodes of the spec's chosen timeframe over its last min(length, 100) candles. */
  function hvnNodesOf(spec: SymbolSpec): unknown {
    const position = spec[0] as number;
    if (position < 0) return [];
    const at = 1 + position * 5;
    const length = spec[at + 4] as number;
    const lookback = length < 100 ? length : 100;
    if (lookback < 1) return [];
    const nodes = memo(spec[at + 1] as number, 'calculateHighVolumeNodes', '{lookback=' + lookback + '}');
    return nodes === undefined ? [] : decodeResult(nodes);
  }

  return {
    compile(code: string): string | null {
      try {
        filter = new FunctionCtor('ticker', 'timeframes', 'helpers', 'hvnNodes', code) as (...args: unknown[]) => unknown;
        // The nodes cost a host round trip per symbol; a filter that never names them (or `arguments`) cannot tell.
        wantsHvnNodes = /\bhvnNodes\b|\barguments\b/.test(code);
        return null;
      } catch (error) {
        filter = null;
        return judge.describeError(error);
      }
    },
    beginTick(tickersJson: string, specsJson: string): void {
      // JSON.parse builds its arrays and objects with own data properties only, and the loops below
      // read them by index: nothing here consults a prototype or iterator a filter could have replaced.
      tickTickers = parseJson(tickersJson);
      tickSpecs = parseJson(specsJson);
      // Attach every series now, so the isolate's memory accounting does not move during the tick.
      for (let s = 0; s < tickSpecs.length; s++) {
        const spec = tickSpecs[s]!;
        for (let i = 1; i + 4 < spec.length; i += 5) rowsOf(spec[i + 1] as number, spec[i + 2] as number);
      }
    },
    evaluate(symbol: number): boolean | string {
      if (filter === null) return judge.encodeError('filter is not compiled');
      const spec = tickSpecs[symbol]!;
      const source = tickTickers[symbol]!;
      // A spread copies own data properties by definition (no setter, getter or iterator a filter could have planted runs), and V8 clones the shape in one step.
      const ticker: Record<string, string> = { ...source };
      const timeframes: Record<string, unknown> = {};
      for (let i = 1; i + 4 < spec.length; i += 5) {
        const series: SeriesState = { seriesId: spec[i + 1] as number, generation: spec[i + 2] as number, rowStart: spec[i + 3] as number, built: [] };
        entryDescriptor.value = lazyArray(series, 0, spec[i + 4] as number);
        defineProperty(timeframes, spec[i] as string, entryDescriptor);
        entryDescriptor.value = undefined;
      }
      try {
        const hvnNodes = wantsHvnNodes ? hvnNodesOf(spec) : [];
        const result = filter(ticker, timeframes, helpers, hvnNodes);
        if (result === true || result === false) return result;
        const verdict = judge.readVerdict(result);
        if (verdict.warning === null && verdict.conditions.length === 0 && verdict.values === undefined) return verdict.match;
        return judge.encodeVerdict(verdict);
      } catch (error) {
        return judge.encodeError(judge.describeError(error));
      }
    },
  };
}

/** Source of everything the isolate needs besides the helpers, to evaluate before calling installRuntime. */
export function runtimeFunctionsSource(): string {
  return [createJudge, guardAllocations, installRuntime].map((fn) => fn.toString()).join('\n');
}
