// Test support for the screening tests: a deterministic random-walk market behind the real MarketView ports.
import type { Candle, HelpersVersion, Interval, Ticker, Trader } from '../src/domain.ts';
import { candleCloseTime, intervalMs, INTERVALS } from '../src/domain.ts';
import type { CandleOrigin } from '../src/domain.ts';
import type { CandleSeriesView, MarketView, ScreenerRun, TraderTickOutcome } from '../src/ports.ts';
import { createHash } from 'node:crypto';
import { seededRandom } from '../dev/seededRandom.ts';
import { systemClock } from '../src/clock.ts';
import { silentLogger } from '../src/logger.ts';
import { Screener } from '../src/screening/Screener.ts';
import { hvnInterval, tickerFields } from '../src/screening/contract.ts';
import type { TraderSpec } from '../src/screening/protocol.ts';
import { SharedSeriesStore, seriesKey, type SeriesBuffer, type SeriesSlot } from '../src/screening/sharedSeries.ts';

/** Every run sees the same market. */
export { seededRandom };

/** A random walk of closed candles ending with the candle that opens at `lastOpenTime`. */
export function randomWalk(options: { seed: number; count: number; interval: Interval; lastOpenTime: number; start?: number }): Candle[] {
  const random = seededRandom(options.seed);
  const step = intervalMs(options.interval);
  const candles: Candle[] = [];
  let price = options.start ?? 100 + random() * 50;
  for (let i = 0; i < options.count; i++) {
    const openTime = options.lastOpenTime - (options.count - 1 - i) * step;
    const open = price;
    const close = Math.max(0.0001, open * (1 + (random() - 0.5) * 0.04));
    const high = Math.max(open, close) * (1 + random() * 0.01);
    const low = Math.min(open, close) * (1 - random() * 0.01);
    const volume = 100 + random() * 1000 * (random() < 0.05 ? 8 : 1);
    const takerBuy = volume * random();
    candles.push({
      openTime,
      open,
      high,
      low,
      close,
      volume,
      closeTime: candleCloseTime(options.interval, openTime),
      quoteVolume: volume * close,
      trades: Math.floor(50 + random() * 500),
      takerBuyBaseVolume: takerBuy,
      takerBuyQuoteVolume: takerBuy * close,
    });
    price = close;
  }
  return candles;
}

/** Candles as the browser's 12-field klines with numeric values. */
export function toKlines(candles: Candle[]): number[][] {
  return candles.map((c) => [c.openTime, c.open, c.high, c.low, c.close, c.volume, c.closeTime, c.quoteVolume, c.trades, c.takerBuyBaseVolume, c.takerBuyQuoteVolume, 0]);
}

class ArraySeries implements CandleSeriesView {
  readonly symbol: string;
  readonly interval: Interval;
  version = 1;
  candles: Candle[];
  constructor(symbol: string, interval: Interval, candles: Candle[]) {
    this.symbol = symbol;
    this.interval = interval;
    this.candles = candles;
  }
  get length(): number {
    return this.candles.length;
  }
  get(i: number): Candle {
    const candle = this.candles[i];
    if (!candle) throw new RangeError(`index ${i}`);
    return candle;
  }
  since(openTime: number): Candle[] {
    return this.candles.filter((c) => c.openTime > openTime);
  }
  lastClosed(): Candle | undefined {
    return this.candles[this.candles.length - 1];
  }
  originOf(openTime: number): CandleOrigin | undefined {
    return this.candles.some((c) => c.openTime === openTime) ? 'backfill' : undefined;
  }
}

/** A small real MarketView over in-memory arrays: random walks per (symbol, interval) and a ticker from the 1m series. */
export class TestMarket implements MarketView {
  private readonly data = new Map<string, Map<Interval, ArraySeries>>();
  private readonly tickers = new Map<string, Ticker>();

  static build(options: { symbols: string[]; intervals: Interval[]; candles: number; lastCloseTime: number; seed?: number }): TestMarket {
    const market = new TestMarket();
    options.symbols.forEach((symbol, s) => {
      for (const interval of options.intervals) {
        const lastOpenTime = Math.floor((options.lastCloseTime + 1) / intervalMs(interval)) * intervalMs(interval) - intervalMs(interval);
        const seed = (options.seed ?? 1) * 7919 + s * 101 + INTERVALS.indexOf(interval);
        market.setSeries(symbol, interval, randomWalk({ seed, count: options.candles, interval, lastOpenTime }));
      }
      const last = market.series(symbol, options.intervals[0]!)!.lastClosed()!;
      market.setTicker({
        symbol,
        eventTime: last.closeTime,
        lastPrice: last.close,
        priceChange: last.close - last.open,
        priceChangePercent: ((last.close - last.open) / last.open) * 100,
        weightedAvgPrice: (last.high + last.low) / 2,
        openPrice: last.open,
        highPrice: last.high,
        lowPrice: last.low,
        volume: last.volume * 1000,
        quoteVolume: last.quoteVolume * 1000 + s * 1e6,
        tradeCount: 1000 + s,
      });
    });
    return market;
  }

  setSeries(symbol: string, interval: Interval, candles: Candle[]): void {
    let bySymbol = this.data.get(symbol);
    if (!bySymbol) this.data.set(symbol, (bySymbol = new Map()));
    const existing = bySymbol.get(interval);
    if (existing) {
      existing.candles = candles;
      existing.version++;
    } else {
      bySymbol.set(interval, new ArraySeries(symbol, interval, candles));
    }
  }

  /** Append a closed candle (dropping the oldest), as a live market would. */
  append(symbol: string, interval: Interval, candle: Candle): void {
    const series = this.data.get(symbol)!.get(interval)!;
    series.candles = [...series.candles.slice(1), candle];
    series.version++;
  }

  setTicker(ticker: Ticker): void {
    this.tickers.set(ticker.symbol, ticker);
  }

  symbols(): string[] {
    return [...this.data.keys()];
  }

  series(symbol: string, interval: Interval): CandleSeriesView | undefined {
    return this.data.get(symbol)?.get(interval);
  }

  ticker(symbol: string): Ticker | undefined {
    return this.tickers.get(symbol);
  }
}

let traderCounter = 0;

/** A valid Trader row around a filter body. */
export function makeTrader(
  code: string,
  options: { id?: string; refreshInterval?: Interval; requiredTimeframes?: Interval[]; updatedAt?: string; helpers?: HelpersVersion } = {},
): Trader {
  const refreshInterval = options.refreshInterval ?? '1m';
  const required = options.requiredTimeframes ?? [];
  const timeframes = INTERVALS.filter((i) => i === refreshInterval || required.includes(i));
  traderCounter++;
  return {
    id: options.id ?? `00000000-0000-4000-8000-${String(traderCounter).padStart(12, '0')}`,
    userId: '11111111-1111-4111-8111-111111111111',
    name: `trader ${traderCounter}`,
    enabled: true,
    executionMode: 'cloud',
    filter: { code, description: [], refreshInterval, requiredTimeframes: required, indicators: [], helpers: options.helpers ?? 'webapp' },
    timeframes,
    codeHash: createHash('sha256').update(code).digest('hex'),
    updatedAt: options.updatedAt ?? '2026-01-01T00:00:00.000Z',
  };
}

/**
 * A started Screener with one thread (every trader shares it, and its memo, with the others), 16 MB per trader, on the
 * system clock, silent: the sandbox the screening tests run filters in. The caller stops it.
 */
export async function startTestScreener(options: { filterTimeoutMs: number; failureLimit?: number }): Promise<Screener> {
  const screener = new Screener({ threads: 1, filterTimeoutMs: options.filterTimeoutMs, filterMemoryMb: 16, failureLimit: options.failureLimit ?? 100, clock: systemClock, logger: silentLogger() });
  await screener.start();
  return screener;
}

/** One 1m tick of `traders` over `symbols`: each trader's outcome, in the order given, and the tick they ran on. */
export async function screenTick(screener: Screener, traders: Trader[], symbols: string[], market: MarketView): Promise<{ outcomes: TraderTickOutcome[]; tick: ScreenerRun }> {
  screener.setTraders(traders);
  const tick: ScreenerRun = { interval: '1m', candleOpenTime: 0, traderIds: traders.map((t) => t.id), symbols, market };
  const result = await screener.run(tick);
  return { outcomes: traders.map((trader) => result.traders.find((t) => t.traderId === trader.id)!), tick };
}

/**
 * What the pool hands a screening thread driven directly (ThreadScreener.tick): each series' slot, the buffers it has
 * not been handed yet (once per buffer and generation, as the pool does), and the tickers.
 */
/** A trader as a screening thread is handed it (the Screener's setTraders does the same). */
export function threadSpec(t: Trader): TraderSpec {
  return { id: t.id, code: t.filter.code, codeHash: t.codeHash, updatedAt: t.updatedAt, refreshInterval: t.filter.refreshInterval, timeframes: t.timeframes, hvnInterval: hvnInterval(t.filter), helpers: t.filter.helpers ?? 'webapp' };
}

export class ThreadTickFeed {
  private readonly store = new SharedSeriesStore();
  private readonly handed = new Map<number, number>();

  inputs(market: MarketView, symbols: readonly string[], intervals: readonly Interval[]): { slots: Record<string, SeriesSlot>; buffers: SeriesBuffer[]; tickers: Record<string, Record<string, string>> } {
    const slots: Record<string, SeriesSlot> = {};
    const buffers: SeriesBuffer[] = [];
    const tickers: Record<string, Record<string, string>> = {};
    for (const symbol of symbols) {
      tickers[symbol] = tickerFields(symbol, market.ticker(symbol), market.series(symbol, '1m')?.lastClosed()?.close);
      for (const interval of intervals) {
        const slot = this.store.sync(market, symbol, interval, Date.now())!;
        slots[seriesKey(symbol, interval)] = slot;
        if (this.handed.get(slot[0]) !== slot[1]) {
          buffers.push(this.store.buffer(slot[0])!);
          this.handed.set(slot[0], slot[1]);
        }
      }
    }
    return { slots, buffers, tickers };
  }
}
