// The trusted code that runs first inside every trader's isolate: compiles the filter, builds its inputs lazily, checks its answer.
//
// `installRuntime` is never called in Node: the sandbox injects `installRuntime.toString()` into a
// fresh isolate (types are stripped by then), so it must stay self-contained plain JavaScript that
// only touches its parameters and the isolate's own builtins. Builtins it relies on are captured
// before any filter runs, because a filter may overwrite prototypes in its own isolate: doing so can
// only break that trader's own results, which the host checks again anyway.

/** Fields of one candle row as the host sends them (Binance's kline minus the trailing `ignore`). */
export const ROW_FIELDS = 11;

/** What `evaluate` returns: a bare boolean for a match without conditions (the common case, cheapest to pass back), else a tuple. */
export type RuntimeOutcome = ['ok', boolean, string[]] | ['runtime' | 'contract', string];

/**
 * One timeframe of one symbol as the runtime needs it: [interval, seriesId, generation, start, length]
 * (`length` rows from row `start` of the series' shared buffer). A symbol's spec is
 * [hvnSeriesId or -1, ...timeframes flattened].
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
  /** Run the filter for the tick's symbol number `symbol`: a boolean, or a RuntimeOutcome as JSON. */
  evaluate(symbol: number): boolean | string;
}

/** Returns the shared buffer holding a series' rows, or undefined when the id is unknown. */
type Attach = (seriesId: number) => SharedArrayBuffer | undefined;
type Memo = (seriesId: number, helper: string, args: unknown[]) => unknown;

export function installRuntime(
  attach: Attach,
  memo: Memo,
  library: Record<string, (...args: unknown[]) => unknown>,
  klineHelperNames: string[],
): IsolateRuntime {
  'use strict';
  const FIELDS = 11;
  const apply = Reflect.apply;
  const ownKeys = Reflect.ownKeys;
  const getOwnPropertyDescriptor = Reflect.getOwnPropertyDescriptor;
  const defineProperty = Reflect.defineProperty;
  const isInteger = Number.isInteger;
  const isArrayValue = Array.isArray;
  const toText = String;
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
  const freeze = Object.freeze;
  const parseJson = JSON.parse;
  const stringifyJson = JSON.stringify;
  const seriesHandles = new WeakMap();
  // Views on the thread's shared market rows, by series id. They never leave this closure, and the
  // code below only reads them by integer index (never .length, .buffer or a method, which a filter
  // could have redefined on the prototype to capture the view).
  const views = new Map();
  // Bound once, before any filter runs: later changes to the prototypes cannot reach these.
  const viewsGet = apply(bind, mapGet, [views]) as (key: number) => unknown;
  const viewsSet = apply(bind, mapSet, [views]) as (key: number, value: unknown) => void;
  const weakMapGetOn = apply(bind, weakMapGet, [seriesHandles]) as (key: unknown) => unknown;
  const weakMapSetOn = apply(bind, weakMapSet, [seriesHandles]) as (key: unknown, value: unknown) => void;
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

  /** Per kline array: where its candles come from and what has been built so far. */
  interface LazyState {
    seriesId: number;
    generation: number;
    start: number;
    length: number;
    built: unknown[];
    full: unknown[] | null;
  }

  function kline(state: LazyState, index: number): unknown {
    let candle = state.built[index];
    if (candle !== undefined) return candle;
    const r = rowsOf(state.seriesId, state.generation);
    const o = (state.start + index) * FIELDS;
    candle = [r[o], r[o + 1], r[o + 2], r[o + 3], r[o + 4], r[o + 5], r[o + 6], r[o + 7], r[o + 8], r[o + 9], r[o + 10], 0];
    state.built[index] = candle;
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

  function indexOf(state: LazyState, key: string | symbol): number {
    if (typeof key !== 'string' || key.length === 0) return -1;
    const first = key.charCodeAt(0);
    if (first < 48 || first > 57) return -1;
    const index = +key;
    return isInteger(index) && index < state.length && toText(index) === key ? index : -1;
  }

  function relative(state: LazyState, value: unknown, fallback: number): number {
    if (value === undefined) return fallback;
    const n = Math.trunc(+(value as number)) || 0;
    return n < 0 ? Math.max(state.length + n, 0) : Math.min(n, state.length);
  }

  function lazyAt(state: LazyState, position: unknown): unknown {
    if (state.full !== null) return state.full.at(position as number);
    const n = Math.trunc(+(position as number)) || 0;
    const index = n < 0 ? state.length + n : n;
    return index >= 0 && index < state.length ? kline(state, index) : undefined;
  }

  function lazySlice(state: LazyState, start: unknown, end: unknown): unknown[] {
    if (state.full !== null) return state.full.slice(start as number, end as number);
    const from = relative(state, start, 0);
    const to = relative(state, end, state.length);
    const out = [];
    for (let i = from; i < to; i++) out[out.length] = kline(state, i);
    return out;
  }

  // One handler for every lazy array; each proxy's state hangs off its target under a symbol the
  // filter never sees (the traps below answer for the materialized array, never for the target).
  const STATE = Symbol('state');
  const stateOf = (target: unknown[]) => (target as unknown as Record<symbol, LazyState>)[STATE]!;
  const handler: ProxyHandler<unknown[]> = {
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
      // Array methods run on the real array: no trap per element.
      return (...args: unknown[]) => apply(value as (...a: unknown[]) => unknown, array, args);
    },
    has(target, key) {
      const state = stateOf(target);
      if (state.full === null && indexOf(state, key) >= 0) return true;
      return key in materialize(state);
    },
    set(target, key, value) {
      (materialize(stateOf(target)) as unknown as Record<string | symbol, unknown>)[key] = value;
      return true;
    },
    deleteProperty(target, key) {
      return delete (materialize(stateOf(target)) as unknown as Record<string | symbol, unknown>)[key];
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
      return defineProperty(materialize(stateOf(target)), key, descriptor);
    },
  };

  /** A kline array that builds its candles only when read, so helpers-only filters build nothing. */
  function lazyKlines(seriesId: number, generation: number, start: number, length: number): unknown[] {
    const target: unknown[] = [];
    (target as unknown as Record<symbol, LazyState>)[STATE] = { seriesId, generation, start, length, built: [], full: null };
    const proxy = new ProxyCtor(target, handler);
    weakMapSetOn(proxy, seriesId);
    return proxy;
  }

  /** Undo the host's encodeResult: `{ $series: Float64Array }` back to an array with null for NaN. */
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
    for (const key of ownKeys(record) as string[]) record[key] = decodeResult(record[key]);
    return record;
  }

  function isSimpleArgument(value: unknown, allowObject: boolean): boolean {
    if (value === undefined || value === null) return true;
    const type = typeof value;
    if (type === 'number' || type === 'boolean') return true;
    if (type === 'string') return (value as string).length <= 64;
    return type === 'object' && allowObject && getPrototypeOf(value) === objectPrototype;
  }

  // Helpers called on a tick's own series are computed once per thread and tick by the host;
  // anything else (sliced arrays, numbers, odd arguments) runs here on the isolate's copy.
  const helpers: Record<string, unknown> = {};
  for (const name of Object.keys(library)) helpers[name] = library[name];
  for (const name of klineHelperNames) {
    const local = library[name]!;
    helpers[name] = function (...args: unknown[]) {
      const series = weakMapGetOn(args[0]);
      if (series !== undefined) {
        const rest = args.slice(1);
        let simple = rest.length <= 6;
        for (let i = 0; simple && i < rest.length; i++) simple = isSimpleArgument(rest[i], name === 'calculateHighVolumeNodes');
        if (simple) {
          const result = memo(series as number, name, rest);
          if (result !== undefined) return decodeResult(result);
        }
      }
      return apply(local, undefined, args);
    };
  }
  freeze(helpers);

  return {
    compile(code: string): string | null {
      try {
        filter = new FunctionCtor('ticker', 'timeframes', 'helpers', 'hvnNodes', code) as (...args: unknown[]) => unknown;
        // The nodes cost a host round trip per symbol; a filter that never names them (or `arguments`) cannot tell.
        wantsHvnNodes = /\bhvnNodes\b|\barguments\b/.test(code);
        return null;
      } catch (error) {
        filter = null;
        return describeError(error);
      }
    },
    beginTick(tickersJson: string, specsJson: string): void {
      tickTickers = parseJson(tickersJson);
      tickSpecs = parseJson(specsJson);
      // Attach every series now, so the isolate's memory accounting does not move during the tick.
      for (const spec of tickSpecs) for (let i = 1; i + 4 < spec.length; i += 5) rowsOf(spec[i + 1] as number, spec[i + 2] as number);
    },
    evaluate(symbol: number): boolean | string {
      if (filter === null) return stringifyJson(['runtime', 'filter is not compiled']);
      const spec = tickSpecs[symbol]!;
      const source = tickTickers[symbol]!;
      const ticker: Record<string, string> = {};
      for (const key of ownKeys(source) as string[]) ticker[key] = source[key]!;
      const timeframes: Record<string, unknown> = {};
      for (let i = 1; i + 4 < spec.length; i += 5) {
        timeframes[spec[i] as string] = lazyKlines(spec[i + 1] as number, spec[i + 2] as number, spec[i + 3] as number, spec[i + 4] as number);
      }
      let result: unknown;
      try {
        const hvnNodes = wantsHvnNodes ? decodeResult(memo(spec[0] as number, 'calculateHighVolumeNodes', [])) : [];
        result = filter(ticker, timeframes, helpers, hvnNodes === undefined ? [] : hvnNodes);
      } catch (error) {
        return stringifyJson(['runtime', describeError(error)]);
      }
      if (result === true || result === false) return result;
      return stringifyJson(judgeResult(result));
    },
  };
}

const MAX_CONDITIONS = 50;
const MAX_TEXT = 500;

/** A thrown value as one bounded line; reading it may run filter code, so it runs under the time limit. */
export function describeError(error: unknown): string {
  try {
    if (error !== null && typeof error === 'object' && 'message' in error) {
      const name = (error as { name?: unknown }).name;
      return ((typeof name === 'string' ? name + ': ' : '') + String((error as { message: unknown }).message)).slice(0, MAX_TEXT);
    }
    return ('threw ' + String(error)).slice(0, MAX_TEXT);
  } catch {
    return 'threw a value that cannot be described';
  }
}

export function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : 'a ' + typeof value;
}

/** The filter contract: true, false or { match: boolean, conditions?: string[] }; anything else is a contract error. */
export function judgeResult(result: unknown): RuntimeOutcome {
  try {
    if (result === true || result === false) return ['ok', result, []];
    if (result === null || typeof result !== 'object' || Array.isArray(result)) {
      return ['contract', 'returned ' + kindOf(result) + '; expected true, false or { match, conditions }'];
    }
    const match = (result as { match?: unknown }).match;
    if (match !== true && match !== false) return ['contract', 'returned an object whose match is ' + kindOf(match) + ', not a boolean'];
    const conditions = (result as { conditions?: unknown }).conditions;
    if (conditions === undefined || conditions === null) return ['ok', match, []];
    if (!Array.isArray(conditions)) return ['contract', 'conditions is ' + kindOf(conditions) + ', not an array of strings'];
    const texts: string[] = [];
    const count = Math.min(conditions.length, MAX_CONDITIONS);
    for (let i = 0; i < count; i++) {
      const condition: unknown = conditions[i];
      if (typeof condition !== 'string') return ['contract', 'conditions[' + i + '] is ' + kindOf(condition) + ', not a string'];
      texts[i] = condition.length > MAX_TEXT ? condition.slice(0, MAX_TEXT) : condition;
    }
    return ['ok', match, texts];
  } catch (error) {
    return ['runtime', describeError(error)];
  }
}

/** Source of everything the isolate needs besides the helpers, to evaluate before calling installRuntime. */
export function runtimeFunctionsSource(): string {
  return [describeError, kindOf, judgeResult, installRuntime].map((fn) => fn.toString()).join('\n') + `\nvar MAX_CONDITIONS = ${MAX_CONDITIONS};\nvar MAX_TEXT = ${MAX_TEXT};`;
}
