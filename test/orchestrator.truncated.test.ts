import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { type Candle, type Interval, candleCloseTime, intervalMs } from '../src/domain.ts';
import { MarketStore } from '../src/market/MarketStore.ts';
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

function view(store: MarketStore): TruncatedMarketView {
  return new TruncatedMarketView(store, Number.MAX_SAFE_INTEGER);
}
