// The tick's symbol specs on the thread's spec board: written once per set of timeframes, read in place by every isolate, right through the board's growth.
import { afterEach, describe, expect, it } from 'vitest';
import type { Interval, Trader } from '../src/domain.ts';
import { intervalMs } from '../src/domain.ts';
import type { ScreenerRun } from '../src/ports.ts';
import { evaluateUnsandboxed } from '../bench/support/reference.ts';
import { MISSING_SPEC, SymbolSpecBoard } from '../src/screening/specBoard.ts';
import { ThreadScreener } from '../src/screening/worker.ts';
import { makeTrader, TestMarket, threadSpec, ThreadTickFeed } from './screening.support.ts';

const LAST_CLOSE = Date.UTC(2026, 0, 10) - 1;

describe('SymbolSpecBoard', () => {
  it('writes each layout after the last, marks a symbol that lacks a timeframe, and keeps what it wrote when it grows', () => {
    const board = new SymbolSpecBoard();
    const [epoch] = board.connection();
    const first = board.write([[0, '1m', 7, 2, 10, 500], null], 1);
    expect(first).toEqual({ epoch, offset: 0, stride: 6, count: 2 });
    const cells = new Float64Array(board.connection()[1]);
    // 1m is INTERVALS[0]; the second symbol is marked and nothing else of it is read.
    expect([...cells.subarray(0, 7)]).toEqual([0, 0, 7, 2, 10, 500, MISSING_SPEC]);
    // Enough symbols of two timeframes to outgrow the buffer: a new epoch, a new buffer holding the first layout too.
    const many = Array.from({ length: 2000 }, (_, i) => [-1, '1m', i, 0, 0, 500, '1h', 5000 + i, 1, 3, 400]);
    const second = board.write(many, 2);
    expect(second.epoch).toBe(epoch + 1);
    expect(second.offset).toBe(12);
    const [grownEpoch, grown] = board.connection();
    expect(grownEpoch).toBe(second.epoch);
    const grownCells = new Float64Array(grown);
    expect([...grownCells.subarray(0, 7)]).toEqual([0, 0, 7, 2, 10, 500, MISSING_SPEC]);
    // The last symbol: 1h is INTERVALS' index of '1h'.
    const last = second.offset + 1999 * second.stride;
    expect([...grownCells.subarray(last, last + 11)]).toEqual([-1, 0, 1999, 0, 0, 500, 5, 6999, 1, 3, 400]);
    // The old buffer still holds what an isolate may have read from it this tick.
    expect([...cells.subarray(0, 7)]).toEqual([0, 0, 7, 2, 10, 500, MISSING_SPEC]);
    // A new tick writes from the start again, in the same buffer.
    board.beginTick();
    expect(board.write([[0, '5m', 1, 0, 0, 3]], 1)).toEqual({ epoch: grownEpoch, offset: 0, stride: 6, count: 1 });
  });
});

describe('isolates reading the spec board', () => {
  const threads: ThreadScreener[] = [];
  afterEach(() => {
    for (const thread of threads.splice(0)) thread.stop();
  });

  it('give every trader its own timeframes of every symbol, tick after tick, while the board grows under them mid-tick', () => {
    // 420 symbols × five layouts of up to four timeframes outgrow the board's first buffer during the first tick.
    const symbols = Array.from({ length: 420 }, (_, i) => `S${String(i).padStart(3, '0')}USDT`);
    const intervals: Interval[] = ['1m', '5m', '15m', '1h'];
    const market = TestMarket.build({ symbols, intervals, candles: 60, lastCloseTime: LAST_CLOSE, seed: 5 });
    // Each filter names what it got: its timeframes in order, their lengths and last closes, and its ticker's symbol when it reads one.
    const body = `const names = Object.keys(timeframes); const out = names.map((name) => name + ':' + timeframes[name].length + ':' + timeframes[name][timeframes[name].length - 1][4]);`;
    // The sixth trader shares the first one's layout, written before the board grew: its isolate, new to the board, is handed the grown buffer.
    const layouts: Interval[][] = [[], ['5m'], ['15m'], ['1h'], ['5m', '15m', '1h'], []];
    const traders: Trader[] = layouts.map((required, i) =>
      makeTrader(i % 2 === 0 ? `${body} return { match: true, conditions: out.concat([ticker.s]) };` : `${body} return { match: true, conditions: out };`, { requiredTimeframes: required }),
    );
    const thread = new ThreadScreener({ filterTimeoutMs: 2000, filterMemoryMb: 32 }, (message) => {
      throw new Error(message);
    });
    threads.push(thread);
    thread.setTraders(traders.map(threadSpec), []);
    const feed = new ThreadTickFeed();
    for (let tickId = 1; tickId <= 2; tickId++) {
      const { slots, buffers, tickers } = feed.inputs(market, symbols, intervals);
      const reply = thread.tick({ type: 'tick', tickId, traderIds: traders.map((t) => t.id), symbols, tickers, buffers, dropped: [], slots });
      const tick: ScreenerRun = { interval: '1m', candleOpenTime: LAST_CLOSE + 1 - intervalMs('1m'), traderIds: traders.map((t) => t.id), symbols, market };
      const want = evaluateUnsandboxed(traders, tick);
      for (const [i, result] of reply.traders.entries()) {
        expect(result.errors).toEqual([]);
        expect(result.evaluated).toHaveLength(symbols.length);
        expect(result.matches).toEqual(want[i]!.matches.map(({ symbol, conditions }) => ({ symbol, conditions })));
      }
      // The five layouts differ where they should: the fifth trader names four timeframes.
      expect(reply.traders[4]!.matches[0]!.conditions).toHaveLength(5);
      thread.recycleGrownIsolates();
      thread.collectIsolates(traders.map((t) => t.id));
    }
  });
});
