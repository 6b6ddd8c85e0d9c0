// The results board: helper results a thread computes ahead and its isolates read without a callback answer exactly like the library, belong to the filter that got them, and stay out of every filter's reach.
import { afterEach, describe, expect, it } from 'vitest';
import type { Interval, Trader } from '../src/domain.ts';
import { intervalMs } from '../src/domain.ts';
import type { ScreenerRun } from '../src/ports.ts';
import { evaluateUnsandboxed } from '../bench/support/reference.ts';
import type { ThreadTraderResult } from '../src/screening/protocol.ts';
import { ThreadScreener } from '../src/screening/worker.ts';
import { makeTrader, randomWalk, TestMarket, threadSpec, ThreadTickFeed } from './screening.support.ts';

const LAST_CLOSE = Date.UTC(2026, 0, 10) - 1;
// More symbols than one batch (16), so the board is rewritten between batches within a tick.
const SYMBOLS = Array.from({ length: 20 }, (_, i) => `B${String(i).padStart(2, '0')}USDT`);
const INTERVALS: Interval[] = ['1m', '1h'];
const market = TestMarket.build({ symbols: SYMBOLS, intervals: INTERVALS, candles: 300, lastCloseTime: LAST_CLOSE, seed: 7 });
const tick: ScreenerRun = { interval: '1m', candleOpenTime: LAST_CLOSE + 1 - intervalMs('1m'), traderIds: [], symbols: SYMBOLS, market };

/** The reference's matches as a thread reports them (the Screener adds the price afterwards). */
function withoutPrices(matches: Array<{ symbol: string; conditions: string[]; price?: number }>): Array<{ symbol: string; conditions: string[] }> {
  return matches.map(({ symbol, conditions }) => ({ symbol, conditions }));
}

const threads: ThreadScreener[] = [];
afterEach(() => {
  for (const thread of threads.splice(0)) thread.stop();
});

/** One screening thread driven directly, ticking the same closed market again and again (the board learns on the first tick). */
interface TestThread {
  run(): { results: ThreadTraderResult[]; memoCallbacks: number; memoMisses: number; memoHits: number };
  /** The thread's traders from now on (those left out are removed, as the Screener does). */
  setTraders(traders: Trader[]): void;
}

function startThread(initial: Trader[]): TestThread {
  let traders = initial;
  const thread = new ThreadScreener({ filterTimeoutMs: 2000, filterMemoryMb: 32, filterTickBudgetMs: 120_000 }, (message) => {
    throw new Error(message);
  });
  threads.push(thread);
  thread.setTraders(traders.map(threadSpec), []);
  const feed = new ThreadTickFeed();
  let tickId = 0;
  return {
    setTraders(next) {
      const kept = new Set(next.map((t) => t.id));
      thread.setTraders(
        next.filter((t) => !traders.some((old) => old.id === t.id)).map(threadSpec),
        traders.filter((t) => !kept.has(t.id)).map((t) => t.id),
      );
      traders = next;
    },
    run() {
      const { slots, buffers, tickers } = feed.inputs(market, SYMBOLS, INTERVALS);
      const reply = thread.tick({ type: 'tick', tickId: ++tickId, traderIds: traders.map((t) => t.id), symbols: SYMBOLS, tickers, buffers, dropped: [], slots });
      return { results: reply.traders, memoCallbacks: reply.memoCallbacks, memoMisses: reply.memoMisses, memoHits: reply.memoHits };
    },
  };
}

function parity(range: string): string {
  return `
  const checks = [];
  const range = ${range};
  for (const interval of ['1m', '1h']) {
    const k = timeframes[interval];
    const copy = Array.from(k);
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b) && Array.isArray(a) === Array.isArray(b) && (!Array.isArray(a) || a.length === b.length);
    const calls = [
      ['getLatestRSI', [14]], ['getLatestRSI', [7]], ['getLatestEMA', [50]], ['calculateMA', [20]], ['calculateAvgVolume', [20]],
      ['getLatestBollingerBands', [20, 2]], ['getLatestMACD', []], ['getLatestStochRSI', []], ['getLatestVWAP', []], ['calculateADX', [14]],
      ['calculateEMASeries', [9]], ['calculateEMASeries', [21]], ['calculateRSI', [14]], ['calculateMASeries', [20]], ['calculateMACDValues', []],
      ['calculateBollingerBands', [20, 2]], ['calculateStochRSI', []], ['calculateStochastic', [14, 3]], ['calculateHighVolumeNodes', [{ bins: 30 }]],
      ['detectEngulfingPattern', []], ['detectRSIDivergence', [14, 30]], ['getHighestHigh', [20]], ['getLatestVWAPBands', []], ['calculateVWAPBands', []],
    ];
    for (let period = 2; period <= 40; period += 6) calls.push(['calculateMASeries', [period]]);
    // A period that depends on the data: a different call on some symbols, each learned and answered alike.
    if (range === null) calls.push(['getLatestRSI', [5 + (Math.floor(copy[copy.length - 1][4]) % 3)]]);
    for (const [name, args] of calls) {
      const on = (klines) => range === null ? klines : klines.slice(range[0], range[1]);
      const got = helpers[name](on(k), ...args);
      const want = helpers[name](on(copy), ...args);
      checks.push(same(got, want) || name + JSON.stringify(args) + ' ' + JSON.stringify(got).slice(0, 200) + ' vs ' + JSON.stringify(want).slice(0, 200));
    }
    const series = helpers.calculateEMASeries(k, 9);
    checks.push(series[0] === null && typeof series[series.length - 1] === 'number' && series.at(-1) === series[k.length - 1]);
  }
  // hvnNodes are the longest required timeframe's (here 1h), as in the browser.
  const copy = Array.from(timeframes['1h']);
  const nodes = helpers.calculateHighVolumeNodes(copy, { lookback: Math.min(copy.length, 100) });
  checks.push(JSON.stringify(hvnNodes) === JSON.stringify(nodes) || JSON.stringify(hvnNodes).slice(0, 300) + ' vs ' + JSON.stringify(nodes).slice(0, 300));
  return { match: true, conditions: checks.map((ok, i) => ok === true ? '' : 'check ' + i + ' differs ' + ok).filter(Boolean) };`;
}

/**
 * Traders comparing helpers called on the timeframes (served by the host: the board, or the
 * callback) with the same helpers on plain copies (computed inside the isolate by the library
 * itself), as JSON and as shapes (Array.isArray, length, nulls), on whole series and on slices, for
 * every kind of result the board holds: numbers, null, words, records, series of numbers and nulls,
 * lists of records, records of series, and the hvnNodes argument. One range per trader, so that each
 * stays within the columns one trader may add.
 */
const PARITY_RANGES = ['null', '[0, -1]', '[-100, undefined]', '[10, 60]', '[-5, -5]', '[-3, undefined]'];

describe('the results board', () => {
  it('answers every kind of result like the library on a copy, tick after tick, and the callbacks fall away once it has learned', () => {
    const traders = PARITY_RANGES.flatMap((range) => [
      makeTrader(parity(range), { requiredTimeframes: ['1h'] }),
      makeTrader(parity(range), { requiredTimeframes: ['1h'], helpers: 'textbook' }),
    ]);
    const thread = startThread(traders);
    const ticks = [thread.run(), thread.run(), thread.run(), thread.run()];
    for (const { results } of ticks) {
      for (const result of results) {
        expect(result.errors).toEqual([]);
        expect(result.matches.flatMap((m) => m.conditions)).toEqual([]);
        expect(result.matches.map((m) => m.symbol)).toEqual(SYMBOLS);
      }
    }
    // The first tick asks through the callback; the board grows to hold the calls; then nothing is asked.
    expect(ticks[0]!.memoCallbacks).toBeGreaterThan(0);
    expect(ticks[3]!.memoCallbacks).toBe(0);
    // The board asks the memo (the market does not move here, so from the second tick on most answers are carried: carriedResults.ts).
    expect(ticks[3]!.memoMisses + ticks[3]!.memoHits).toBeGreaterThan(0);
  });

  it('traders leaving and joining renumber and grow the board without a wrong answer, and it learns again', () => {
    const code = (calls: string) => `
      const k = timeframes['1m'];
      const copy = Array.from(k);
      const differing = [${calls}].filter(([name, args]) => JSON.stringify(helpers[name](k, ...args)) !== JSON.stringify(helpers[name](copy, ...args))).map(([name]) => name);
      return { match: true, conditions: differing };`;
    const leaving = makeTrader(code(`['getLatestRSI', [9]], ['calculateEMASeries', [13]], ['getLatestBollingerBands', [30, 2]]`));
    const staying = makeTrader(code(`['getLatestRSI', [11]], ['calculateRSI', [11]], ['getLatestMACD', []]`));
    const joining = makeTrader(code(`['calculateEMASeries', [13]], ['getLatestRSI', [9]], ['calculateMASeries', [7]], ['getLatestStochRSI', []], ['calculateADX', [10]]`));
    const thread = startThread([leaving, staying]);
    const expectAgreement = (results: ThreadTraderResult[]) => {
      for (const result of results) {
        expect(result.errors).toEqual([]);
        expect(result.matches).toHaveLength(SYMBOLS.length);
        expect(result.matches.flatMap((m) => m.conditions)).toEqual([]);
      }
    };
    for (let i = 0; i < 3; i++) expectAgreement(thread.run().results);
    expect(thread.run().memoCallbacks).toBe(0);
    // The leaving trader's columns go (the staying trader's are renumbered), the joining one's come back under new numbers.
    thread.setTraders([staying, joining]);
    const ticks = [thread.run(), thread.run(), thread.run(), thread.run()];
    for (const { results } of ticks) expectAgreement(results);
    expect(ticks[0]!.memoCallbacks).toBeGreaterThan(0);
    expect(ticks[3]!.memoCallbacks).toBe(0);
  });

  it('calls beyond what one trader may add to the board keep the callback, with the same answers', () => {
    const greedy = makeTrader(`
      const k = timeframes['1m'];
      const copy = Array.from(k);
      const differing = [];
      for (let period = 2; period < 102; period++) if (helpers.getLatestRSI(k, period) !== helpers.getLatestRSI(copy, period)) differing.push(String(period));
      return { match: true, conditions: differing };`);
    const thread = startThread([greedy]);
    for (let i = 0; i < 3; i++) {
      const { results, memoCallbacks } = thread.run();
      expect(results[0]!.errors).toEqual([]);
      expect(results[0]!.matches.flatMap((m) => m.conditions)).toEqual([]);
      expect(results[0]!.matches).toHaveLength(SYMBOLS.length);
      // 100 calls per symbol: from the second tick on, some come from the board and the rest through the callback.
      if (i > 0) expect(memoCallbacks).toBeGreaterThan(0);
      if (i > 0) expect(memoCallbacks).toBeLessThan(100 * SYMBOLS.length);
    }
  });

  it('work the board does ahead for a trader counts against its tick budget, as its callbacks did', () => {
    // Forty distinct heavy calls, cheap to read back: without the charge, the trader's time would vanish with its callbacks.
    const nodes = `let nodes = 0;
      for (let i = 0; i < 40; i++) nodes += helpers.calculateHighVolumeNodes(k, { bins: 1000, lookback: 300 - i }).length;`;
    const heavy = makeTrader(`const k = timeframes['1m']; ${nodes} return nodes < 0;`);
    // The yardstick: the same calls made after as many cheap ones as one trader may add to the board (96), so they keep the callback tick after tick.
    const asking = makeTrader(`const k = timeframes['1m'];
      let cheap = 0;
      for (let period = 2; period < 98; period++) cheap += helpers.calculateMA(k, period);
      ${nodes}
      return nodes < 0 && cheap < 0;`);
    const thread = startThread([heavy]);
    const yardstick = startThread([asking]);
    // The 1m candles move each tick, so the board computes the nodes again (results of series that did not change are carried, and cost their copy: carriedResults.ts).
    const saved = SYMBOLS.map((symbol) => market.series(symbol, '1m')!.since(0));
    const both = () => ({ board: thread.run(), callbacks: yardstick.run() });
    const moved = () => {
      for (const symbol of SYMBOLS) {
        const last = market.series(symbol, '1m')!.lastClosed()!;
        market.append(symbol, '1m', randomWalk({ seed: 11, count: 1, interval: '1m', lastOpenTime: last.openTime + intervalMs('1m') })[0]!);
      }
      return both();
    };
    let ticks: Array<ReturnType<typeof both>>;
    try {
      ticks = [both(), moved(), moved(), moved(), moved()];
    } finally {
      SYMBOLS.forEach((symbol, i) => market.setSeries(symbol, '1m', saved[i]!));
    }
    // Compared warm with warm, on the same candles and ticks: the first tick of a thread also pays its isolates' compilation, so it is no
    // yardstick (a loaded CI machine saw it cost four times a later tick's whole charge in the tick-order test).
    const warm = ticks.slice(2);
    for (const { board, callbacks } of warm) {
      expect(board.memoCallbacks).toBe(0);
      expect(board.results[0]!.errors).toEqual([]);
      expect(callbacks.results[0]!.errors).toEqual([]);
      // Every node call of the yardstick went through the callback.
      expect(callbacks.memoCallbacks).toBeGreaterThanOrEqual(40 * SYMBOLS.length);
    }
    // Summed over three ticks, so that one preemption on a loaded machine does not decide. Measured: the board's charge is 0.6-1.3 of
    // what the callbacks cost (quiet, and beside four busy loops); with the charge taken out of ResultBoard.fill, 0.02.
    const charged = warm.reduce((sum, { board }) => sum + board.results[0]!.evaluationMs, 0);
    const asked = warm.reduce((sum, { callbacks }) => sum + callbacks.results[0]!.evaluationMs, 0);
    expect(charged, `charged ${charged.toFixed(1)} ms for the board's work, ${asked.toFixed(1)} ms through callbacks`).toBeGreaterThan(asked * 0.25);
  });

  it("a result read from the board is the filter's own: writing to it changes neither its next call nor another trader's", () => {
    const writer = makeTrader(`
      const k = timeframes['1m'];
      const first = helpers.calculateEMASeries(k, 9);
      first.fill(0); first.push(1); first.length = 3; first[0] = 'x';
      const bands = helpers.getLatestBollingerBands(k, 20, 2);
      bands.upper = -1; delete bands.lower; bands.extra = 1;
      const again = helpers.calculateEMASeries(k, 9);
      const bandsAgain = helpers.getLatestBollingerBands(k, 20, 2);
      const copy = Array.from(k);
      const checks = [
        again !== first && JSON.stringify(again) === JSON.stringify(helpers.calculateEMASeries(copy, 9)),
        bandsAgain !== bands && JSON.stringify(bandsAgain) === JSON.stringify(helpers.getLatestBollingerBands(copy, 20, 2)),
      ];
      return { match: checks.every(Boolean), conditions: checks.map(String) };`);
    const reader = makeTrader(`
      const k = timeframes['1m'];
      const ema = helpers.calculateEMASeries(k, 9);
      const bands = helpers.getLatestBollingerBands(k, 20, 2);
      return { match: true, conditions: [String(ema[ema.length - 1]), String(ema.length), JSON.stringify(bands)] };`);
    const thread = startThread([writer, reader]);
    const reference = evaluateUnsandboxed([reader], { ...tick, traderIds: [reader.id] })[0]!;
    for (let i = 0; i < 3; i++) {
      const [written, read] = thread.run().results;
      expect(written!.errors).toEqual([]);
      expect(written!.matches).toHaveLength(SYMBOLS.length);
      expect(written!.matches.every((m) => m.conditions.every((c) => c === 'true'))).toBe(true);
      expect(read!.matches).toEqual(withoutPrices(reference.matches));
    }
  });

  it('a filter that hooks every prototype and global the runtime could touch cannot capture the board, write to it, or change what a neighbour reads', () => {
    const hooker = makeTrader(`
      let captured = false;
      const grab = (value) => {
        try {
          const buffer = value && value.buffer;
          if (buffer instanceof SharedArrayBuffer) { captured = true; new Float64Array(buffer).fill(7); }
        } catch (e) {}
      };
      const TypedArray = Object.getPrototypeOf(Float64Array.prototype);
      for (const name of ['length', 'buffer', 'byteLength', 'byteOffset']) {
        const original = Object.getOwnPropertyDescriptor(TypedArray, name);
        Object.defineProperty(TypedArray, name, { configurable: true, get() { grab(this); return original.get.call(this); } });
      }
      for (const name of ['subarray', 'slice', 'set', 'fill', 'at', 'map', 'forEach']) {
        const original = TypedArray[name];
        TypedArray[name] = function (...args) { grab(this); return original.apply(this, args); };
      }
      const mapGet = Map.prototype.get;
      Map.prototype.get = function (key) { const value = mapGet.call(this, key); grab(value); return typeof value === 'number' ? 0 : value; };
      const mapSet = Map.prototype.set;
      Map.prototype.set = function (key, value) { grab(value); return mapSet.call(this, key, value); };
      const parse = JSON.parse;
      JSON.parse = (text) => { const value = parse(text); return value && value.keys ? { keys: [], shapes: [] } : value; };
      Reflect.apply = () => 0;
      Reflect.defineProperty = () => true;
      Object.defineProperty(Object.prototype, 'upper', { configurable: true, set(v) { grab(this); } });
      Object.defineProperty(Array.prototype, 'keys', { configurable: true, get() { grab(this); return undefined; } });
      globalThis.Float64Array = function () { captured = true; };
      const k = timeframes['1m'];
      const ema = helpers.calculateEMASeries(k, 9);
      const rsi = helpers.getLatestRSI(k, 14);
      return { match: true, conditions: [String(captured), String(typeof rsi), String(Array.isArray(ema))] };`);
    const victim = makeTrader(`
      const k = timeframes['1m'];
      const ema = helpers.calculateEMASeries(k, 9);
      const bands = helpers.getLatestBollingerBands(k, 20, 2);
      return { match: true, conditions: [String(helpers.getLatestRSI(k, 14)), String(ema[ema.length - 1]), String(ema[3]), JSON.stringify(bands), String(helpers.calculateAvgVolume(k.slice(0, -1), 20))] };`);
    const thread = startThread([hooker, victim]);
    const reference = evaluateUnsandboxed([victim], { ...tick, traderIds: [victim.id] })[0]!;
    for (let i = 0; i < 4; i++) {
      const [hooked, seen] = thread.run().results;
      expect(hooked!.errors).toEqual([]);
      expect(hooked!.matches.map((m) => m.conditions[0])).toEqual(SYMBOLS.map(() => 'false'));
      expect(seen!.errors).toEqual([]);
      expect(seen!.matches).toEqual(withoutPrices(reference.matches));
    }
  });
});
