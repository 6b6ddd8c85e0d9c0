// The market-data facade: universe → backfill → streams, gap fills after disconnects, live interval and universe changes.
import { EventEmitter } from 'node:events';
import type { Clock, TimerHandle } from '../clock.ts';
import { candleOpenTimeAt, intervalMs, INTERVALS, type CandleOrigin, type Interval } from '../domain.ts';
import { LifecycleGuard } from '../lifecycle.ts';
import type { Logger } from '../logger.ts';
import type { ConnectionStateEvent, GapFilledEvent, LifecycleState, MarketDataSource, MarketDataStatus } from '../ports.ts';
import { backoffDelay } from '../backoff.ts';
import type { BinanceRestClient } from './BinanceRestClient.ts';
import type { BinanceWebSocketClient, KlineEvent, ReconnectedEvent } from './BinanceWebSocketClient.ts';
import type { MarketStore } from './MarketStore.ts';
import type { Universe, UniverseChange } from './Universe.ts';
import { compactHeap } from '../heap.ts';

export interface MarketDataOptions {
  rest: Pick<BinanceRestClient, 'klines'>;
  ws: BinanceWebSocketClient;
  store: MarketStore;
  universe: Universe;
  history: number;
  clock: Clock;
  logger: Logger;
}

type Events = {
  gapFilled: [GapFilledEvent];
  connection: [ConnectionStateEvent];
  universeChanged: [UniverseChange];
};

/** A series not screenable until REST fills it: a missed stretch after a disconnect, or no history yet. */
interface Gap {
  symbol: string;
  interval: Interval;
  since: number;
  attempt: number;
  /** The retry already scheduled, so failures of fills started elsewhere (a late tick) do not start a second chain. */
  retry: TimerHandle | undefined;
  /** New series (an interval or symbol added at run time): load the whole history, not just the stretch after the last candle. */
  needsBackfill: boolean;
}

/** REST returns at most 1000 klines per request. */
const MAX_KLINES_PER_REQUEST = 1000;

export class MarketData extends EventEmitter<Events> implements MarketDataSource {
  private readonly options: MarketDataOptions;
  private readonly log: Logger;
  private readonly lifecycle = new LifecycleGuard('MarketData');
  private currentSymbols: string[] = [];
  private currentIntervals: Interval[] = [];
  private backfilled = false;
  /** Series that missed stream data (or are not backfilled yet): not screenable until filled. */
  private readonly gaps = new Map<string, Gap>();
  private readonly fills = new Map<string, Promise<void>>();
  private readonly retryTimers = new Set<TimerHandle>();
  private readonly onKline = (event: KlineEvent) => {
    // Streams being unsubscribed may still deliver a few frames; they must not recreate a series.
    if (!this.currentSymbolSet.has(event.symbol) || !this.currentIntervals.includes(event.interval)) return;
    this.options.store.applyCandle(event.symbol, event.interval, event.candle, event.closed, 'stream', event.receivedAt);
  };
  private readonly onTicker = (ticker: Parameters<MarketStore['applyTicker']>[0]) => {
    if (this.currentSymbolSet.has(ticker.symbol)) this.options.store.applyTicker(ticker);
  };
  private readonly onReconnected = (event: ReconnectedEvent) => this.markGaps(event);
  private readonly onConnection = (event: ConnectionStateEvent) => this.emit('connection', event);
  private readonly onUniverseChanged = (change: UniverseChange) => void this.applyUniverseChange(change);
  private currentSymbolSet = new Set<string>();

  constructor(options: MarketDataOptions) {
    super();
    this.options = options;
    this.log = options.logger.child({ component: 'market' });
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  get candles(): MarketStore {
    return this.options.store;
  }

  /** Resolves when every (symbol, interval) is backfilled and every stream connection is open. */
  start(intervals: Interval[] = []): Promise<void> {
    return this.lifecycle.start(async () => {
      const { ws, universe } = this.options;
      ws.on('kline', this.onKline);
      ws.on('ticker', this.onTicker);
      ws.on('reconnected', this.onReconnected);
      ws.on('connection', this.onConnection);
      universe.on('changed', this.onUniverseChanged);
      const resolved = await universe.resolve();
      this.setSymbols(resolved.symbols);
      this.currentIntervals = sortIntervals(intervals);
      const started = this.options.clock.now();
      await this.backfillAll(this.currentSymbols, this.currentIntervals);
      await ws.setStreams({ symbols: this.currentSymbols, intervals: this.currentIntervals });
      await ws.start();
      // Closes between the backfill and the streams opening were sent to nobody: catch up by REST.
      await this.catchUp(this.currentSymbols, this.currentIntervals);
      await universe.start();
      // The backfill's parsed responses are garbage now; without this V8 keeps the heap it grew for them:
      // the worker measured 301-308 MB at ready without it, 209-215 MB with it (200 symbols x 4 intervals,
      // issue #14), and 378-384 against 308-339 MB after ticks.
      compactHeap();
      this.backfilled = true;
      this.log.info({ event: 'market_ready', symbols: this.currentSymbols.length, intervals: this.currentIntervals, ms: this.options.clock.now() - started }, 'market data ready');
    });
  }

  stop(): Promise<void> {
    return this.lifecycle.stop(async () => {
      const { ws, universe } = this.options;
      for (const timer of this.retryTimers) this.options.clock.clearTimeout(timer);
      this.retryTimers.clear();
      await universe.stop();
      await ws.stop();
      ws.off('kline', this.onKline);
      ws.off('ticker', this.onTicker);
      ws.off('reconnected', this.onReconnected);
      ws.off('connection', this.onConnection);
      universe.off('changed', this.onUniverseChanged);
      await Promise.allSettled([...this.fills.values()]);
      this.backfilled = false;
    });
  }

  async setIntervals(intervals: Interval[]): Promise<void> {
    const next = sortIntervals(intervals);
    const added = next.filter((interval) => !this.currentIntervals.includes(interval));
    const removed = this.currentIntervals.filter((interval) => !next.includes(interval));
    this.currentIntervals = next;
    if (this.state !== 'running' && this.state !== 'starting') return;
    for (const interval of removed) {
      this.options.store.removeInterval(interval);
      for (const symbol of this.currentSymbols) this.gaps.delete(key(symbol, interval));
    }
    for (const symbol of this.currentSymbols) for (const interval of added) this.markGap(symbol, interval, { needsBackfill: true });
    // Subscribe first, then backfill: the store merges both, and nothing closes unseen in between.
    await this.options.ws.setStreams({ symbols: this.currentSymbols, intervals: next });
    await this.backfillOrRetry(this.currentSymbols, added);
  }

  /**
   * The one judge of completeness, for the scheduler and the tick runner alike: the series holds the closed candle
   * `closedOpenTime` and may be trusted up to its newest candle, because no gap is pending on it (a reconnect, a
   * failed fill or a missing backfill marks one, and only a successful REST fill clears it). A series already past
   * the candle counts: a tick that waited screens it as it stood at that close.
   */
  isComplete(symbol: string, interval: Interval, closedOpenTime: number): boolean {
    if (this.gaps.has(key(symbol, interval))) return false;
    const series = this.options.store.series(symbol, interval);
    const last = series?.lastOpenTime();
    if (series === undefined || last === undefined || last < closedOpenTime) return false;
    return last === closedOpenTime || series.has(closedOpenTime);
  }

  /** Bring one series up to date by REST now; concurrent calls share one request. */
  fillSeries(symbol: string, interval: Interval): Promise<void> {
    const id = key(symbol, interval);
    let fill = this.fills.get(id);
    if (!fill) {
      fill = this.fillNow(symbol, interval).finally(() => this.fills.delete(id));
      this.fills.set(id, fill);
    }
    return fill;
  }

  symbols(): string[] {
    return [...this.currentSymbols];
  }

  intervals(): Interval[] {
    return [...this.currentIntervals];
  }

  status(): MarketDataStatus {
    const ws = this.options.ws.stats();
    return {
      symbols: this.currentSymbols.length,
      intervals: this.currentIntervals.length,
      streams: ws.streams,
      connectionsOpen: ws.connectionsOpen,
      connectionsExpected: this.options.ws.connectionCount(),
      backfilled: this.backfilled,
      pendingGaps: this.gaps.size,
    };
  }

  private setSymbols(symbols: string[]): void {
    this.currentSymbols = [...symbols];
    this.currentSymbolSet = new Set(symbols);
  }

  private async backfillAll(symbols: readonly string[], intervals: readonly Interval[]): Promise<void> {
    // All at once: the REST client bounds concurrency and paces by weight.
    await Promise.all(symbols.flatMap((symbol) => intervals.map((interval) => this.backfillSeries(symbol, interval))));
  }

  /** The latest `history` closed candles, paging backwards when history exceeds one request. */
  private async backfillSeries(symbol: string, interval: Interval): Promise<void> {
    const { rest, store, history } = this.options;
    let endTime: number | undefined;
    let stored = 0;
    while (stored < history) {
      const limit = Math.min(MAX_KLINES_PER_REQUEST, history - stored + 1);
      const rows = await rest.klines(symbol, interval, endTime === undefined ? { limit } : { endTime, limit });
      if (!this.currentSymbolSet.has(symbol) || !this.currentIntervals.includes(interval)) return;
      for (const row of rows) {
        if (!row.closed) continue;
        store.applyCandle(symbol, interval, row.candle, true, 'backfill', this.options.clock.now());
        stored++;
      }
      if (rows.length < limit || rows.length === 0) break;
      endTime = rows[0]!.candle.openTime - 1;
    }
    this.gaps.delete(key(symbol, interval));
  }

  /**
   * Backfills at run time (an interval or a symbol added): a series that fails stays marked as a gap,
   * so it is never screened short, and is retried with backoff until it loads. Resolves once every
   * series is either loaded or scheduled for a retry.
   */
  private async backfillOrRetry(symbols: readonly string[], intervals: readonly Interval[]): Promise<void> {
    const pairs = symbols.flatMap((symbol) => intervals.map((interval) => [symbol, interval] as const));
    const results = await Promise.allSettled(pairs.map(([symbol, interval]) => this.backfillSeries(symbol, interval)));
    results.forEach((result, index) => {
      if (result.status === 'fulfilled') return;
      const [symbol, interval] = pairs[index]!;
      const gap = this.gaps.get(key(symbol, interval));
      if (gap) this.retryGap(symbol, interval, gap, result.reason);
    });
  }

  private async catchUp(symbols: readonly string[], intervals: readonly Interval[]): Promise<void> {
    const now = this.options.clock.now();
    const behind: Array<Promise<void>> = [];
    for (const symbol of symbols) {
      for (const interval of intervals) {
        const expected = candleOpenTimeAt(interval, now) - intervalMs(interval);
        const last = this.options.store.series(symbol, interval)?.lastOpenTime();
        if (last === undefined || last < expected) behind.push(this.fillSeries(symbol, interval));
      }
    }
    await Promise.all(behind);
  }

  private markGaps(event: ReconnectedEvent): void {
    const intervals = event.intervals.filter((interval) => this.currentIntervals.includes(interval));
    const symbols = event.symbols.filter((symbol) => this.currentSymbolSet.has(symbol));
    this.log.info({ event: 'stream_gap', connectionId: event.connectionId, symbols: symbols.length, intervals, since: event.disconnectedAt }, 'stream gap, filling by REST');
    for (const symbol of symbols) {
      for (const interval of intervals) {
        this.markGap(symbol, interval, { since: event.disconnectedAt });
        void this.fillSeries(symbol, interval).catch(() => undefined);
      }
    }
  }

  private markGap(symbol: string, interval: Interval, options: { since?: number; needsBackfill?: boolean } = {}): void {
    const id = key(symbol, interval);
    const existing = this.gaps.get(id);
    if (existing) {
      existing.needsBackfill ||= options.needsBackfill ?? false;
      return;
    }
    this.gaps.set(id, { symbol, interval, since: options.since ?? this.options.clock.now(), attempt: 0, retry: undefined, needsBackfill: options.needsBackfill ?? false });
  }

  private async fillNow(symbol: string, interval: Interval): Promise<void> {
    const { rest, store, clock } = this.options;
    const last = store.series(symbol, interval)?.lastOpenTime();
    const gap = this.gaps.get(key(symbol, interval));
    if (last === undefined || gap?.needsBackfill === true) {
      try {
        await this.backfillSeries(symbol, interval);
      } catch (error) {
        if (gap) this.retryGap(symbol, interval, gap, error);
        throw error;
      }
      return;
    }
    let filled = 0;
    let from = last + 1;
    let lastFilled = last;
    try {
      while (true) {
        const rows = await rest.klines(symbol, interval, { startTime: from, limit: MAX_KLINES_PER_REQUEST });
        if (!this.currentSymbolSet.has(symbol) || !this.currentIntervals.includes(interval)) return;
        const origin: CandleOrigin = 'gapfill';
        for (const row of rows) {
          if (!row.closed) continue;
          if (store.applyCandle(symbol, interval, row.candle, true, origin, clock.now()) === 'closed') filled++;
          lastFilled = Math.max(lastFilled, row.candle.openTime);
        }
        if (rows.length < MAX_KLINES_PER_REQUEST) break;
        from = rows[rows.length - 1]!.candle.openTime + 1;
      }
    } catch (error) {
      const pending = gap ?? this.failedFillGap(symbol, interval);
      if (pending) this.retryGap(symbol, interval, pending, error);
      throw error;
    }
    this.gaps.delete(key(symbol, interval));
    if (gap || filled > 0) {
      const event: GapFilledEvent = { symbol, interval, candles: filled, fromOpenTime: last + intervalMs(interval), toOpenTime: lastFilled };
      this.log.info({ event: 'stream_gap_filled', symbol, interval, candles: filled }, 'gap filled');
      this.emit('gapFilled', event);
    }
  }

  /**
   * A fill of a series with no gap marked (a late close fetched by a tick) failed: the series may now miss that
   * close for good, since the stream never resends it. Marked as a gap, it is judged incomplete and retried until filled.
   */
  private failedFillGap(symbol: string, interval: Interval): Gap | undefined {
    if (!this.currentSymbolSet.has(symbol) || !this.currentIntervals.includes(interval)) return undefined;
    this.markGap(symbol, interval);
    return this.gaps.get(key(symbol, interval));
  }

  private retryGap(symbol: string, interval: Interval, gap: Gap, error: unknown): void {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    const event = gap.needsBackfill ? 'backfill_failed' : 'stream_gap_fill_failed';
    // One retry chain per gap: a fill that someone else started and that failed too waits for the same retry.
    if (gap.retry !== undefined) return;
    const delay = backoffDelay(gap.attempt++, { baseMs: 1_000, maxMs: 60_000 });
    this.log.warn({ event, symbol, interval, attempt: gap.attempt, delay, error: (error as Error).message }, 'series fill failed, retrying');
    const timer = this.options.clock.setTimeout(() => {
      this.retryTimers.delete(timer);
      gap.retry = undefined;
      if (this.gaps.get(key(symbol, interval)) === gap) void this.fillSeries(symbol, interval).catch(() => undefined);
    }, delay);
    gap.retry = timer;
    this.retryTimers.add(timer);
  }

  private async applyUniverseChange(change: UniverseChange): Promise<void> {
    if (this.state !== 'running') return;
    for (const symbol of change.removed) this.options.store.removeSymbol(symbol);
    for (const symbol of change.removed) for (const interval of INTERVALS) this.gaps.delete(key(symbol, interval));
    this.setSymbols(change.symbols);
    for (const symbol of change.added) for (const interval of this.currentIntervals) this.markGap(symbol, interval, { needsBackfill: true });
    this.emit('universeChanged', change);
    try {
      await this.options.ws.setStreams({ symbols: this.currentSymbols, intervals: this.currentIntervals });
      await this.backfillOrRetry(change.added, this.currentIntervals);
    } catch (error) {
      this.log.warn({ event: 'universe_apply_failed', error: (error as Error).message }, 'universe change not fully applied');
    }
  }
}

function key(symbol: string, interval: Interval): string {
  return `${symbol}|${interval}`;
}

function sortIntervals(intervals: readonly Interval[]): Interval[] {
  return INTERVALS.filter((interval) => intervals.includes(interval));
}
