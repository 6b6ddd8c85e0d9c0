// The only owner of market data: bounded numeric rows of closed candles per (symbol, interval) in shared memory, the forming candle, tickers and their snapshots at recent closes.
import type { Clock } from '../clock.ts';
import { CANDLE_ROW_FIELDS, type Candle, readCandleRow, sharedCandleRows, type CandleOrigin, type Interval, type Ticker, writeCandleRow } from '../domain.ts';
import type { CandleClosedEvent, CandleSeriesView, MarketView, SharedCandleRows } from '../ports.ts';

export type ApplyResult = 'closed' | 'updated' | 'duplicate' | 'stale';

const FIELDS = CANDLE_ROW_FIELDS;
const ORIGINS: readonly CandleOrigin[] = ['stream', 'backfill', 'gapfill'];
const ORIGIN_CODE: Record<CandleOrigin, number> = { stream: 0, backfill: 1, gapfill: 2 };

/** Rows past the history, so an append writes after the last row and only every `slack` appends moves the rows to a new buffer. */
function slackFor(history: number): number {
  return Math.max(16, Math.ceil(history / 8));
}

/**
 * Closed candles of one (symbol, interval), oldest first, as rows of 11 numbers from row `start`
 * of a Float64Array over a SharedArrayBuffer. Rows beat per-candle objects by about 5× in memory
 * (200 × 4 × 500 candles: ~39 MB versus ~180 MB) and keep the GC out of the ingest path; shared
 * memory lets the screening threads read these very rows (sharedRows) instead of a second copy.
 *
 * Threads read while ingest writes, so a row once handed out is never rewritten: an append writes
 * past the last row (dropping the oldest only moves `start`); a full buffer, a changed candle or a
 * late one in the middle move the rows to a fresh buffer first (once per `slack` appends, or rarely).
 */
export class CandleSeries implements CandleSeriesView {
  readonly symbol: string;
  readonly interval: Interval;
  private readonly capacity: number;
  private readonly rowCapacity: number;
  private rows: Float64Array;
  private origins: Uint8Array;
  private start = 0;
  private count = 0;
  private changes = 0;

  constructor(symbol: string, interval: Interval, capacity: number) {
    this.symbol = symbol;
    this.interval = interval;
    this.capacity = capacity;
    this.rowCapacity = capacity + slackFor(capacity);
    this.rows = sharedCandleRows(this.rowCapacity);
    this.origins = new Uint8Array(this.rowCapacity);
  }

  get length(): number {
    return this.count;
  }

  get version(): number {
    return this.changes;
  }

  get(i: number): Candle {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) throw new RangeError(`index ${i} outside 0..${this.count - 1}`);
    return this.read(this.slot(i));
  }

  since(openTime: number): Candle[] {
    const candles: Candle[] = [];
    for (let i = this.indexAfter(openTime); i < this.count; i++) candles.push(this.read(this.slot(i)));
    return candles;
  }

  lastClosed(): Candle | undefined {
    return this.count === 0 ? undefined : this.read(this.slot(this.count - 1));
  }

  /** Open time of the newest closed candle, without building a Candle. */
  lastOpenTime(): number | undefined {
    return this.count === 0 ? undefined : this.rows[this.slot(this.count - 1) * FIELDS]!;
  }

  originOf(openTime: number): CandleOrigin | undefined {
    const index = this.indexOf(openTime);
    return index < 0 ? undefined : ORIGINS[this.origins[this.slot(index)]!];
  }

  has(openTime: number): boolean {
    return this.indexOf(openTime) >= 0;
  }

  sharedRows(): SharedCandleRows {
    return { buffer: this.rows.buffer as SharedArrayBuffer, start: this.start, length: this.count };
  }

  get bytes(): number {
    return this.rows.byteLength + this.origins.byteLength;
  }

  /** Insert or overwrite a closed candle, keeping open-time order. */
  put(candle: Candle, origin: CandleOrigin): 'inserted' | 'same' | 'changed' | 'stale' {
    const existing = this.indexOf(candle.openTime);
    if (existing >= 0) {
      if (this.equals(this.slot(existing), candle)) return 'same';
      this.moveToFreshBuffer();
      this.write(this.slot(existing), candle);
      this.changes++;
      return 'changed';
    }
    let position = this.indexAfter(candle.openTime);
    if (this.count === this.capacity) {
      // Full: a candle older than everything held has no place in the window.
      if (position === 0) return 'stale';
      // Dropping the oldest row only moves `start`: the row stays as it was for whoever reads it.
      this.start++;
      this.count--;
      position--;
    }
    if (position === this.count) {
      // Appending, the common case: written past every row handed out.
      if (this.start + this.count === this.rowCapacity) this.moveToFreshBuffer();
    } else {
      // A late candle shifts the newer ones, which readers may hold.
      this.moveToFreshBuffer();
      for (let i = this.count; i > position; i--) {
        const to = this.slot(i);
        const from = this.slot(i - 1);
        this.rows.copyWithin(to * FIELDS, from * FIELDS, from * FIELDS + FIELDS);
        this.origins[to] = this.origins[from]!;
      }
    }
    const slot = this.slot(position);
    this.write(slot, candle);
    this.origins[slot] = ORIGIN_CODE[origin];
    this.count++;
    this.changes++;
    return 'inserted';
  }

  /** The held rows copied to the front of a new buffer; the old one is left as it was for its readers. */
  private moveToFreshBuffer(): void {
    const rows = sharedCandleRows(this.rowCapacity);
    rows.set(this.rows.subarray(this.start * FIELDS, (this.start + this.count) * FIELDS));
    const origins = new Uint8Array(this.rowCapacity);
    origins.set(this.origins.subarray(this.start, this.start + this.count));
    this.rows = rows;
    this.origins = origins;
    this.start = 0;
  }

  private slot(i: number): number {
    return this.start + i;
  }

  private openTimeAt(i: number): number {
    return this.rows[this.slot(i) * FIELDS]!;
  }

  /** Index of the first candle with openTime > `openTime`. */
  private indexAfter(openTime: number): number {
    let low = 0;
    let high = this.count;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.openTimeAt(mid) <= openTime) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  private indexOf(openTime: number): number {
    const after = this.indexAfter(openTime);
    return after > 0 && this.openTimeAt(after - 1) === openTime ? after - 1 : -1;
  }

  private read(slot: number): Candle {
    return readCandleRow(this.rows, slot);
  }

  private write(slot: number, c: Candle): void {
    writeCandleRow(this.rows, slot, c);
  }

  private equals(slot: number, c: Candle): boolean {
    const r = this.rows;
    const o = slot * FIELDS;
    return (
      r[o + 1] === c.open &&
      r[o + 2] === c.high &&
      r[o + 3] === c.low &&
      r[o + 4] === c.close &&
      r[o + 5] === c.volume &&
      r[o + 6] === c.closeTime &&
      r[o + 7] === c.quoteVolume &&
      r[o + 8] === c.trades &&
      r[o + 9] === c.takerBuyBaseVolume &&
      r[o + 10] === c.takerBuyQuoteVolume
    );
  }
}

interface SymbolData {
  series: Map<Interval, CandleSeries>;
  forming: Map<Interval, Candle>;
  /** Per candle boundary (close time + 1), the ticker held when the first stream close at that boundary arrived. */
  tickerAtClose: Map<number, Ticker>;
  /** Per interval, the boundaries of its last few stream closes that took or reused a snapshot, oldest first. */
  snapshotBoundaries: Map<Interval, number[]>;
}

/**
 * Ticker snapshots kept per (symbol, interval): the latest close, the one before it (the rising-edge
 * check evaluates it) and the few a tick may wait behind (the scheduler queues at most 5 candles).
 */
export const TICKER_SNAPSHOTS_PER_INTERVAL = 8;

type CandleClosedListener = (event: CandleClosedEvent) => void;

export interface MarketStoreOptions {
  history: number;
  clock: Clock;
  /** Told about a 'candleClosed' listener that threw; the store itself carries on. */
  onListenerError?: (error: unknown, event: CandleClosedEvent) => void;
}

export class MarketStore implements MarketView {
  private readonly history: number;
  private readonly clock: Clock;
  private readonly onListenerError: ((error: unknown, event: CandleClosedEvent) => void) | undefined;
  private readonly data = new Map<string, SymbolData>();
  private readonly tickers = new Map<string, Ticker>();
  private readonly closedListeners = new Set<CandleClosedListener>();
  private failedListenerCalls = 0;

  constructor(options: MarketStoreOptions) {
    if (!Number.isInteger(options.history) || options.history < 1) throw new RangeError(`history must be a positive integer, got ${options.history}`);
    this.history = options.history;
    this.clock = options.clock;
    this.onListenerError = options.onListenerError;
  }

  /** 'candleClosed' listeners that threw since start: each one is isolated and counted, never fatal to ingest. */
  get listenerErrors(): number {
    return this.failedListenerCalls;
  }

  /**
   * Idempotent: the same candle twice, out of order, or from both REST and the stream ends as one
   * correct candle. A new closed candle is stored first, then announced once via 'candleClosed'.
   * Backfilled candles are history and are stored silently: a boot backfill is hundreds of
   * thousands of candles, and no consumer acts on a close that happened before it was listening.
   * Stream closes and gap fills (the closes a disconnect hid) are announced.
   */
  applyCandle(symbol: string, interval: Interval, candle: Candle, closed: boolean, origin: CandleOrigin, receivedAt: number = this.clock.now()): ApplyResult {
    const entry = this.entry(symbol);
    let series = entry.series.get(interval);
    if (!series) {
      series = new CandleSeries(symbol, interval, this.history);
      entry.series.set(interval, series);
    }
    const lastClosed = series.lastOpenTime();
    const forming = entry.forming.get(interval);
    if (!closed) {
      if (lastClosed !== undefined && candle.openTime <= lastClosed) return series.has(candle.openTime) ? 'duplicate' : 'stale';
      if (forming && candle.openTime < forming.openTime) return 'stale';
      entry.forming.set(interval, { ...candle });
      return 'updated';
    }
    const outcome = series.put(candle, origin);
    if (outcome === 'stale') return 'stale';
    if (outcome === 'same') return 'duplicate';
    if (outcome === 'changed') return 'updated';
    if (forming && forming.openTime <= candle.openTime) entry.forming.delete(interval);
    if (origin === 'stream') this.snapshotTicker(symbol, entry, interval, candle.closeTime + 1);
    if (origin === 'backfill' || this.closedListeners.size === 0) return 'closed';
    const event: CandleClosedEvent = { symbol, interval, candle: { ...candle }, origin, receivedAt };
    for (const listener of this.closedListeners) {
      // One broken consumer must not cost the others their event, nor the ingest loop its frame.
      try {
        listener(event);
      } catch (error) {
        this.failedListenerCalls++;
        try {
          this.onListenerError?.(error, event);
        } catch {
          // The error reporter itself failed; the count above still records the failure.
        }
      }
    }
    return 'closed';
  }

  applyTicker(ticker: Ticker): void {
    const previous = this.tickers.get(ticker.symbol);
    if (previous && previous.eventTime > ticker.eventTime) return;
    this.tickers.set(ticker.symbol, ticker);
    this.entry(ticker.symbol);
  }

  /**
   * The ticker as of the close at `boundary` (a candle's close time + 1): the one held when that close arrived by
   * stream. Undefined when no stream close at that boundary was seen with a ticker (a close that came only by REST,
   * after a restart, or older than the last few closes): then nothing proves what the ticker was at that close.
   */
  tickerAt(symbol: string, boundary: number): Ticker | undefined {
    return this.data.get(symbol)?.tickerAtClose.get(boundary);
  }

  series(symbol: string, interval: Interval): CandleSeries | undefined {
    return this.data.get(symbol)?.series.get(interval);
  }

  forming(symbol: string, interval: Interval): Candle | undefined {
    const candle = this.data.get(symbol)?.forming.get(interval);
    return candle ? { ...candle } : undefined;
  }

  ticker(symbol: string): Ticker | undefined {
    return this.tickers.get(symbol);
  }

  symbols(): string[] {
    return [...this.data.keys()];
  }

  removeSymbol(symbol: string): void {
    this.data.delete(symbol);
    this.tickers.delete(symbol);
  }

  removeInterval(interval: Interval): void {
    for (const entry of this.data.values()) {
      entry.series.delete(interval);
      entry.forming.delete(interval);
      for (const boundary of entry.snapshotBoundaries.get(interval) ?? []) this.releaseSnapshot(entry, interval, boundary);
      entry.snapshotBoundaries.delete(interval);
    }
  }

  /** Bytes held by the candle buffers (the dominant cost; tickers and maps are small change). */
  memoryBytes(): number {
    let bytes = 0;
    for (const entry of this.data.values()) for (const series of entry.series.values()) bytes += series.bytes;
    return bytes;
  }

  on(event: 'candleClosed', listener: CandleClosedListener): this {
    if (event === 'candleClosed') this.closedListeners.add(listener);
    return this;
  }

  off(event: 'candleClosed', listener: CandleClosedListener): this {
    if (event === 'candleClosed') this.closedListeners.delete(listener);
    return this;
  }

  /**
   * Keep the ticker as it is now for the close at `boundary`. Several intervals close at one boundary (1m and 1h on
   * the hour): the first close to arrive takes the snapshot and the others share it, so every tick at that instant
   * sees the same ticker. Bounded: each interval keeps its last few boundaries; a snapshot no interval keeps is dropped.
   */
  private snapshotTicker(symbol: string, entry: SymbolData, interval: Interval, boundary: number): void {
    if (!entry.tickerAtClose.has(boundary)) {
      const ticker = this.tickers.get(symbol);
      if (ticker === undefined) return;
      entry.tickerAtClose.set(boundary, ticker);
    }
    const boundaries = entry.snapshotBoundaries.get(interval) ?? [];
    if (boundaries.includes(boundary)) return;
    boundaries.push(boundary);
    boundaries.sort((a, b) => a - b);
    entry.snapshotBoundaries.set(interval, boundaries);
    while (boundaries.length > TICKER_SNAPSHOTS_PER_INTERVAL) this.releaseSnapshot(entry, interval, boundaries.shift()!);
  }

  private releaseSnapshot(entry: SymbolData, interval: Interval, boundary: number): void {
    for (const [other, boundaries] of entry.snapshotBoundaries) if (other !== interval && boundaries.includes(boundary)) return;
    entry.tickerAtClose.delete(boundary);
  }

  private entry(symbol: string): SymbolData {
    let entry = this.data.get(symbol);
    if (!entry) {
      entry = { series: new Map(), forming: new Map(), tickerAtClose: new Map(), snapshotBoundaries: new Map() };
      this.data.set(symbol, entry);
    }
    return entry;
  }
}
