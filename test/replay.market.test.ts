// The market a replay screens: read in place from the live store's rows, it shows at each close what a store fed up to that close would hold.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Clock, systemClock } from '../src/clock.ts';
import { type Candle, type Interval, intervalMs } from '../src/domain.ts';
import { silentLogger } from '../src/logger.ts';
import { MarketStore } from '../src/market/MarketStore.ts';
import type { CandleSeriesView, MarketView } from '../src/ports.ts';
import { type ClosedCandleSource, ReplayEngine } from '../src/replay/ReplayEngine.ts';
import { packCandles, ReplayMarket } from '../src/replay/ReplayMarket.ts';
import { StoreCandles } from '../src/replay/StoreCandles.ts';
import type { Screener } from '../src/screening/Screener.ts';
import { makeTrader, randomWalk, startTestScreener } from './screening.support.ts';

const MINUTE = 60_000;
const LIVE_HISTORY = 120;
/** What the replay's filters see: shorter than the live store's, as a look-back's are. */
const HISTORY = 40;
const SYMBOLS = ['AAAUSDT', 'BBBUSDT', 'CCCUSDT'];
/** Open time of the newest closed 1m candle. */
const LAST = Date.UTC(2026, 0, 2, 12, 0);

/** Each symbol's 1m and 5m candles; the second symbol misses six 1m candles (a gap), the third one 5m candle. */
function candlesOf(symbol: number, interval: Interval): Candle[] {
  const lastOpenTime = Math.floor((LAST + MINUTE) / intervalMs(interval)) * intervalMs(interval) - intervalMs(interval);
  const walk = randomWalk({ seed: 40 + symbol * 7 + (interval === '1m' ? 0 : 1), count: LIVE_HISTORY, interval, lastOpenTime });
  if (symbol === 1 && interval === '1m') walk.splice(90, 6);
  if (symbol === 2 && interval === '5m') walk.splice(110, 1);
  return walk;
}

function liveStore(): MarketStore {
  const store = new MarketStore({ history: LIVE_HISTORY, clock: systemClock });
  SYMBOLS.forEach((symbol, s) => {
    for (const interval of ['1m', '5m'] as const) for (const candle of candlesOf(s, interval)) store.applyCandle(symbol, interval, candle, true, 'backfill');
  });
  return store;
}

function candlesIn(series: CandleSeriesView | undefined): Candle[] {
  return series === undefined ? [] : Array.from({ length: series.length }, (_, i) => series.get(i));
}

/** What a series view shows: its candles by get(), and the same read from its shared rows. */
function shown(series: CandleSeriesView | undefined): { length: number; version: number; candles: Candle[]; rows: number[] } | undefined {
  if (series === undefined) return undefined;
  const shared = series.sharedRows!()!;
  const rows = Array.from(new Float64Array(shared.buffer, shared.start * 88, shared.length * 11));
  return { length: series.length, version: series.version, candles: candlesIn(series), rows };
}

describe('replay market', () => {
  it('shows at every close exactly what a store of `history` candles fed up to that close holds, from the live rows and from copies alike', async () => {
    const live = liveStore();
    const source = new StoreCandles(live);
    const start = LAST - 100 * MINUTE;
    const fromRows = new ReplayMarket(HISTORY);
    const fromCopies = new ReplayMarket(HISTORY);
    for (const symbol of SYMBOLS) {
      for (const interval of ['1m', '5m'] as const) {
        const rows = await source.closedRows(symbol, interval, start, LAST + MINUTE);
        fromRows.add(symbol, interval, rows!);
        fromCopies.add(symbol, interval, packCandles(await source.closedCandles(symbol, interval, start, LAST + MINUTE)));
      }
    }
    // The reference: a store of the replay's length given the same candles in closing order, one close at a time.
    const candles = SYMBOLS.flatMap((symbol) => (['1m', '5m'] as const).flatMap((interval) => live.series(symbol, interval)!.since(start - 1).map((candle) => ({ symbol, interval, candle }))));
    candles.sort((a, b) => a.candle.closeTime - b.candle.closeTime);
    const reference = new MarketStore({ history: HISTORY, clock: systemClock });
    let next = 0;
    let compared = 0;
    for (let boundary = start - 10 * MINUTE; boundary <= LAST + MINUTE; boundary += MINUTE) {
      while (next < candles.length && candles[next]!.candle.closeTime < boundary) {
        reference.applyCandle(candles[next]!.symbol, candles[next]!.interval, candles[next]!.candle, true, 'backfill');
        next++;
      }
      const views: MarketView[] = [fromRows.at(boundary), fromCopies.at(boundary)];
      for (const symbol of SYMBOLS) {
        for (const interval of ['1m', '5m'] as const) {
          const expected = shown(reference.series(symbol, interval));
          for (const view of views) {
            const series = view.series(symbol, interval);
            expect(shown(series)).toEqual(expected);
            expect(series?.lastClosed()).toEqual(reference.series(symbol, interval)?.lastClosed());
            expect(series?.since(boundary - 5 * MINUTE)).toEqual(reference.series(symbol, interval)?.since(boundary - 5 * MINUTE));
            compared++;
          }
        }
      }
    }
    expect(compared).toBeGreaterThan(600);
    expect(fromRows.at(LAST + MINUTE).series('AAAUSDT', '1m')!.length).toBe(HISTORY);
  });

  it('reads the live store in place, and closes after the replay began change nothing it shows', async () => {
    const live = liveStore();
    const replay = new ReplayMarket(HISTORY);
    replay.add('AAAUSDT', '1m', (await new StoreCandles(live).closedRows('AAAUSDT', '1m', LAST - 60 * MINUTE, LAST + MINUTE))!);
    const before = shown(replay.at(LAST + MINUTE).series('AAAUSDT', '1m'));
    expect(replay.at(LAST + MINUTE).series('AAAUSDT', '1m')!.sharedRows!()!.buffer).toBe(live.series('AAAUSDT', '1m')!.sharedRows()!.buffer);
    // The live store goes on: the oldest candles drop out, its rows move to a new buffer, a candle is corrected.
    const later = randomWalk({ seed: 9, count: 80, interval: '1m', lastOpenTime: LAST + 80 * MINUTE });
    for (const candle of later) live.applyCandle('AAAUSDT', '1m', candle, true, 'stream');
    live.applyCandle('AAAUSDT', '1m', { ...later[79]!, close: later[79]!.close * 2 }, true, 'gapfill');
    expect(live.series('AAAUSDT', '1m')!.get(0).openTime).toBeGreaterThan(LAST - 60 * MINUTE);
    expect(shown(replay.at(LAST + MINUTE).series('AAAUSDT', '1m'))).toEqual(before);
  });

  it('packs candles as a store holds them: in open-time order, the later of two with one open time', () => {
    const walk = randomWalk({ seed: 3, count: 30, interval: '1m', lastOpenTime: LAST });
    const corrected = { ...walk[12]!, close: walk[12]!.close + 1 };
    const given = [...walk.slice(15), ...walk.slice(0, 15), corrected];
    const store = new MarketStore({ history: 100, clock: systemClock });
    for (const candle of given) store.applyCandle('AAAUSDT', '1m', candle, true, 'backfill');
    const replay = new ReplayMarket(100);
    replay.add('AAAUSDT', '1m', packCandles(given));
    expect(candlesIn(replay.at(LAST + MINUTE).series('AAAUSDT', '1m'))).toEqual(candlesIn(store.series('AAAUSDT', '1m')));
    expect(candlesIn(replay.at(LAST + MINUTE).series('AAAUSDT', '1m'))[12]!.close).toBe(corrected.close);
  });

  describe('engine', () => {
    let screener: Screener;
    beforeAll(async () => {
      screener = await startTestScreener({ filterTimeoutMs: 200 });
    });
    afterAll(async () => {
      await screener.stop();
    });

    it('a look-back over the live rows finds the same signals, on series as long, as one over copies of the candles', async () => {
      const live = liveStore();
      const clock: Clock = { ...systemClock, now: () => LAST + MINUTE + 1000 };
      const trader = makeTrader(
        `const k = timeframes['1m'];
const h = timeframes['5m'];
const close = parseFloat(k[k.length - 1][4]);
return { match: close > parseFloat(k[k.length - 2][4]), conditions: ['5m bars ' + h.length], values: { bars: k.length, firstOpen: parseFloat(k[0][0]), close } };`,
        { requiredTimeframes: ['5m'] },
      );
      const request = { trader, symbols: SYMBOLS, from: LAST - 30 * MINUTE, to: LAST + MINUTE };
      const inPlace = new StoreCandles(live);
      const copies: ClosedCandleSource = { closedCandles: (...args) => inPlace.closedCandles(...args) };
      const reports = [];
      for (const candles of [inPlace, copies]) {
        reports.push(await new ReplayEngine({ candles, screener, history: HISTORY, clock, logger: silentLogger() }).replay(request));
      }
      const [rows, copied] = reports;
      expect(rows!.candles).toHaveLength(31);
      expect(rows!.errors).toEqual([]);
      expect(rows!.signals.length).toBeGreaterThan(10);
      expect(rows).toEqual(copied);
      // Every filter saw the replay's series length, ending at the candle it judged.
      for (const signal of rows!.signals) {
        expect(signal.values!.bars).toBe(HISTORY);
        expect(signal.values!.close).toBe(live.series(signal.symbol, '1m')!.since(Date.parse(signal.candle_open_time) - 1)[0]!.close);
      }
    });
  });
});
