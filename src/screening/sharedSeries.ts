// The screened series as SharedArrayBuffers read in place by every thread and isolate: the market store's own rows, or one copy of them.
import type { Interval } from '../domain.ts';
import { CANDLE_ROW_FIELDS as ROW_FIELDS, intervalMs, sharedCandleRows, writeCandleRow } from '../domain.ts';
import type { CandleSeriesView, MarketView, SharedCandleRows } from '../ports.ts';

/** Where one series' rows are for a tick: `length` rows from row `start` of buffer `id` at `generation`. */
export type SeriesSlot = [id: number, generation: number, start: number, length: number];

/** A buffer a thread has to be handed (once per id and generation); posting it shares the memory. */
export interface SeriesBuffer {
  id: number;
  generation: number;
  buffer: SharedArrayBuffer;
}

export function seriesKey(symbol: string, interval: Interval): string {
  return `${symbol}|${interval}`;
}

interface StoredSeries {
  id: number;
  interval: Interval;
  generation: number;
  rows: Float64Array;
  start: number;
  length: number;
  /** The view's version and last open time when last synced: an unchanged pair means nothing to write. */
  version: number;
  lastOpenTime: number;
  lastSyncedAt: number;
  /** The rows are this store's copy (written here); false while they are the market store's own buffer. */
  owned: boolean;
}

/**
 * Rows beyond the series' length, so an append writes after the last row and only every
 * `slack` appends moves the rows back to the front.
 */
function slackFor(length: number): number {
  return Math.max(16, Math.ceil(length / 8));
}

/**
 * Main-thread side. Each series lives in its own SharedArrayBuffer, oldest row first from `start`.
 * When the market's view offers its own rows in shared memory (MarketStore does), those are handed
 * to the threads as they are: no copy at all, and its writers never touch a row once handed out
 * (see CandleSeriesView.sharedRows). 200 symbols x 4 intervals x 500 candles: 35 MB less than a copy.
 *
 * Otherwise this store keeps one copy. Its writes happen only between ticks (the Screener runs one
 * tick at a time), so no thread or isolate ever reads a half-written row. One copy serves every
 * thread: per-thread copies cost a full copy of the market per core, plus the transfer garbage.
 *
 * A pure append is recognised by the version moving by exactly the number of new candles
 * (MarketStore bumps it once per inserted or changed candle); anything else (a candle rewritten by
 * a gap fill, a late candle, a truncated view of the previous candle) rewrites the series.
 */
export class SharedSeriesStore {
  private readonly byKey = new Map<string, StoredSeries>();
  private readonly byId = new Map<number, StoredSeries>();
  private nextId = 0;

  /** The series' slot after bringing it up to date with `market`, or null when it has no closed candle. */
  sync(market: MarketView, symbol: string, interval: Interval, now: number): SeriesSlot | null {
    const view = market.series(symbol, interval);
    if (!view) return null;
    const key = seriesKey(symbol, interval);
    const shared = view.sharedRows?.();
    if (shared) return shared.length === 0 ? null : this.adopt(key, interval, shared, now);
    const last = view.lastClosed();
    if (!last || view.length === 0) return null;
    let stored = this.byKey.get(key);
    if (stored && (!stored.owned || stored.version !== view.version || stored.lastOpenTime !== last.openTime || stored.length !== view.length)) {
      if (!this.append(stored, view)) this.rewrite(stored, view);
    } else if (!stored) {
      stored = this.create(key, interval, now);
      this.rewrite(stored, view);
    }
    stored.version = view.version;
    stored.lastOpenTime = last.openTime;
    stored.lastSyncedAt = now;
    return [stored.id, stored.generation, stored.start, stored.length];
  }

  /** The market's own rows as the series' buffer; a different buffer than last time is a new generation. */
  private adopt(key: string, interval: Interval, shared: SharedCandleRows, now: number): SeriesSlot {
    const stored = this.byKey.get(key) ?? this.create(key, interval, now);
    if (stored.owned || stored.rows.buffer !== shared.buffer) {
      stored.rows = new Float64Array(shared.buffer);
      stored.owned = false;
      stored.generation++;
    }
    stored.start = shared.start;
    stored.length = shared.length;
    stored.lastSyncedAt = now;
    return [stored.id, stored.generation, stored.start, stored.length];
  }

  private create(key: string, interval: Interval, now: number): StoredSeries {
    const stored = { id: this.nextId++, interval, generation: 0, rows: sharedCandleRows(1), start: 0, length: 0, version: 0, lastOpenTime: 0, lastSyncedAt: now, owned: true };
    this.byKey.set(key, stored);
    this.byId.set(stored.id, stored);
    return stored;
  }

  buffer(id: number): SeriesBuffer | undefined {
    const stored = this.byId.get(id);
    return stored && { id, generation: stored.generation, buffer: stored.rows.buffer as SharedArrayBuffer };
  }

  /**
   * Forget series no tick has asked for in two of their intervals (a delisted symbol, an interval
   * no trader uses any more). Threads keep a stale buffer until told otherwise; it is never read.
   */
  prune(now: number): number[] {
    const dropped: number[] = [];
    for (const [key, stored] of this.byKey) {
      if (now - stored.lastSyncedAt <= 2 * intervalMs(stored.interval) + 60_000) continue;
      this.byKey.delete(key);
      this.byId.delete(stored.id);
      dropped.push(stored.id);
    }
    return dropped;
  }

  /** Bytes of row buffers held as copies (the market's own rows are counted by the market). */
  bytes(): number {
    let total = 0;
    for (const stored of this.byId.values()) if (stored.owned) total += stored.rows.byteLength;
    return total;
  }

  private append(stored: StoredSeries, view: CandleSeriesView): boolean {
    if (!stored.owned || view.version <= stored.version) return false;
    const appended = view.since(stored.lastOpenTime);
    if (appended.length === 0 || appended.length !== view.version - stored.version) return false;
    const kept = view.length - appended.length;
    if (kept < 0 || kept > stored.length) return false;
    stored.start += stored.length - kept;
    stored.length = kept;
    const capacity = stored.rows.length / ROW_FIELDS;
    if (stored.start + view.length > capacity) {
      if (view.length > capacity) return false;
      stored.rows.copyWithin(0, stored.start * ROW_FIELDS, (stored.start + kept) * ROW_FIELDS);
      stored.start = 0;
    }
    for (const [i, candle] of appended.entries()) writeCandleRow(stored.rows, stored.start + kept + i, candle);
    stored.length = view.length;
    return stored.rows[stored.start * ROW_FIELDS] === view.get(0).openTime;
  }

  private rewrite(stored: StoredSeries, view: CandleSeriesView): void {
    const length = view.length;
    if (!stored.owned || stored.rows.length < length * ROW_FIELDS) {
      stored.rows = sharedCandleRows(Math.max(1, length + slackFor(length)));
      stored.owned = true;
    }
    // A new generation even in place: rows a thread was handed changed, so what it computed from them
    // (carriedResults.ts keeps results across ticks by slot) must not be taken for this slot's.
    stored.generation++;
    for (let i = 0; i < length; i++) writeCandleRow(stored.rows, i, view.get(i));
    stored.start = 0;
    stored.length = length;
  }
}

/** A series as a thread reads it this tick. */
export interface SeriesRows {
  id: number;
  /** The buffer's generation: a rewritten history is a new one (what carriedResults.ts keys on). */
  generation: number;
  /** The series' interval (results learned on one series apply to the same interval of other symbols: resultBoard.ts). */
  interval: string;
  rows: Float64Array;
  start: number;
  length: number;
}

/**
 * Thread side: the buffers handed over so far, and this tick's slots. Rows are read in place;
 * nothing here copies market data.
 */
export class SeriesTable {
  private readonly buffers = new Map<number, { generation: number; rows: Float64Array }>();
  private slots = new Map<string, SeriesSlot>();
  private rowsById = new Map<number, SeriesRows>();

  /** Take newly handed buffers, forget dropped ones, and take this tick's slots (by series key). */
  beginTick(buffers: readonly SeriesBuffer[], dropped: readonly number[], slots: Record<string, SeriesSlot>): void {
    for (const id of dropped) this.buffers.delete(id);
    for (const { id, generation, buffer } of buffers) this.buffers.set(id, { generation, rows: new Float64Array(buffer) });
    this.slots = new Map();
    this.rowsById = new Map();
    for (const [key, slot] of Object.entries(slots)) {
      const [id, generation, start, length] = slot;
      const held = this.buffers.get(id);
      // The pool hands every buffer before the tick that names it; a gap is a bug, and the thread restarts.
      if (!held || held.generation !== generation) throw new Error(`series ${key} names buffer ${id}/${generation}, which this thread was never handed`);
      if (length === 0) continue;
      this.slots.set(key, slot);
      this.rowsById.set(id, { id, generation, interval: key.slice(key.lastIndexOf('|') + 1), rows: held.rows, start, length });
    }
  }

  /** This tick's slot of a series, or undefined when the series is not part of the tick. */
  slot(key: string): SeriesSlot | undefined {
    return this.slots.get(key);
  }

  /** This tick's rows of a series by id. */
  rows(id: number): SeriesRows | undefined {
    return this.rowsById.get(id);
  }

  buffer(id: number): SharedArrayBuffer | undefined {
    return this.buffers.get(id)?.rows.buffer as SharedArrayBuffer | undefined;
  }
}
