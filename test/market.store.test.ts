import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import type { Candle } from '../src/domain.ts';
import { MarketStore } from '../src/market/MarketStore.ts';
import type { CandleClosedEvent } from '../src/ports.ts';

const MINUTE = 60_000;
const T0 = 1_700_000_040_000 - (1_700_000_040_000 % MINUTE);

function candle(index: number, close = 100 + index): Candle {
  const openTime = T0 + index * MINUTE;
  return {
    openTime,
    open: close - 1,
    high: close + 2,
    low: close - 2,
    close,
    volume: 10 + index,
    closeTime: openTime + MINUTE - 1,
    quoteVolume: 1000 + index,
    trades: 5 + index,
    takerBuyBaseVolume: 4,
    takerBuyQuoteVolume: 400,
  };
}

function closedOf(store: MarketStore): Candle[] {
  const series = store.series('BTCUSDT', '1m');
  if (!series) return [];
  return Array.from({ length: series.length }, (_, i) => series.get(i));
}

describe('MarketStore', () => {
  it('stores closed candles oldest first and announces each live close after storing it, backfilled history silently', () => {
    const store = new MarketStore({ history: 5, clock: systemClock });
    const seen: Array<{ event: CandleClosedEvent; lastStored: number | undefined }> = [];
    store.on('candleClosed', (event) => seen.push({ event, lastStored: store.series(event.symbol, event.interval)?.lastClosed()?.openTime }));
    expect(store.applyCandle('BTCUSDT', '1m', candle(0), true, 'backfill', 1)).toBe('closed');
    expect(store.applyCandle('BTCUSDT', '1m', candle(1), true, 'stream', 2)).toBe('closed');
    expect(store.applyCandle('BTCUSDT', '1m', candle(2), true, 'gapfill', 3)).toBe('closed');
    expect(closedOf(store)).toEqual([candle(0), candle(1), candle(2)]);
    expect(seen.map((s) => [s.event.candle.openTime, s.event.origin, s.lastStored])).toEqual([
      [candle(1).openTime, 'stream', candle(1).openTime],
      [candle(2).openTime, 'gapfill', candle(2).openTime],
    ]);
  });

  it('isolates a listener that throws: the candle is stored, the other listeners hear it, ingest goes on', () => {
    const failures: Array<{ error: unknown; openTime: number }> = [];
    const store = new MarketStore({ history: 5, clock: systemClock, onListenerError: (error, event) => failures.push({ error, openTime: event.candle.openTime }) });
    const heard: number[] = [];
    store.on('candleClosed', () => {
      throw new Error('listener bug');
    });
    store.on('candleClosed', (event) => heard.push(event.candle.openTime));
    expect(store.applyCandle('BTCUSDT', '1m', candle(0), true, 'stream', 1)).toBe('closed');
    expect(store.applyCandle('BTCUSDT', '1m', candle(1), true, 'stream', 2)).toBe('closed');
    expect(closedOf(store)).toEqual([candle(0), candle(1)]);
    expect(heard).toEqual([candle(0).openTime, candle(1).openTime]);
    expect(store.listenerErrors).toBe(2);
    expect(failures.map((f) => [(f.error as Error).message, f.openTime])).toEqual([
      ['listener bug', candle(0).openTime],
      ['listener bug', candle(1).openTime],
    ]);
  });

  it('keeps the forming candle apart from the closed ones and clears it when it closes', () => {
    const store = new MarketStore({ history: 5, clock: systemClock });
    store.applyCandle('BTCUSDT', '1m', candle(0), true, 'stream', 1);
    expect(store.applyCandle('BTCUSDT', '1m', candle(1, 50), false, 'stream', 2)).toBe('updated');
    expect(store.forming('BTCUSDT', '1m')?.close).toBe(50);
    expect(store.series('BTCUSDT', '1m')?.length).toBe(1);
    store.applyCandle('BTCUSDT', '1m', candle(1), true, 'stream', 3);
    expect(store.forming('BTCUSDT', '1m')).toBeUndefined();
    expect(store.applyCandle('BTCUSDT', '1m', candle(0, 7), false, 'stream', 4)).toBe('duplicate');
  });

  it('treats the same close from REST and the stream as one candle announced once', () => {
    const store = new MarketStore({ history: 5, clock: systemClock });
    let closes = 0;
    store.on('candleClosed', () => closes++);
    expect(store.applyCandle('BTCUSDT', '1m', candle(3), true, 'stream', 1)).toBe('closed');
    expect(store.applyCandle('BTCUSDT', '1m', candle(3), true, 'gapfill', 2)).toBe('duplicate');
    expect(closes).toBe(1);
    expect(store.series('BTCUSDT', '1m')?.originOf(candle(3).openTime)).toBe('stream');
  });

  it('fills a late older candle into its slot and drops candles older than a full window', () => {
    const store = new MarketStore({ history: 3, clock: systemClock });
    for (const i of [1, 3, 4]) store.applyCandle('BTCUSDT', '1m', candle(i), true, 'stream', 1);
    expect(store.applyCandle('BTCUSDT', '1m', candle(2), true, 'gapfill', 1)).toBe('closed');
    expect(closedOf(store).map((c) => c.openTime)).toEqual([2, 3, 4].map((i) => candle(i).openTime));
    expect(store.applyCandle('BTCUSDT', '1m', candle(0), true, 'gapfill', 1)).toBe('stale');
    expect(store.series('BTCUSDT', '1m')?.since(candle(2).openTime).map((c) => c.close)).toEqual([103, 104]);
    expect(store.series('BTCUSDT', '1m')?.originOf(candle(2).openTime)).toBe('gapfill');
  });

  it('bumps the version on every change of the closed candles only', () => {
    const store = new MarketStore({ history: 3, clock: systemClock });
    store.applyCandle('BTCUSDT', '1m', candle(0), true, 'stream', 1);
    const series = store.series('BTCUSDT', '1m')!;
    const v = series.version;
    store.applyCandle('BTCUSDT', '1m', candle(1), false, 'stream', 1);
    expect(series.version).toBe(v);
    store.applyCandle('BTCUSDT', '1m', candle(0), true, 'stream', 1);
    expect(series.version).toBe(v);
    store.applyCandle('BTCUSDT', '1m', candle(1), true, 'stream', 1);
    expect(series.version).toBe(v + 1);
  });

  it('removes symbols and intervals and keeps the newest ticker', () => {
    const store = new MarketStore({ history: 3, clock: systemClock });
    store.applyCandle('BTCUSDT', '1m', candle(0), true, 'stream', 1);
    store.applyCandle('ETHUSDT', '5m', candle(0), true, 'stream', 1);
    const ticker = { symbol: 'BTCUSDT', eventTime: 10, lastPrice: 1, priceChange: 0, priceChangePercent: 0, weightedAvgPrice: 1, openPrice: 1, highPrice: 1, lowPrice: 1, volume: 1, quoteVolume: 1, tradeCount: 1 };
    store.applyTicker(ticker);
    store.applyTicker({ ...ticker, eventTime: 5, lastPrice: 9 });
    expect(store.ticker('BTCUSDT')?.lastPrice).toBe(1);
    store.removeInterval('5m');
    expect(store.series('ETHUSDT', '5m')).toBeUndefined();
    store.removeSymbol('BTCUSDT');
    expect(store.symbols()).toEqual(['ETHUSDT']);
    expect(store.ticker('BTCUSDT')).toBeUndefined();
  });

  it('holds 200 symbols × 4 intervals × 500 candles in at most 40 MB', () => {
    const store = new MarketStore({ history: 500, clock: systemClock });
    for (let s = 0; s < 200; s++) for (const interval of ['1m', '5m', '15m', '1h'] as const) store.applyCandle(`S${s}USDT`, interval, candle(0), true, 'backfill', 1);
    expect(store.memoryBytes()).toBeLessThanOrEqual(40 * 1024 * 1024);
  });

  it('ends in the same series whatever the order, duplicates and repeats of arrival', () => {
    const history = 20;
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 40 }),
        fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 20 }),
        fc.infiniteStream(fc.constantFrom<'stream' | 'backfill' | 'gapfill'>('stream', 'backfill', 'gapfill')),
        (present, duplicates, origins) => {
          const inOrder = new MarketStore({ history, clock: systemClock });
          for (const i of [...present].sort((a, b) => a - b)) inOrder.applyCandle('BTCUSDT', '1m', candle(i), true, 'stream', 1);
          const shuffled = new MarketStore({ history, clock: systemClock });
          const announced = new Set<number>();
          let repeatsAnnounced = 0;
          shuffled.on('candleClosed', (e) => {
            if (announced.has(e.candle.openTime)) repeatsAnnounced++;
            announced.add(e.candle.openTime);
          });
          const arrivals = [...present, ...duplicates.filter((d) => present.includes(d))];
          const originIterator = origins[Symbol.iterator]();
          for (const i of arrivals) shuffled.applyCandle('BTCUSDT', '1m', candle(i), true, originIterator.next().value as 'stream', 1);
          // Out-of-order arrivals can only lose candles that fell out of the window anyway.
          const expected = closedOf(inOrder);
          const actual = closedOf(shuffled);
          expect(actual.slice(actual.length - expected.length)).toEqual(expected);
          expect(actual.length).toBe(expected.length);
          expect(repeatsAnnounced).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});
