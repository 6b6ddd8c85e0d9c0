// Kline arrays inside an isolate: lazy views on the thread's shared market rows, built candle by candle only when a filter reads them.
//
// Runs inside every trader's isolate (its source is injected by runtimeFunctionsSource, before any
// filter code): self-contained plain JavaScript that captures every builtin it uses when installed.

/** Returns the shared buffer holding a series' rows, or undefined when the id is unknown. */
export type Attach = (seriesId: number) => SharedArrayBuffer | undefined;

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
export interface MemoHandle {
  seriesId: number;
  offset: number;
  length: number;
  /** Written through (or by a mutating method): helpers then run here on what the filter sees. */
  dirty: boolean;
}

export interface KlineViews {
  /** The rows of a series at `generation` (attached once per generation); throws when the host has none. */
  rowsOf(seriesId: number, generation: number): Float64Array;
  /** A fresh kline array over `length` rows from row `rowStart` of a series, for one evaluation. */
  timeframe(seriesId: number, generation: number, rowStart: number, length: number): unknown[];
  /** The memo handle of a kline array this runtime made (the timeframe or a slice of it), or undefined. */
  handleOf(value: unknown): MemoHandle | undefined;
}

export function installKlineViews(attach: Attach, rowFields: number): KlineViews {
  'use strict';
  const FIELDS = rowFields;
  const apply = Reflect.apply;
  const ownKeys = Reflect.ownKeys;
  const getOwnPropertyDescriptor = Reflect.getOwnPropertyDescriptor;
  const defineProperty = Reflect.defineProperty;
  const isInteger = Number.isInteger;
  const trunc = Math.trunc;
  const numberText = String;
  const Float64 = Float64Array;
  const ProxyCtor = Proxy;
  const bind = Function.prototype.bind;
  const charCodeAt = String.prototype.charCodeAt;
  const seriesHandles = new WeakMap();
  // Views on the thread's shared market rows, by series id. They never leave this closure, and the
  // code below only reads them by integer index (never .length, .buffer or a method, which a filter
  // could have redefined on the prototype to capture the view).
  const views = new Map();
  // Bound once, before any filter runs: later changes to the prototypes cannot reach these.
  const viewsGet = apply(bind, Map.prototype.get, [views]) as (key: number) => unknown;
  const viewsSet = apply(bind, Map.prototype.set, [views]) as (key: number, value: unknown) => void;
  const weakMapGetOn = apply(bind, WeakMap.prototype.get, [seriesHandles]) as (key: unknown) => unknown;
  const weakMapSetOn = apply(bind, WeakMap.prototype.set, [seriesHandles]) as (key: unknown, value: unknown) => void;
  // Reused for every lazy array (never handed to a filter): a fresh `{ __proto__: null, … }` descriptor
  // per definition cost more than the rest of an evaluation's setup.
  const stateDescriptor = { __proto__: null, value: undefined as unknown, writable: true, enumerable: false, configurable: true } as PropertyDescriptor;

  function rowsOf(seriesId: number, generation: number): Float64Array {
    const cached = viewsGet(seriesId) as [number, Float64Array] | undefined;
    if (cached !== undefined && cached[0] === generation) return cached[1];
    const buffer = attach(seriesId);
    if (buffer === undefined) throw new Error('market data unavailable');
    const rows = new Float64(buffer);
    viewsSet(seriesId, [generation, rows]);
    return rows;
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

  return {
    rowsOf,
    timeframe(seriesId: number, generation: number, rowStart: number, length: number): unknown[] {
      return lazyArray({ seriesId, generation, rowStart, built: [] }, 0, length);
    },
    handleOf(value: unknown): MemoHandle | undefined {
      return weakMapGetOn(value) as MemoHandle | undefined;
    },
  };
}
