// The judge of a filter's answer, in the isolates and on the host: the browser's reading of a verdict, its bounds, and the host's second check.
//
// `createJudge` runs inside every isolate (its source is injected, see runtimeFunctionsSource) with
// the isolate's builtins captured before any filter ran, and on the host with Node's (hostJudge), so
// both read a verdict the same way; it must stay self-contained plain JavaScript.

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

  /**
   * The conditions of a match: strings only, at most MAX_CONDITIONS of at most MAX_CONDITION_CHARS, as
   * `out.conditions`, or with `asText` as `out.text` (each one after a FIELD, as encodeVerdict writes
   * them): the isolate's path, which then builds no array.
   */
  function readConditions(list: unknown, out: { conditions: string[]; text: string; warning: string | null }, asText: boolean): void {
    if (list === undefined || list === null) return;
    if (!isArray(list)) {
      out.warning = 'conditions is ' + kindOf(list) + ', not an array of strings; ignored';
      return;
    }
    const length = (list as { length: unknown }).length;
    const count = typeof length === 'number' && length > 0 ? (length < MAX_CONDITIONS ? length : MAX_CONDITIONS) : 0;
    const conditions: string[] = [];
    let text = '';
    let kept = 0;
    for (let i = 0; i < count; i++) {
      const condition = (list as Record<number, unknown>)[i];
      if (typeof condition !== 'string') {
        if (out.warning === null) out.warning = 'conditions[' + i + '] is ' + kindOf(condition) + ', not a string; skipped';
      } else if (asText) text += '\u0000' + sanitize(condition, MAX_CONDITION_CHARS);
      // Defined, not assigned (and by a descriptor without a prototype): an index setter or a `get` a
      // filter put on a prototype must not swallow or spoil it.
      else defineProperty(conditions, kept++, { __proto__: null, value: sanitize(condition, MAX_CONDITION_CHARS), writable: true, enumerable: true, configurable: true } as PropertyDescriptor);
    }
    out.conditions = conditions;
    out.text = text;
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

  /** The warning of an object verdict whose `match` is neither true nor false. */
  function looseMatch(match: unknown): string {
    return 'returned an object whose match is ' + kindOf(match) + ', not a boolean; read as a match by its truthiness, as the browser does';
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
      const out = { conditions: [] as string[], text: '', warning: null as string | null, values: undefined as Record<string, number> | undefined };
      readConditions((result as { conditions?: unknown }).conditions, out, false);
      readValues((result as { values?: unknown }).values, out);
      // Object literals, never assignments: a setter a filter put on Object.prototype must not see the verdict.
      const warning = match === true ? out.warning : looseMatch(match);
      return out.values === undefined ? { match: true, conditions: out.conditions, warning } : { match: true, conditions: out.conditions, warning, values: out.values };
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
    let conditions = '';
    for (let i = 0; i < verdict.conditions.length; i++) conditions += '\u0000' + verdict.conditions[i];
    return encodeParts(verdict.match, verdict.warning, verdict.values, conditions);
  }

  /** encodeVerdict's string from its parts, the conditions already encoded (each after a FIELD). */
  function encodeParts(match: boolean, warning: string | null, values: Record<string, number> | undefined, conditions: string): string {
    let out = (values === undefined ? 'v' : 'w') + '\u0000' + (match ? '1' : '0') + '\u0000' + (warning === null ? '' : sanitize(warning, MAX_MESSAGE_CHARS));
    if (values !== undefined) {
      const keys = ownKeys(values);
      out += '\u0000';
      for (let i = 0; i < keys.length; i++) out += (i > 0 ? ';' : '') + (keys[i] as string) + '=' + values[keys[i] as string];
    }
    return out + conditions;
  }

  /**
   * What the isolate hands the host for a filter's result: `encodeVerdict(readVerdict(result))`, or the
   * bare match when the verdict is nothing more (no conditions, warning or values), read in the same
   * order (the same filter code runs); the common `{ match, conditions }` builds no verdict on the way.
   */
  function encodeResult(result: unknown): boolean | string {
    if (result === true || result === false) return result;
    if (result === undefined || result === null) return false;
    if (typeof result !== 'object' || isArray(result)) {
      const verdict = readVerdict(result);
      return encodeParts(verdict.match, verdict.warning, undefined, '');
    }
    const match = (result as { match?: unknown }).match;
    if (match === false) return false;
    const out = { conditions: [] as string[], text: '', warning: null as string | null, values: undefined as Record<string, number> | undefined };
    readConditions((result as { conditions?: unknown }).conditions, out, true);
    readValues((result as { values?: unknown }).values, out);
    const warning = match === true ? out.warning : looseMatch(match);
    if (warning === null && out.text === '' && out.values === undefined) return true;
    return encodeParts(true, warning, out.values, out.text);
  }

  function encodeError(message: string): string {
    return 'e\u0000' + sanitize(message, MAX_MESSAGE_CHARS);
  }

  return { sanitize, kindOf, describeError, readVerdict, encodeVerdict, encodeResult, encodeError };
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
  // A number's text is at most 25 characters (-0.0000012345678901234567), so a value pair is key + 27 with its separators.
  const limit = 16 + (MAX_MESSAGE_CHARS + 1) * 2 + MAX_CONDITIONS * (MAX_CONDITION_CHARS * 2 + 1) + MAX_VALUES * (MAX_VALUE_KEY_CHARS + 27);
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
