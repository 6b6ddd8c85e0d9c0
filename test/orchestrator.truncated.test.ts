import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { type Candle, type Interval, type Ticker, candleCloseTime, intervalMs } from '../src/domain.ts';
import { MarketStore, TICKER_SNAPSHOTS_PER_INTERVAL } from '../src/market/MarketStore.ts';
import { TruncatedMarketView } from '../src/orchestration/TruncatedMarketView.ts';

const T0 = Date.UTC(2026, 0, 5, 0, 0);

function candle(interval: Interval, index: number): Candle {
  const openTime = T0 + index * intervalMs(interval);
  return {
    openTime,
    open: 100 + index,
    high: 101 + index,
    low: 99 + index,
    close: 100 + index,
    volume: 10,
    closeTime: candleCloseTime(interval, openTime),
    quoteVolume: 1000,
    trades: 5,
    takerBuyBaseVolume: 4,
    takerBuyQuoteVolume: 400,
  };
}

describe('truncated market view', () => {
  it('shows every timeframe exactly as it stood when the previous candle closed', () => {
    const store = new MarketStore({ history: 50, clock: systemClock });
    for (let i = 0; i < 10; i += 1) store.applyCandle('BTCUSDT', '1m', candle('1m', i), true, i === 9 ? 'stream' : 'backfill');
    store.applyCandle('BTCUSDT', '5m', candle('5m', 0), true, 'backfill');
    store.applyCandle('BTCUSDT', '5m', candle('5m', 1), true, 'stream');
    // The tick at 1m candle #9 (00:09) primes on candle #8: hide what closed at 00:09 or later.
    const cutoff = candle('1m', 9).openTime;
    const view = new TruncatedMarketView(store, cutoff);
    const oneMinute = view.series('BTCUSDT', '1m')!;
    expect(oneMinute.length).toBe(9);
    expect(oneMinute.lastClosed()).toEqual(candle('1m', 8));
    expect(oneMinute.since(candle('1m', 6).openTime)).toEqual([candle('1m', 7), candle('1m', 8)]);
    expect(oneMinute.originOf(candle('1m', 9).openTime)).toBeUndefined();
    expect(() => oneMinute.get(9)).toThrow(RangeError);
    // The 5m candle opened at 00:05 closes at 00:10, after the cutoff: only 00:00 is visible.
    const fiveMinutes = view.series('BTCUSDT', '5m')!;
    expect(fiveMinutes.length).toBe(1);
    expect(fiveMinutes.lastClosed()).toEqual(candle('5m', 0));
  });

  it('never reports the live series version, so a consumer syncing by version cannot confuse the two', () => {
    const store = new MarketStore({ history: 50, clock: systemClock });
    for (let i = 0; i < 3; i += 1) store.applyCandle('ETHUSDT', '1m', candle('1m', i), true, 'stream');
    const live = store.series('ETHUSDT', '1m')!;
    const truncated = new TruncatedMarketView(store, candle('1m', 2).openTime).series('ETHUSDT', '1m')!;
    expect(truncated.version).not.toBe(live.version);
    expect(view(store).series('NOPE', '1m')).toBeUndefined();
  });
});

describe('ticker as of the close', () => {
  const ticker = (eventTime: number, lastPrice: number): Ticker => ({
    symbol: 'BTCUSDT',
    eventTime,
    lastPrice,
    priceChange: 1,
    priceChangePercent: 0.5,
    weightedAvgPrice: lastPrice,
    openPrice: lastPrice - 1,
    highPrice: lastPrice + 1,
    lowPrice: lastPrice - 2,
    volume: 10,
    quoteVolume: 10 * lastPrice,
    tradeCount: 7,
  });
  const boundary = (interval: Interval, index: number) => candle(interval, index).closeTime + 1;

  it('shows each close the ticker held when its closing kline arrived, never the live one', () => {
    const store = new MarketStore({ history: 50, clock: systemClock });
    store.applyTicker(ticker(boundary('1m', 0) - 500, 100));
    store.applyCandle('BTCUSDT', '1m', candle('1m', 0), true, 'stream');
    store.applyTicker(ticker(boundary('1m', 1) - 200, 101));
    store.applyCandle('BTCUSDT', '1m', candle('1m', 1), true, 'stream');
    // The live ticker moves on after the close (a late tick, a catch-up): the views do not.
    store.applyTicker(ticker(boundary('1m', 1) + 90_000, 150));
    expect(new TruncatedMarketView(store, boundary('1m', 1)).ticker('BTCUSDT')?.lastPrice).toBe(101);
    // The rising-edge check evaluates the previous candle with the ticker of that earlier close.
    expect(new TruncatedMarketView(store, boundary('1m', 0)).ticker('BTCUSDT')?.lastPrice).toBe(100);
    expect(store.ticker('BTCUSDT')?.lastPrice).toBe(150);
  });

  it('proves no ticker for a close that came only by REST, and shares one snapshot among intervals closing together', () => {
    const store = new MarketStore({ history: 50, clock: systemClock });
    store.applyTicker(ticker(boundary('1m', 0) - 500, 100));
    store.applyCandle('BTCUSDT', '1m', candle('1m', 0), true, 'gapfill');
    expect(new TruncatedMarketView(store, boundary('1m', 0)).ticker('BTCUSDT')).toBeUndefined();
    // 00:05 closes both the 1m candle #4 and the 5m candle #0: the later arrival keeps the first snapshot.
    store.applyCandle('BTCUSDT', '1m', candle('1m', 4), true, 'stream');
    store.applyTicker(ticker(boundary('1m', 4) + 300, 120));
    store.applyCandle('BTCUSDT', '5m', candle('5m', 0), true, 'stream');
    expect(store.tickerAt('BTCUSDT', boundary('5m', 0))?.lastPrice).toBe(100);
  });

  it('keeps only the last few closes per interval, and what a coarser interval still needs', () => {
    const store = new MarketStore({ history: 50, clock: systemClock });
    store.applyTicker(ticker(0, 100));
    store.applyCandle('BTCUSDT', '5m', candle('5m', 0), true, 'stream');
    for (let i = 0; i < TICKER_SNAPSHOTS_PER_INTERVAL + 6; i++) store.applyCandle('BTCUSDT', '1m', candle('1m', i), true, 'stream');
    // 1m keeps its last TICKER_SNAPSHOTS_PER_INTERVAL closes; the 5m close at 00:05 (also 1m's) is kept for 5m.
    expect(store.tickerAt('BTCUSDT', boundary('1m', 0))).toBeUndefined();
    expect(store.tickerAt('BTCUSDT', boundary('5m', 0))).toBeDefined();
    expect(store.tickerAt('BTCUSDT', boundary('1m', TICKER_SNAPSHOTS_PER_INTERVAL + 5))).toBeDefined();
    expect(store.tickerAt('BTCUSDT', boundary('1m', 5))).toBeUndefined();
  });
});

function view(store: MarketStore): TruncatedMarketView {
  return new TruncatedMarketView(store, Number.MAX_SAFE_INTEGER);
}
