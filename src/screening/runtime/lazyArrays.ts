// Arrays inside an isolate whose elements are built only when read: a Proxy that answers like the plain array it stands for.
//
// Runs inside every trader's isolate (its source is injected by runtimeFunctionsSource, before any
// filter code): self-contained plain JavaScript that captures every builtin it uses when installed.

/**
 * What the helpers need to ask the host for a memoized result on a lazy array: `length` elements
 * from `offset` of the series `seriesId`, unless the filter wrote to the array.
 */
export interface MemoHandle {
  seriesId: number;
  offset: number;
  length: number;
  /** Written through (or by a mutating method): helpers then run here on what the filter sees. */
  dirty: boolean;
}

/**
 * One lazy array: `length` elements from `offset` of `source`, and the plain array once something
 * needed all of it. It is also the array's proxy handler (it inherits the traps from one shared,
 * prototype-less object, which read it as `this`), so making an array costs two objects and the
 * proxy; the filter never sees it, the helpers read it as the array's MemoHandle.
 */
export interface LazyState<S> extends MemoHandle {
  source: S;
  full: unknown[] | null;
}

export interface LazyArrays<S> {
  /**
   * A fresh lazy array over `length` elements from `offset` of `source` (element `at` is
   * `read(source, at)`), known to stateOf until endEvaluation.
   */
  make(source: S, seriesId: number, offset: number, length: number): unknown[];
  /** The state of a lazy array made since the last endEvaluation, or undefined for any other value. */
  stateOf(value: unknown): LazyState<S> | undefined;
  /** Forget the arrays made so far: stateOf no longer knows them, and they are not kept alive by it. */
  endEvaluation(): void;
}

/**
 * Lazy arrays whose element `at` of a source is `read(source, at)` (called once per element and
 * array at most; a reader that returns the same object for the same `at` makes slices share them).
 * Reading an index, `length`, `at()` or `slice()` builds only what is read; anything else turns the
 * array into the plain array it stands for, on which the operation then runs.
 */
export function installLazyArrays<S>(read: (source: S, at: number) => unknown): LazyArrays<S> {
  'use strict';
  const apply = Reflect.apply;
  const ownKeys = Reflect.ownKeys;
  const getOwnPropertyDescriptor = Reflect.getOwnPropertyDescriptor;
  const defineProperty = Reflect.defineProperty;
  const objectCreate = Object.create;
  const trunc = Math.trunc;
  const charCodeAt = String.prototype.charCodeAt;
  const ProxyCtor = Proxy;
  // At most this many arrays per evaluation are known to stateOf (the timeframes and their slices); later
  // ones still work, their helpers are computed in the isolate instead of taken from the host's memo.
  const LIMIT = 256;
  // The arrays of the current evaluation and their states, by position: filled with own elements now,
  // before any filter code, so writing a slot never consults a prototype a filter could have changed.
  // A list instead of a WeakMap: an evaluation makes a few arrays, and a WeakMap entry per array cost
  // more than the rest of making it (and kept its state alive past young-generation collections).
  const known: unknown[] = [];
  const knownStates: Array<LazyState<S> | null> = [];
  for (let i = 0; i < LIMIT; i++) {
    known[i] = null;
    knownStates[i] = null;
  }
  let knownCount = 0;

  function materialize(state: LazyState<S>): unknown[] {
    if (state.full === null) {
      const array = new Array(state.length);
      for (let i = 0; i < state.length; i++) array[i] = read(state.source, state.offset + i);
      state.full = array;
    }
    return state.full;
  }

  /** Array methods that change the array they are called on. */
  function isMutator(name: string): boolean {
    return name === 'push' || name === 'pop' || name === 'shift' || name === 'unshift' || name === 'splice' || name === 'reverse' || name === 'sort' || name === 'fill' || name === 'copyWithin';
  }

  // The canonical text of every index below INDEX_TEXTS, made now (before any filter code): a key
  // that converts to such a number is that index exactly when it is that text. A filter looping over
  // a kline array reads every index through the get trap, and parsing each key a character at a time
  // cost ~100 ns a read (a 500-candle loop paid more than building the candles).
  const INDEX_TEXTS = 4096;
  const indexTexts: string[] = [];
  for (let i = 0; i < INDEX_TEXTS; i++) indexTexts[i] = '' + i;

  /**
   * The element index a property key names (its canonical decimal text, below `length`), or -1.
   * No lazy array reaches a billion elements, so longer keys are never indices here.
   */
  function indexOf(length: number, key: string | symbol): number {
    if (typeof key !== 'string') return -1;
    // ToNumber of a string runs no filter code; "01", " 1" or "1e2" convert to an index but are not its text.
    const n = +key;
    if (n >= 0 && n < INDEX_TEXTS && (n | 0) === n) return n < length && indexTexts[n] === key ? n : -1;
    const digits = key.length;
    if (digits === 0 || digits > 9) return -1;
    let index = 0;
    for (let i = 0; i < digits; i++) {
      const c = apply(charCodeAt, key, [i]) as number;
      if (c < 48 || c > 57) return -1;
      index = index * 10 + (c - 48);
    }
    // A leading zero ("01") is not the canonical text of an index.
    if (digits > 1 && (apply(charCodeAt, key, [0]) as number) === 48) return -1;
    return index < length ? index : -1;
  }

  function relative(state: LazyState<S>, value: unknown, fallback: number): number {
    if (value === undefined) return fallback;
    const n = trunc(+(value as number)) || 0;
    if (n < 0) return state.length + n > 0 ? state.length + n : 0;
    return n < state.length ? n : state.length;
  }

  function lazyAt(state: LazyState<S>, position: unknown): unknown {
    if (state.full !== null) return state.full.at(position as number);
    const n = trunc(+(position as number)) || 0;
    const index = n < 0 ? state.length + n : n;
    return index >= 0 && index < state.length ? read(state.source, state.offset + index) : undefined;
  }

  /**
   * A slice is another lazy array over the same source (the same element objects, as
   * Array.prototype.slice would give), so `helpers.x(k.slice(-50))` builds nothing and is memoized
   * like `k` itself.
   */
  function lazySlice(state: LazyState<S>, start: unknown, end: unknown): unknown[] {
    if (state.full !== null) return state.full.slice(start as number, end as number);
    const from = relative(state, start, 0);
    const to = relative(state, end, state.length);
    return make(state.source, state.seriesId, state.offset + from, to > from ? to - from : 0);
  }

  function get(state: LazyState<S>, key: string | symbol): unknown {
    if (state.full === null) {
      if (key === 'length') return state.length;
      const index = indexOf(state.length, key);
      if (index >= 0) return read(state.source, state.offset + index);
      if (key === 'at') return (position: unknown) => lazyAt(state, position);
      if (key === 'slice') return (start: unknown, end: unknown) => lazySlice(state, start, end);
    }
    const array = materialize(state);
    const value = (array as unknown as Record<string | symbol, unknown>)[key];
    if (typeof value !== 'function' || key === 'constructor') return value;
    if (typeof key === 'string' && isMutator(key)) state.dirty = true;
    // Array methods run on the real array: no trap per element.
    return (...args: unknown[]) => apply(value as (...a: unknown[]) => unknown, array, args);
  }

  // The traps of every lazy array, inherited by each array's state (the handler): they answer for the
  // materialized array, never for the empty target. No prototype: a trap the handler lacks must not
  // be found on a tampered Object.prototype.
  const traps = {
    __proto__: null,
    get(this: LazyState<S>, _target: unknown[], key: string | symbol): unknown {
      return get(this, key);
    },
    has(this: LazyState<S>, _target: unknown[], key: string | symbol): boolean {
      if (this.full === null && indexOf(this.length, key) >= 0) return true;
      return key in materialize(this);
    },
    set(this: LazyState<S>, _target: unknown[], key: string | symbol, value: unknown): boolean {
      this.dirty = true;
      (materialize(this) as unknown as Record<string | symbol, unknown>)[key] = value;
      return true;
    },
    deleteProperty(this: LazyState<S>, _target: unknown[], key: string | symbol): boolean {
      this.dirty = true;
      return delete (materialize(this) as unknown as Record<string | symbol, unknown>)[key];
    },
    ownKeys(this: LazyState<S>): ArrayLike<string | symbol> {
      return ownKeys(materialize(this));
    },
    getOwnPropertyDescriptor(this: LazyState<S>, _target: unknown[], key: string | symbol): PropertyDescriptor | undefined {
      const descriptor = getOwnPropertyDescriptor(materialize(this), key);
      if (descriptor && key !== 'length') descriptor.configurable = true;
      return descriptor;
    },
    defineProperty(this: LazyState<S>, _target: unknown[], key: string | symbol, descriptor: PropertyDescriptor): boolean {
      this.dirty = true;
      return defineProperty(materialize(this), key, descriptor);
    },
  };

  /** An array that builds its elements only when read, so helpers-only filters build nothing. */
  function make(source: S, seriesId: number, offset: number, length: number): unknown[] {
    const state = objectCreate(traps) as LazyState<S>;
    state.source = source;
    state.seriesId = seriesId;
    state.offset = offset;
    state.length = length;
    state.full = null;
    state.dirty = false;
    const proxy = new ProxyCtor([], state as unknown as ProxyHandler<unknown[]>);
    if (knownCount < LIMIT) {
      known[knownCount] = proxy;
      knownStates[knownCount++] = state;
    }
    return proxy;
  }

  return {
    make,
    stateOf(value: unknown): LazyState<S> | undefined {
      // Newest first: a helper is usually called on the array or slice made just before.
      for (let i = knownCount - 1; i >= 0; i--) if (known[i] === value) return knownStates[i]!;
      return undefined;
    },
    endEvaluation(): void {
      for (let i = 0; i < knownCount; i++) {
        known[i] = null;
        knownStates[i] = null;
      }
      knownCount = 0;
    },
  };
}
