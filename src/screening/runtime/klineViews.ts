// Kline arrays inside an isolate: lazy views on the thread's shared market rows, built candle by candle only when a filter reads them.
//
// Runs inside every trader's isolate (its source is injected by runtimeFunctionsSource, before any
// filter code): self-contained plain JavaScript that captures every builtin it uses when installed.
import { installLazyArrays, type LazyState, type MemoHandle } from './lazyArrays.ts';

export type { MemoHandle } from './lazyArrays.ts';

/** Returns the shared buffer holding a series' rows, or undefined when the id is unknown. */
export type Attach = (seriesId: number) => SharedArrayBuffer | undefined;

/** One timeframe of one evaluation: where its rows are, and the candles built so far (shared by the array and its slices). */
interface SeriesState {
  seriesId: number;
  generation: number;
  rowStart: number;
  /** Candles in the timeframe. */
  length: number;
  /** Candles by position, made on the first read (a timeframe the filter never reads costs no array). */
  built: unknown[] | null;
}

export interface KlineViews {
  /** The rows of a series at `generation` (attached once per generation); throws when the host has none. */
  rowsOf(seriesId: number, generation: number): Float64Array;
  /** A fresh kline array over `length` rows from row `rowStart` of a series, for one evaluation. */
  timeframe(seriesId: number, generation: number, rowStart: number, length: number): unknown[];
  /** The memo handle of a kline array this evaluation made (the timeframe or a slice of it), or undefined. */
  handleOf(value: unknown): MemoHandle | undefined;
  /** The evaluation is over: its arrays are no longer known to handleOf (see installLazyArrays). */
  endEvaluation(): void;
}

export function installKlineViews(attach: Attach, rowFields: number): KlineViews {
  'use strict';
  const FIELDS = rowFields;
  const Float64 = Float64Array;
  const ArrayCtor = Array;
  const bind = Function.prototype.bind;
  const apply = Reflect.apply;
  // Views on the thread's shared market rows, by series id. They never leave this closure, and the
  // code below only reads them by integer index (never .length, .buffer or a method, which a filter
  // could have redefined on the prototype to capture the view).
  const views = new Map();
  // Bound once, before any filter runs: later changes to the prototypes cannot reach these.
  const viewsGet = apply(bind, Map.prototype.get, [views]) as (key: number) => unknown;
  const viewsSet = apply(bind, Map.prototype.set, [views]) as (key: number, value: unknown) => void;

  function rowsOf(seriesId: number, generation: number): Float64Array {
    const cached = viewsGet(seriesId) as [number, Float64Array] | undefined;
    if (cached !== undefined && cached[0] === generation) return cached[1];
    const buffer = attach(seriesId);
    if (buffer === undefined) throw new Error('market data unavailable');
    const rows = new Float64(buffer);
    viewsSet(seriesId, [generation, rows]);
    return rows;
  }

  /** Candle `at` of a series, built from its row on the first read and the same object afterwards. */
  function kline(series: SeriesState, at: number): unknown {
    let built = series.built;
    // Sized once: a sparse array would turn into a dictionary on the first write near its end.
    if (built === null) series.built = built = new ArrayCtor(series.length);
    let candle = built[at];
    if (candle !== undefined) return candle;
    const r = rowsOf(series.seriesId, series.generation);
    const o = (series.rowStart + at) * FIELDS;
    candle = [r[o], r[o + 1], r[o + 2], r[o + 3], r[o + 4], r[o + 5], r[o + 6], r[o + 7], r[o + 8], r[o + 9], r[o + 10], 0];
    built[at] = candle;
    return candle;
  }

  const arrays = installLazyArrays(kline);

  return {
    rowsOf,
    timeframe(seriesId: number, generation: number, rowStart: number, length: number): unknown[] {
      return arrays.make({ seriesId, generation, rowStart, length, built: null }, seriesId, 0, length);
    },
    handleOf(value: unknown): MemoHandle | undefined {
      return arrays.stateOf(value) as LazyState<SeriesState> | undefined;
    },
    endEvaluation: arrays.endEvaluation,
  };
}
