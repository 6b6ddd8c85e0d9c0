// The shared market rows: one copy per process, kept in step incrementally, read in place by isolates; grown isolates are rebuilt.
import { describe, expect, it } from 'vitest';
import type { Interval } from '../src/domain.ts';
import { intervalMs } from '../src/domain.ts';
import { systemClock } from '../src/clock.ts';
import { MarketStore } from '../src/market/MarketStore.ts';
import { TruncatedMarketView } from '../src/orchestration/TruncatedMarketView.ts';
import type { MarketView } from '../src/ports.ts';
import { SymbolSpecBoard } from '../src/screening/specBoard.ts';
import { TraderSandbox } from '../src/screening/sandbox.ts';
import { CANDLE_ROW_FIELDS as ROW_FIELDS } from '../src/domain.ts';
import { SharedSeriesStore, type SeriesSlot } from '../src/screening/sharedSeries.ts';
import { ThreadScreener } from '../src/screening/worker.ts';
import { makeTrader, randomWalk, TestMarket } from './screening.support.ts';

const LAST_CLOSE = Date.UTC(2026, 0, 10) - 1;

/** The rows a slot points at, as candles' open and close times: what a thread would read. */
function rowsOf(store: SharedSeriesStore, slot: SeriesSlot): number[][] {
  const rows = new Float64Array(store.buffer(slot[0])!.buffer);
  const [, , start, length] = slot;
  return Array.from({ length }, (_, i) => [rows[(start + i) * ROW_FIELDS]!, rows[(start + i) * ROW_FIELDS + 4]!]);
}

function expected(market: MarketView, symbol: string, interval: Interval): number[][] {
  const view = market.series(symbol, interval)!;
  return Array.from({ length: view.length }, (_, i) => [view.get(i).openTime, view.get(i).close]);
}

describe('SharedSeriesStore', () => {
  it('follows appends in place, past its slack, and rewrites on a gap fill or a truncated view', () => {
    const market = TestMarket.build({ symbols: ['AAAUSDT'], intervals: ['1m'], candles: 120, lastCloseTime: LAST_CLOSE });
    const store = new SharedSeriesStore();
    const first = store.sync(market, 'AAAUSDT', '1m', 0)!;
    expect(rowsOf(store, first)).toEqual(expected(market, 'AAAUSDT', '1m'));
    const buffer = store.buffer(first[0])!.buffer;
    let openTime = LAST_CLOSE + 1 - intervalMs('1m');
    // More appends than the slack behind the rows: the rows move to the front of the same buffer.
    for (let step = 0; step < 40; step++) {
      openTime += intervalMs('1m');
      market.append('AAAUSDT', '1m', randomWalk({ seed: step, count: 1, interval: '1m', lastOpenTime: openTime })[0]!);
      const slot = store.sync(market, 'AAAUSDT', '1m', 0)!;
      expect(rowsOf(store, slot)).toEqual(expected(market, 'AAAUSDT', '1m'));
      expect(store.buffer(slot[0])!.buffer).toBe(buffer);
      expect(slot[1]).toBe(first[1]);
    }
    // The previous candle's view (rising-edge priming), then the live series again.
    const truncated = new TruncatedMarketView(market, openTime);
    expect(rowsOf(store, store.sync(truncated, 'AAAUSDT', '1m', 0)!)).toEqual(expected(truncated, 'AAAUSDT', '1m'));
    expect(rowsOf(store, store.sync(market, 'AAAUSDT', '1m', 0)!)).toEqual(expected(market, 'AAAUSDT', '1m'));
    // A longer rewritten history needs a bigger buffer: a new generation the threads must be handed.
    market.setSeries('AAAUSDT', '1m', randomWalk({ seed: 99, count: 400, interval: '1m', lastOpenTime: openTime }));
    const grown = store.sync(market, 'AAAUSDT', '1m', 0)!;
    expect(rowsOf(store, grown)).toEqual(expected(market, 'AAAUSDT', '1m'));
    expect(grown[1]).toBeGreaterThan(first[1]);
  });

  it("hands out the market store's own rows, and a slot once handed out keeps its rows while the store appends, corrects and inserts", () => {
    const market = new MarketStore({ history: 50, clock: systemClock });
    const candles = randomWalk({ seed: 4, count: 200, interval: '1m', lastOpenTime: LAST_CLOSE + 1 - intervalMs('1m') });
    for (const candle of candles.slice(0, 50)) market.applyCandle('AAAUSDT', '1m', candle, true, 'backfill', 0);
    const store = new SharedSeriesStore();
    const first = store.sync(market, 'AAAUSDT', '1m', 0)!;
    // No copy: the threads are handed the store's buffer itself.
    expect(store.buffer(first[0])!.buffer).toBe(market.series('AAAUSDT', '1m')!.sharedRows().buffer);
    expect(store.bytes()).toBe(0);
    expect(rowsOf(store, first)).toEqual(expected(market, 'AAAUSDT', '1m'));
    const handedOut: Array<{ slot: SeriesSlot; buffer: SharedArrayBuffer; rows: number[][] }> = [];
    const check = () => {
      const slot = store.sync(market, 'AAAUSDT', '1m', 0)!;
      expect(rowsOf(store, slot)).toEqual(expected(market, 'AAAUSDT', '1m'));
      handedOut.push({ slot, buffer: store.buffer(slot[0])!.buffer, rows: rowsOf(store, slot) });
      // What a thread still reading an earlier tick sees: exactly what it was handed.
      for (const earlier of handedOut) {
        const rows = new Float64Array(earlier.buffer);
        const [, , start, length] = earlier.slot;
        expect(Array.from({ length }, (_, i) => [rows[(start + i) * ROW_FIELDS]!, rows[(start + i) * ROW_FIELDS + 4]!])).toEqual(earlier.rows);
      }
      return slot;
    };
    check();
    // Appends (the oldest dropping out) well past the slack; candle 120 arrives late, after 121.
    for (let i = 50; i < 150; i++) {
      if (i === 120) continue;
      market.applyCandle('AAAUSDT', '1m', candles[i]!, true, 'stream', 0);
      check();
      if (i === 121) {
        market.applyCandle('AAAUSDT', '1m', candles[120]!, true, 'gapfill', 0);
        check();
      }
    }
    // A correction of a candle already handed out.
    market.applyCandle('AAAUSDT', '1m', { ...candles[140]!, close: candles[140]!.close * 1.5 }, true, 'gapfill', 0);
    const last = check();
    expect(last[1]).toBeGreaterThan(first[1]);
    expect(new Set(handedOut.map((h) => h.buffer)).size).toBeGreaterThan(2);
    // The previous candle's view is the same rows, one fewer.
    const truncated = new TruncatedMarketView(market, candles[149]!.openTime);
    const slot = store.sync(truncated, 'AAAUSDT', '1m', 0)!;
    expect(rowsOf(store, slot)).toEqual(expected(truncated, 'AAAUSDT', '1m'));
    expect(slot[3]).toBe(49);
    expect(store.bytes()).toBe(0);
  });

  it('forgets a series no tick asked for in two of its intervals', () => {
    const market = TestMarket.build({ symbols: ['AAAUSDT', 'BBBUSDT'], intervals: ['1h'], candles: 10, lastCloseTime: LAST_CLOSE });
    const store = new SharedSeriesStore();
    const a = store.sync(market, 'AAAUSDT', '1h', 0)!;
    store.sync(market, 'BBBUSDT', '1h', 0);
    expect(store.prune(2 * intervalMs('1h'))).toEqual([]);
    store.sync(market, 'BBBUSDT', '1h', 2 * intervalMs('1h'));
    expect(store.prune(2 * intervalMs('1h') + 60_001)).toEqual([a[0]]);
    expect(store.buffer(a[0])).toBeUndefined();
  });
});

describe('isolates and the shared rows', () => {
  it('an isolate reads the shared buffer in place: a later write shows without attaching again', () => {
    const rows = new Float64Array(new SharedArrayBuffer(2 * ROW_FIELDS * 8));
    rows[4] = 101.5;
    rows[ROW_FIELDS + 4] = 102.5;
    let attached = 0;
    const sandbox = new TraderSandbox({
      traderId: 'reader',
      code: `const k = timeframes['1m']; return { match: true, conditions: [String(k[0][4]), String(k[1][4])] };`,
      helpers: 'webapp',
      timeoutMs: 1000,
      memoryMb: 16,
      host: {
        attach: () => {
          attached++;
          return rows.buffer as SharedArrayBuffer;
        },
        memo: () => undefined,
        specs: () => specBoard.connection(),
      },
      onCatastrophicError: (message) => {
        throw new Error(message);
      },
    });
    const specBoard = new SymbolSpecBoard();
    const specs = specBoard.write([[0, '1m', 0, 0, 0, 2]], 1);
    try {
      expect(sandbox.beginTick('[{"c":"1"}]', specs, rows.byteLength)).toBeNull();
      expect(sandbox.evaluate(0)).toEqual({ kind: 'ok', match: true, conditions: ['101.5', '102.5'], warning: null });
      rows[4] = 201.5;
      expect(sandbox.beginTick('[{"c":"1"}]', specs, rows.byteLength)).toBeNull();
      expect(sandbox.evaluate(0)).toEqual({ kind: 'ok', match: true, conditions: ['201.5', '102.5'], warning: null });
      expect(attached).toBe(1);
    } finally {
      sandbox.dispose();
    }
  });

  it('an isolate whose heap keeps growing is rebuilt between ticks and keeps answering', () => {
    const symbols = ['AAAUSDT', 'BBBUSDT', 'CCCUSDT'];
    const market = TestMarket.build({ symbols, intervals: ['1m'], candles: 100, lastCloseTime: LAST_CLOSE });
    // Keeps about 1.6 MB per symbol in its global scope, tick after tick.
    const hoarder = makeTrader(`(globalThis.hoard ??= []).push(new Array(200000).fill(1.5)); return { match: true, conditions: [String(globalThis.hoard.length)] };`);
    const thread = new ThreadScreener({ filterTimeoutMs: 1000, filterMemoryMb: 64 }, (message) => {
      throw new Error(message);
    });
    const store = new SharedSeriesStore();
    thread.setTraders([{ id: hoarder.id, code: hoarder.filter.code, codeHash: hoarder.codeHash, updatedAt: hoarder.updatedAt, refreshInterval: '1m', timeframes: ['1m'], hvnInterval: '1m', helpers: 'webapp' }], []);
    try {
      const hoardSizes: number[] = [];
      let recycled = 0;
      for (let tick = 0; tick < 4; tick++) {
        const slots: Record<string, SeriesSlot> = {};
        for (const symbol of symbols) slots[`${symbol}|1m`] = store.sync(market, symbol, '1m', 0)!;
        const buffers = tick === 0 ? Object.values(slots).map((slot) => store.buffer(slot[0])!) : [];
        const reply = thread.tick({ type: 'tick', tickId: tick, traderIds: [hoarder.id], symbols, tickers: {}, buffers, dropped: [], slots });
        expect(reply.traders[0]!.errors).toEqual([]);
        hoardSizes.push(Number(reply.traders[0]!.matches.at(-1)!.conditions[0]));
        recycled += thread.recycleGrownIsolates();
      }
      // The first tick after a build sets the baseline; the second grows about 5 MB past it and rebuilds.
      expect(hoardSizes).toEqual([3, 6, 3, 6]);
      expect(recycled).toBe(2);
    } finally {
      thread.stop();
    }
  });
});
