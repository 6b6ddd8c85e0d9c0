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
  /**
   * The first candles read, by position (-1: none) and object: most filters read one to three
   * candles, for which an array sized to the timeframe (4 kB at 500 candles, per timeframe and
   * evaluation) cost more than the candles themselves.
   */
  at0: number;
  candle0: unknown;
  at1: number;
  candle1: unknown;
  at2: number;
  candle2: unknown;
  at3: number;
  candle3: unknown;
  /** Candles by position once more than four were read (then the four above are in it too). */
  built: unknown[] | null;
}

export interface KlineViews {
  /** The rows of a series at `generation` (attached once per generation); throws when the host has none. */
  rowsOf(seriesId: number, generation: number): Float64Array;
  /** rowsOf for its effect alone (the series attached at `generation`), at the cost of one comparison when it already is. */
  attachRows(seriesId: number, generation: number): void;
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
  // The generation each series id is attached at, plus one (0: not attached), for attachRows: a typed
  // array, whose index writes no setter a filter put on a prototype can catch; grown by doubling. Its
  // size is kept here: `.length` is a prototype getter a filter can replace.
  let attachedCap = 256;
  let attachedAt = new Float64(attachedCap);

  function rowsOf(seriesId: number, generation: number): Float64Array {
    const cached = viewsGet(seriesId) as [number, Float64Array] | undefined;
    if (cached !== undefined && cached[0] === generation) return cached[1];
    const buffer = attach(seriesId);
    if (buffer === undefined) throw new Error('market data unavailable');
    const rows = new Float64(buffer);
    viewsSet(seriesId, [generation, rows]);
    if (seriesId >= 0 && seriesId < 1e7) {
      if (seriesId >= attachedCap) {
        let size = attachedCap * 2;
        while (size <= seriesId) size *= 2;
        const grown = new Float64(size);
        for (let i = 0; i < attachedCap; i++) grown[i] = attachedAt[i]!;
        attachedAt = grown;
        attachedCap = size;
      }
      attachedAt[seriesId] = generation + 1;
    }
    return rows;
  }

  function attachRows(seriesId: number, generation: number): void {
    if (seriesId >= 0 && seriesId < attachedCap && attachedAt[seriesId] === generation + 1) return;
    rowsOf(seriesId, generation);
  }

  /** A fresh candle from row `at` of a series. */
  function candleOf(series: SeriesState, at: number): unknown {
    const r = rowsOf(series.seriesId, series.generation);
    const o = (series.rowStart + at) * FIELDS;
    return [r[o], r[o + 1], r[o + 2], r[o + 3], r[o + 4], r[o + 5], r[o + 6], r[o + 7], r[o + 8], r[o + 9], r[o + 10], 0];
  }

  /** Candle `at` of a series, built from its row on the first read and the same object afterwards. */
  function kline(series: SeriesState, at: number): unknown {
    let built = series.built;
    if (built === null) {
      if (series.at0 === at) return series.candle0;
      if (series.at1 === at) return series.candle1;
      if (series.at2 === at) return series.candle2;
      if (series.at3 === at) return series.candle3;
      const candle = candleOf(series, at);
      if (series.at0 < 0) {
        series.at0 = at;
        series.candle0 = candle;
      } else if (series.at1 < 0) {
        series.at1 = at;
        series.candle1 = candle;
      } else if (series.at2 < 0) {
        series.at2 = at;
        series.candle2 = candle;
      } else if (series.at3 < 0) {
        series.at3 = at;
        series.candle3 = candle;
      } else {
        // Sized once: a sparse array would turn into a dictionary on the first write near its end.
        series.built = built = new ArrayCtor(series.length);
        built[series.at0] = series.candle0;
        built[series.at1] = series.candle1;
        built[series.at2] = series.candle2;
        built[series.at3] = series.candle3;
        built[at] = candle;
      }
      return candle;
    }
    let candle = built[at];
    if (candle !== undefined) return candle;
    candle = candleOf(series, at);
    built[at] = candle;
    return candle;
  }

  const arrays = installLazyArrays(kline);

  return {
    rowsOf,
    attachRows,
    timeframe(seriesId: number, generation: number, rowStart: number, length: number): unknown[] {
      return arrays.make({ seriesId, generation, rowStart, length, at0: -1, candle0: null, at1: -1, candle1: null, at2: -1, candle2: null, at3: -1, candle3: null, built: null }, seriesId, 0, length);
    },
    handleOf(value: unknown): MemoHandle | undefined {
      return arrays.stateOf(value) as LazyState<SeriesState> | undefined;
    },
    endEvaluation: arrays.endEvaluation,
  };
}
