// A synthetic market for in-process benchmarks: seeded random walks written straight into a real MarketStore, advanced candle by candle.
import { normal, uniform } from '../../dev/binanceSim/random.ts';
import { candleCloseTime, intervalMs, type Interval } from '../../src/domain.ts';
import type { MarketStore } from '../../src/market/MarketStore.ts';

interface Walk {
  key: number;
  index: number;
  close: number;
}

/** Midnight UTC, 1 Jan 2026: an aligned start for every interval up to 1d. */
const EPOCH = Date.UTC(2026, 0, 1);

export function benchSymbols(count: number): string[] {
  return Array.from({ length: count }, (_, index) => `B${String(index).padStart(3, '0')}USDT`);
}

/**
 * Candles are drawn from a stateless generator (`uniform`/`normal` of the simulator) keyed by series
 * and index, so the same options give the same market in every process. The walk state is two numbers
 * per series; nothing is cached, so a memory measurement sees the store and not the generator.
 */
export class SyntheticMarket {
  readonly symbols: string[];
  readonly intervals: Interval[];
  private readonly history: number;
  private readonly walks = new Map<string, Walk>();
  /** Open time of the 1m candle forming now. */
  private formingOpenTime: number;

  constructor(options: { symbols: number; intervals: Interval[]; history: number; seed?: number }) {
    this.symbols = benchSymbols(options.symbols);
    this.intervals = [...options.intervals];
    this.history = options.history;
    const longest = Math.max(...this.intervals.map(intervalMs));
    // Far enough from the epoch that the longest interval has `history` candles behind it.
    this.formingOpenTime = EPOCH + (this.history + 2) * longest;
    const seed = options.seed ?? 1;
    this.symbols.forEach((symbol, s) => {
      this.intervals.forEach((interval, i) => {
        const key = (seed * 7919 + s * 131 + i) >>> 0;
        this.walks.set(`${symbol}|${interval}`, { key, index: 0, close: 20 + 200 * uniform(key, 1, 0) });
      });
    });
  }

  /** Open time of the newest closed candle of `interval`. */
  lastClosedOpenTime(interval: Interval): number {
    const length = intervalMs(interval);
    return Math.floor(this.formingOpenTime / length) * length - length;
  }

  /** `history` closed candles per series, oldest first, and a ticker per symbol. */
  fill(store: MarketStore): void {
    for (const symbol of this.symbols) {
      for (const interval of this.intervals) {
        const last = this.lastClosedOpenTime(interval);
        for (let n = this.history - 1; n >= 0; n--) this.close(store, symbol, interval, last - n * intervalMs(interval));
      }
      this.ticker(store, symbol);
    }
  }

  /** One minute passes: every interval whose candle ended closes one candle per symbol. Returns those intervals. */
  advance(store: MarketStore): Interval[] {
    this.formingOpenTime += intervalMs('1m');
    const closed = this.intervals.filter((interval) => this.formingOpenTime % intervalMs(interval) === 0);
    for (const symbol of this.symbols) {
      for (const interval of closed) this.close(store, symbol, interval, this.lastClosedOpenTime(interval));
      this.ticker(store, symbol);
    }
    return closed;
  }

  private close(store: MarketStore, symbol: string, interval: Interval, openTime: number): void {
    const walk = this.walks.get(`${symbol}|${interval}`)!;
    const n = walk.index++;
    const open = walk.close;
    const close = Math.max(1e-6, open * (1 + 0.004 * normal(walk.key, 2, n)));
    const high = Math.max(open, close) * (1 + 0.002 * uniform(walk.key, 3, n));
    const low = Math.min(open, close) * (1 - 0.002 * uniform(walk.key, 4, n));
    const spike = uniform(walk.key, 5, n) < 0.05 ? 6 : 1;
    const volume = (100 + 900 * uniform(walk.key, 6, n)) * spike;
    const takerShare = uniform(walk.key, 7, n);
    walk.close = close;
    store.applyCandle(
      symbol,
      interval,
      {
        openTime,
        open,
        high,
        low,
        close,
        volume,
        closeTime: candleCloseTime(interval, openTime),
        quoteVolume: volume * close,
        trades: 50 + Math.floor(500 * uniform(walk.key, 8, n)),
        takerBuyBaseVolume: volume * takerShare,
        takerBuyQuoteVolume: volume * takerShare * close,
      },
      true,
      'stream',
    );
  }

  private ticker(store: MarketStore, symbol: string): void {
    const walk = this.walks.get(`${symbol}|${this.intervals[0]!}`)!;
    const close = walk.close;
    store.applyTicker({
      symbol,
      eventTime: this.formingOpenTime,
      lastPrice: close,
      priceChange: close * 0.01,
      priceChangePercent: 1,
      weightedAvgPrice: close,
      openPrice: close * 0.99,
      highPrice: close * 1.02,
      lowPrice: close * 0.97,
      volume: 1e6,
      quoteVolume: 1e6 * close,
      tradeCount: 10_000,
    });
  }
}
