// The market a replay screens at each close: every series' closed candles as rows that are never rewritten, shown as a live worker held them then.
import { CANDLE_ROW_FIELDS, type Candle, type CandleOrigin, type Interval, readCandleRow, sharedCandleRows, type Ticker, writeCandleRow } from '../domain.ts';
import type { CandleSeriesView, MarketView, SharedCandleRows } from '../ports.ts';

const FIELDS = CANDLE_ROW_FIELDS;
/** Row offsets of the two times (Candle's field order). */
const OPEN_TIME = 0;
const CLOSE_TIME = 6;

/**
 * The first of `length` rows from row `start` whose field `field` is at least `value` (`length` when none is):
 * the rows are in open-time order, so both times rise with the row.
 */
function firstAtLeast(rows: Float64Array, start: number, length: number, field: number, value: number): number {
  let low = 0;
  let high = length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (rows[(start + mid) * FIELDS + field]! < value) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** The rows of `rows` whose candle opened in [startTime, endTime): the same buffer, a narrower window. */
export function rowsOpenedBetween(rows: SharedCandleRows, startTime: number, endTime: number): SharedCandleRows {
  const view = new Float64Array(rows.buffer);
  const from = firstAtLeast(view, rows.start, rows.length, OPEN_TIME, startTime);
  const to = firstAtLeast(view, rows.start, rows.length, OPEN_TIME, endTime);
  return { buffer: rows.buffer, start: rows.start + from, length: Math.max(0, to - from) };
}

/**
 * Candles as rows of a buffer of their own, in open-time order, one row per open time (the last given wins),
 * which is how a MarketStore would hold them: 88 bytes a candle off the heap instead of a Candle object's ~340
 * bytes on it.
 */
export function packCandles(candles: readonly Candle[]): SharedCandleRows {
  let ordered = candles;
  for (let i = 1; i < candles.length; i++) {
    if (candles[i]!.openTime <= candles[i - 1]!.openTime) {
      // Array.prototype.sort is stable: of equal open times the one given last stays last, and wins below.
      ordered = [...candles].sort((a, b) => a.openTime - b.openTime);
      break;
    }
  }
  const rows = sharedCandleRows(Math.max(1, ordered.length));
  let length = 0;
  for (const candle of ordered) {
    if (length > 0 && rows[(length - 1) * FIELDS + OPEN_TIME] === candle.openTime) length--;
    writeCandleRow(rows, length++, candle);
  }
  return { buffer: rows.buffer as SharedArrayBuffer, start: 0, length };
}

/**
 * The closed candles a replay reads, one row window per (symbol, interval), each shown by `at(boundary)` as a live
 * worker's store held it at that close: the last `history` candles that closed before it. Nothing is copied: the
 * screener reads these rows where they are (the live store's own, for a look-back), as it reads the live store's.
 * A buffer the live store moves away from meanwhile (once every `history / 8` closes of a series) stays alive until
 * the replay ends: at most one extra buffer per series read, ~10 MB for 200 symbols' 1m series.
 */
export class ReplayMarket {
  private readonly history: number;
  private readonly rows = new Map<string, Map<Interval, SharedCandleRows>>();

  constructor(history: number) {
    if (!Number.isInteger(history) || history < 1) throw new RangeError(`history must be a positive integer, got ${history}`);
    this.history = history;
  }

  /** The series' candles from the first it may ever show to the last: rows in open-time order that nobody rewrites. */
  add(symbol: string, interval: Interval, rows: SharedCandleRows): void {
    let bySymbol = this.rows.get(symbol);
    if (bySymbol === undefined) this.rows.set(symbol, (bySymbol = new Map()));
    bySymbol.set(interval, rows);
  }

  /** The market just before `boundary` (a candle boundary): in every series, only candles that closed before it. */
  at(boundary: number): MarketView {
    return new MarketAtClose(this.rows, this.history, boundary);
  }
}

class MarketAtClose implements MarketView {
  private readonly rows: ReadonlyMap<string, ReadonlyMap<Interval, SharedCandleRows>>;
  private readonly history: number;
  private readonly boundary: number;

  constructor(rows: ReadonlyMap<string, ReadonlyMap<Interval, SharedCandleRows>>, history: number, boundary: number) {
    this.rows = rows;
    this.history = history;
    this.boundary = boundary;
  }

  symbols(): string[] {
    return [...this.rows.keys()];
  }

  /** Undefined while no candle of the series has closed: a store that has not been given one has no such series. */
  series(symbol: string, interval: Interval): CandleSeriesView | undefined {
    const rows = this.rows.get(symbol)?.get(interval);
    if (rows === undefined) return undefined;
    const closed = firstAtLeast(new Float64Array(rows.buffer), rows.start, rows.length, CLOSE_TIME, this.boundary);
    if (closed === 0) return undefined;
    const shown = Math.min(closed, this.history);
    return new SeriesAtClose(symbol, interval, { buffer: rows.buffer, start: rows.start + closed - shown, length: shown }, closed);
  }

  /** No ticker: replayed closes are not stream closes, so filters get the contract's minimal ticker, as the live worker gives them. */
  ticker(): Ticker | undefined {
    return undefined;
  }
}

class SeriesAtClose implements CandleSeriesView {
  readonly symbol: string;
  readonly interval: Interval;
  readonly length: number;
  /** The candles stored up to this close, as a MarketStore fed them one by one counts its changes. */
  readonly version: number;
  private readonly shared: SharedCandleRows;
  private readonly view: Float64Array;

  constructor(symbol: string, interval: Interval, shared: SharedCandleRows, version: number) {
    this.symbol = symbol;
    this.interval = interval;
    this.shared = shared;
    this.view = new Float64Array(shared.buffer);
    this.length = shared.length;
    this.version = version;
  }

  get(i: number): Candle {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new RangeError(`index ${i} outside 0..${this.length - 1}`);
    return readCandleRow(this.view, this.shared.start + i);
  }

  since(openTime: number): Candle[] {
    const candles: Candle[] = [];
    for (let i = firstAtLeast(this.view, this.shared.start, this.length, OPEN_TIME, openTime + 1); i < this.length; i++) candles.push(this.get(i));
    return candles;
  }

  lastClosed(): Candle | undefined {
    return this.length === 0 ? undefined : this.get(this.length - 1);
  }

  /** Every candle shown was history when the replay began. */
  originOf(openTime: number): CandleOrigin | undefined {
    const i = firstAtLeast(this.view, this.shared.start, this.length, OPEN_TIME, openTime);
    return i < this.length && this.view[(this.shared.start + i) * FIELDS + OPEN_TIME] === openTime ? 'backfill' : undefined;
  }

  sharedRows(): SharedCandleRows {
    return this.shared;
  }
}
