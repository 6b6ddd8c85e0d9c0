// Each screening thread's numeric copy of the series it screens, kept in step with the MarketView by sending only what changed.
import type { Candle, Interval } from '../domain.ts';
import type { CandleSeriesView, MarketView } from '../ports.ts';
import { ROW_FIELDS } from './sandboxRuntime.ts';

/** A series change sent to a thread: `append` adds rows after its last one; `full` replaces the series. */
export interface SeriesUpdate {
  key: string;
  mode: 'append' | 'full';
  /** ROW_FIELDS numbers per candle, oldest first. */
  rows: Float64Array;
  /** Length and first open time the thread must end up with; a mismatch means the copy drifted. */
  length: number;
  firstOpenTime: number;
}

export function seriesKey(symbol: string, interval: Interval): string {
  return `${symbol}|${interval}`;
}

export function packCandles(candles: readonly Candle[]): Float64Array {
  const rows = new Float64Array(candles.length * ROW_FIELDS);
  candles.forEach((c, i) => {
    const o = i * ROW_FIELDS;
    rows[o] = c.openTime;
    rows[o + 1] = c.open;
    rows[o + 2] = c.high;
    rows[o + 3] = c.low;
    rows[o + 4] = c.close;
    rows[o + 5] = c.volume;
    rows[o + 6] = c.closeTime;
    rows[o + 7] = c.quoteVolume;
    rows[o + 8] = c.trades;
    rows[o + 9] = c.takerBuyBaseVolume;
    rows[o + 10] = c.takerBuyQuoteVolume;
  });
  return rows;
}

function packSeries(view: CandleSeriesView): Float64Array {
  const candles: Candle[] = new Array(view.length);
  for (let i = 0; i < view.length; i++) candles[i] = view.get(i);
  return packCandles(candles);
}

interface KnownSeries {
  version: number;
  lastOpenTime: number;
}

/**
 * The main thread's record of what one thread holds. A pure append is recognised by the version
 * moving by exactly the number of new candles (MarketStore bumps it once per inserted or changed
 * candle); anything else (a candle rewritten by a gap fill, a late candle inserted) resends the series.
 */
export class MirrorSync {
  private readonly known = new Map<string, KnownSeries>();

  /** Updates that bring the thread's copy of these series up to date. */
  updatesFor(market: MarketView, series: ReadonlyArray<{ symbol: string; interval: Interval }>): SeriesUpdate[] {
    const updates: SeriesUpdate[] = [];
    for (const { symbol, interval } of series) {
      const view = market.series(symbol, interval);
      const key = seriesKey(symbol, interval);
      const last = view?.lastClosed();
      if (!view || !last) continue;
      const known = this.known.get(key);
      if (known && known.version === view.version && known.lastOpenTime === last.openTime) continue;
      const firstOpenTime = view.get(0).openTime;
      let update: SeriesUpdate | null = null;
      if (known && view.version > known.version) {
        const appended = view.since(known.lastOpenTime);
        if (appended.length > 0 && appended.length === view.version - known.version) {
          update = { key, mode: 'append', rows: packCandles(appended), length: view.length, firstOpenTime };
        }
      }
      update ??= { key, mode: 'full', rows: packSeries(view), length: view.length, firstOpenTime };
      updates.push(update);
      this.known.set(key, { version: view.version, lastOpenTime: last.openTime });
    }
    return updates;
  }

  /** Forget a series (the thread reported it drifted, or restarted): the next update resends it. */
  forget(key?: string): void {
    if (key === undefined) this.known.clear();
    else this.known.delete(key);
  }
}

export interface MirrorSeries {
  /** Stable for the life of the thread: isolates cache their view of `rows` under it. */
  id: number;
  /** Bumped when `rows` moves to a new buffer; isolates re-attach when it changes. */
  generation: number;
  /** Rows 0..length-1 of a shared buffer, oldest first; only this thread writes, between evaluations. */
  rows: Float64Array;
  length: number;
}

/**
 * The thread side: the latest rows per series, each in a SharedArrayBuffer so every isolate on the
 * thread reads the same memory instead of its own copy. Only the thread writes, and only between
 * evaluations (ticks run one at a time), so readers never see a half-applied update.
 */
export class SeriesMirror {
  private readonly series = new Map<string, MirrorSeries>();
  private readonly byId: MirrorSeries[] = [];

  /** Apply updates; returns the keys whose copy drifted (they are dropped until resent in full). */
  apply(updates: readonly SeriesUpdate[]): string[] {
    const drifted: string[] = [];
    for (const update of updates) {
      const current = this.series.get(update.key);
      const added = update.rows.length / ROW_FIELDS;
      if (update.mode === 'full') {
        const entry = this.reserve(update.key, update.length);
        entry.rows.set(update.rows, 0);
        entry.length = update.length;
        continue;
      }
      const kept = update.length - added;
      if (!current || kept < 0 || kept > current.length) {
        drifted.push(update.key);
        this.drop(update.key);
        continue;
      }
      const entry = this.reserve(update.key, update.length);
      entry.rows.copyWithin(0, (current.length - kept) * ROW_FIELDS, current.length * ROW_FIELDS);
      entry.rows.set(update.rows, kept * ROW_FIELDS);
      entry.length = update.length;
      if (entry.rows[0] !== update.firstOpenTime) {
        drifted.push(update.key);
        this.drop(update.key);
      }
    }
    return drifted;
  }

  get(key: string): MirrorSeries | undefined {
    return this.series.get(key);
  }

  byIdentity(id: number): MirrorSeries | undefined {
    return this.byId[id];
  }

  /** The entry for `key` with room for `length` rows, keeping its rows when it already had room. */
  private reserve(key: string, length: number): MirrorSeries {
    let entry = this.series.get(key);
    if (!entry) {
      entry = { id: this.byId.length, generation: 0, rows: sharedRows(length), length: 0 };
      this.byId.push(entry);
      this.series.set(key, entry);
    } else if (entry.rows.length < length * ROW_FIELDS) {
      const rows = sharedRows(length);
      rows.set(entry.rows.subarray(0, entry.length * ROW_FIELDS), 0);
      entry.rows = rows;
      entry.generation++;
    }
    return entry;
  }

  private drop(key: string): void {
    const entry = this.series.get(key);
    if (entry) entry.length = 0;
  }
}

function sharedRows(length: number): Float64Array {
  return new Float64Array(new SharedArrayBuffer(Math.max(1, length) * ROW_FIELDS * Float64Array.BYTES_PER_ELEMENT));
}
