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
/** A helper's result on `length` candles from `offset` of a series (the whole series when omitted), or undefined. */
type Memo = (seriesId: number, helper: string, args: unknown[], offset?: number, length?: number) => unknown;

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
  const trunc = Math.trunc;
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
    const first = key.charCodeAt(0);
    if (first < 48 || first > 57) return -1;
    const index = +key;
    return isInteger(index) && index < state.length && toText(index) === key ? index : -1;
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
  };

  /** A kline array that builds its candles only when read, so helpers-only filters build nothing. */
  function lazyArray(series: SeriesState, offset: number, length: number): unknown[] {
    const target: unknown[] = [];
    const handle: MemoHandle = { seriesId: series.seriesId, offset, length, dirty: false };
    (target as unknown as Record<symbol, LazyState>)[STATE] = { series, offset, length, full: null, handle };
    const proxy = new ProxyCtor(target, handler);
    weakMapSetOn(proxy, handle);
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

  // Helpers called on a tick's own series (or a slice of it the filter has not written to) are
  // computed once per thread and symbol by the host; anything else (copies, numbers, odd
  // arguments) runs here on what the filter passed.
  const helpers: Record<string, unknown> = {};
  for (const name of Object.keys(library)) helpers[name] = library[name];
  for (const name of klineHelperNames) {
    const local = library[name]!;
    helpers[name] = function (...args: unknown[]) {
      const handle = weakMapGetOn(args[0]) as MemoHandle | undefined;
      if (handle !== undefined && !handle.dirty) {
        const rest = args.slice(1);
        let simple = rest.length <= 6;
        for (let i = 0; simple && i < rest.length; i++) simple = isSimpleArgument(rest[i], name === 'calculateHighVolumeNodes');
        if (simple) {
          const result = memo(handle.seriesId, name, rest, handle.offset, handle.length);
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
        const series: SeriesState = { seriesId: spec[i + 1] as number, generation: spec[i + 2] as number, rowStart: spec[i + 3] as number, built: [] };
        timeframes[spec[i] as string] = lazyArray(series, 0, spec[i + 4] as number);
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
