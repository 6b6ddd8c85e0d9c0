// The Screener end to end on real worker threads: same answers as the unsandboxed reference, whatever the thread count.
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import type { Trader } from '../src/domain.ts';
import { intervalMs } from '../src/domain.ts';
import { silentLogger } from '../src/logger.ts';
import { evaluateUnsandboxed } from '../bench/support/reference.ts';
import { Screener, type ScreenerOptions, type ScreenerRunResult } from '../src/screening/Screener.ts';
import type { ScreenerRun, TraderTickOutcome } from '../src/ports.ts';
import { makeTrader, randomWalk, TestMarket } from './screening.support.ts';

const LAST_CLOSE = Date.UTC(2026, 0, 10) - 1;
const SYMBOLS = Array.from({ length: 12 }, (_, i) => `S${String(i).padStart(2, '0')}USDT`);

/** Filters written the way the web app's users (and its AI) write them. */
const BROWSER_FILTERS: Array<{ code: string; requiredTimeframes?: Trader['timeframes'] }> = [
  {
    code: `const klines = timeframes['1m'];
      const rsi = helpers.getLatestRSI(klines, 14);
      if (rsi === null) return false;
      return { match: rsi < 45, conditions: ['RSI(14) ' + rsi.toFixed(2) + ' below 45'] };`,
  },
  {
    code: `const klines = timeframes['1m'];
      const closes = klines.map(k => parseFloat(k[4]));
      const fast = helpers.calculateEMASeries(klines, 9);
      const slow = helpers.calculateEMASeries(klines, 21);
      const n = closes.length - 1;
      const crossed = fast[n - 1] <= slow[n - 1] && fast[n] > slow[n];
      return { match: fast[n] > slow[n], conditions: crossed ? ['EMA 9 crossed above EMA 21'] : ['EMA 9 above EMA 21'] };`,
  },
  {
    code: `const klines = timeframes['1m'];
      const last = klines[klines.length - 1];
      const avg = helpers.calculateAvgVolume(klines.slice(0, -1), 20);
      return parseFloat(last[5]) > 1.5 * avg && parseFloat(ticker.c) > 0;`,
  },
  {
    code: `const bb = helpers.getLatestBollingerBands(timeframes['1m'], 20, 2);
      if (!bb || bb.lower === null) return false;
      const width = (bb.upper - bb.lower) / bb.middle;
      const hourly = helpers.getLatestRSI(timeframes['1h'], 14);
      return { match: width < 0.12 && hourly !== null, conditions: ['BB width ' + width.toFixed(4), 'hourly RSI ' + hourly.toFixed(1), 'HVNs ' + hvnNodes.length] };`,
    requiredTimeframes: ['1h'],
  },
  {
    code: `const klines = timeframes['1m'];
      const macd = helpers.getLatestMACD(klines);
      const stoch = helpers.getLatestStochRSI(klines);
      const near = helpers.isNearHVN(parseFloat(ticker.c), hvnNodes, 2);
      const vwap = helpers.getLatestVWAPBands(klines, 100, 2);
      return { match: macd.histogram > 0 && stoch !== null && stoch.k > 20, conditions: ['near HVN ' + near, 'vwap ' + vwap.vwap.toFixed(3), 'adx ' + helpers.calculateADX(klines, 14).toFixed(2)] };`,
  },
  {
    // Fails on some symbols only: an ordinary per-symbol runtime error.
    code: `const last = parseFloat(timeframes['1m'][timeframes['1m'].length - 1][4]);
      if (last > 120) return null.boom;
      return last < 110 ? 'yes' : last > 0;`,
  },
];

function browserTraders(): Trader[] {
  return BROWSER_FILTERS.map((filter) => makeTrader(filter.code, { requiredTimeframes: filter.requiredTimeframes }));
}

const screeners: Screener[] = [];

async function startScreener(overrides: Partial<ScreenerOptions> = {}): Promise<Screener> {
  const screener = new Screener({ threads: 2, filterTimeoutMs: 200, filterMemoryMb: 32, failureLimit: 3, clock: systemClock, logger: silentLogger(), ...overrides });
  screeners.push(screener);
  await screener.start();
  return screener;
}

afterEach(async () => {
  await Promise.all(screeners.splice(0).map((screener) => screener.stop()));
});

/** Results without the timings, which legitimately differ between runs. */
function comparable(results: TraderTickOutcome[]): unknown {
  return results.map(({ evaluationMs: _ms, ...rest }) => rest);
}

function tickOver(market: TestMarket, traders: Trader[]): ScreenerRun {
  return { interval: '1m', candleOpenTime: LAST_CLOSE + 1 - intervalMs('1m'), traderIds: traders.map((t) => t.id), symbols: SYMBOLS, market };
}

describe('Screener', () => {
  it('browser-style filters give the same matches, conditions and errors as the unsandboxed reference', async () => {
    const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m', '1h'], candles: 500, lastCloseTime: LAST_CLOSE });
    const traders = browserTraders();
    const screener = await startScreener();
    screener.setTraders(traders);
    const tick = tickOver(market, traders);
    const result = await screener.run(tick);
    const reference = evaluateUnsandboxed(traders, tick);
    expect(comparable(result.traders)).toEqual(comparable(reference));
    // The comparison means something only if the filters actually matched, failed and passed.
    const all = result.traders.flatMap((t) => t.matches);
    expect(all.length).toBeGreaterThan(10);
    expect(result.traders.some((t) => t.errors.some((e) => e.code === 'TRADER_RUNTIME'))).toBe(true);
    expect(result.traders.some((t) => t.warnings.length > 0)).toBe(true);
    expect(result.evaluations).toBe(traders.length * SYMBOLS.length);
    expect(all.every((m) => m.price === market.series(m.symbol, '1m')!.lastClosed()!.close)).toBe(true);
  });

  it('gives identical results with one thread and with two', async () => {
    const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m', '1h'], candles: 300, lastCloseTime: LAST_CLOSE, seed: 5 });
    const traders = browserTraders();
    const one = await startScreener({ threads: 1 });
    const two = await startScreener({ threads: 2 });
    one.setTraders(traders);
    two.setTraders(traders);
    const [a, b] = await Promise.all([one.run(tickOver(market, traders)), two.run(tickOver(market, traders))]);
    expect(comparable(a.traders)).toEqual(comparable(b.traders));
    expect(one.stats().threads).toBe(1);
    expect(two.stats().threads).toBe(2);
  });

  it('follows the market as candles close and as a gap fill rewrites history', async () => {
    const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m', '1h'], candles: 200, lastCloseTime: LAST_CLOSE, seed: 9 });
    const traders = browserTraders();
    const screener = await startScreener();
    screener.setTraders(traders);
    let lastClose = LAST_CLOSE;
    for (let step = 0; step < 3; step++) {
      const tick = tickOver(market, traders);
      const result: ScreenerRunResult = await screener.run({ ...tick, candleOpenTime: lastClose + 1 - intervalMs('1m') });
      expect(comparable(result.traders)).toEqual(comparable(evaluateUnsandboxed(traders, tick)));
      lastClose += intervalMs('1m');
      for (const [i, symbol] of SYMBOLS.entries()) {
        const next = randomWalk({ seed: 1000 + step * 50 + i, count: 1, interval: '1m', lastOpenTime: lastClose + 1 - intervalMs('1m'), start: 80 + i * 5 });
        market.append(symbol, '1m', next[0]!);
      }
    }
    // A rewrite (same last candle, different history) must be resent, not appended.
    const rewritten = randomWalk({ seed: 77, count: 200, interval: '1m', lastOpenTime: lastClose + 1 - intervalMs('1m') });
    market.setSeries(SYMBOLS[0]!, '1m', rewritten);
    const tick = tickOver(market, traders);
    expect(comparable((await screener.run(tick)).traders)).toEqual(comparable(evaluateUnsandboxed(traders, tick)));
  });

  it('skips a symbol that lacks one of the trader timeframes', async () => {
    const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m'], candles: 100, lastCloseTime: LAST_CLOSE });
    const hourly = TestMarket.build({ symbols: SYMBOLS.slice(0, 4), intervals: ['1h'], candles: 100, lastCloseTime: LAST_CLOSE });
    for (const symbol of SYMBOLS.slice(0, 4)) market.setSeries(symbol, '1h', [...Array(100).keys()].map((i) => hourly.series(symbol, '1h')!.get(i)));
    const trader = makeTrader(`return timeframes['1h'].length === 100;`, { requiredTimeframes: ['1h'] });
    const screener = await startScreener();
    screener.setTraders([trader]);
    const result = await screener.run(tickOver(market, [trader]));
    expect(result.traders[0]!.evaluatedSymbols).toEqual(SYMBOLS.slice(0, 4));
    expect(result.traders[0]!.matches.map((m) => m.symbol)).toEqual(SYMBOLS.slice(0, 4));
    expect(result.traders[0]!.errors).toEqual([]);
  });

  it('disables a trader after failureLimit failing ticks and re-enables it when its row changes', async () => {
    const market = TestMarket.build({ symbols: SYMBOLS.slice(0, 3), intervals: ['1m'], candles: 60, lastCloseTime: LAST_CLOSE });
    const thrower = makeTrader(`throw new Error('bad filter');`);
    // A helper the library lacks (as AI-drafted filters call them) throws on every symbol: the browser hides it, the worker records it.
    const stringy = makeTrader(`return helpers.getLatestMA(timeframes['1m'], 20) > 0;`);
    const broken = makeTrader(`return (;`);
    const fine = makeTrader(`return true;`);
    const screener = await startScreener({ failureLimit: 2 });
    const traders = [thrower, stringy, broken, fine];
    screener.setTraders(traders);
    const tick = { ...tickOver(market, traders), symbols: SYMBOLS.slice(0, 3) };

    const first = await screener.run(tick);
    const byId = (result: ScreenerRunResult, id: string) => result.traders.find((t) => t.traderId === id);
    expect(byId(first, thrower.id)!.errors.map((e) => [e.code, e.message])).toEqual(SYMBOLS.slice(0, 3).map(() => ['TRADER_RUNTIME', 'Error: bad filter']));
    expect(byId(first, stringy.id)!.errors[0]!.message).toMatch(/TypeError: .*getLatestMA/);
    expect(byId(first, broken.id)!.errors).toEqual([{ symbol: null, code: 'TRADER_COMPILE', message: expect.stringMatching(/SyntaxError/) }]);
    expect(first.traders.every((t) => t.disabled === null)).toBe(true);

    const second = await screener.run(tick);
    for (const id of [thrower.id, stringy.id, broken.id]) expect(byId(second, id)!.disabled!.reason).toMatch(/2 failing ticks/);
    expect(byId(second, fine.id)!.disabled).toBeNull();
    expect(screener.disabledTraders().map((d) => d.traderId).sort()).toEqual([thrower.id, stringy.id, broken.id].sort());

    const third = await screener.run(tick);
    expect(third.traders.map((t) => t.traderId)).toEqual([fine.id]);

    // The same rows again change nothing; a changed row is evaluated again.
    screener.setTraders(traders);
    expect(screener.disabledTraders()).toHaveLength(3);
    const fixed = makeTrader(`return false;`, { id: thrower.id, updatedAt: '2026-02-01T00:00:00.000Z' });
    screener.setTraders([fixed, stringy, broken, fine]);
    expect(screener.disabledTraders().map((d) => d.traderId)).not.toContain(thrower.id);
    const fourth = await screener.run(tick);
    expect(byId(fourth, thrower.id)!.evaluatedSymbols).toEqual(SYMBOLS.slice(0, 3));
    expect(byId(fourth, thrower.id)!.errors).toEqual([]);
    expect(screener.stats().errors).toBeGreaterThanOrEqual(14);
  });

  it('a trader that spends its tick budget has its remaining symbols skipped with an error while the others still run', async () => {
    const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m', '1h'], candles: 200, lastCloseTime: LAST_CLOSE, seed: 3 });
    // Each evaluation stays under the 100 ms timeout, so only the per-tick budget can stop it.
    const slow = makeTrader(`const end = Date.now() + 45; while (Date.now() < end) {} return true;`);
    const healthy = browserTraders()[0]!;
    const screener = await startScreener({ threads: 1, filterTimeoutMs: 100, filterTickBudgetMs: 120, failureLimit: 2 });
    screener.setTraders([slow, healthy]);
    const tick = tickOver(market, [slow, healthy]);
    const byId = (result: ScreenerRunResult, id: string) => result.traders.find((t) => t.traderId === id)!;

    const first = await screener.run(tick);
    const slowResult = byId(first, slow.id);
    expect(slowResult.evaluatedSymbols.length).toBeGreaterThan(0);
    expect(slowResult.evaluatedSymbols.length).toBeLessThan(SYMBOLS.length);
    expect(slowResult.evaluatedSymbols).toEqual(SYMBOLS.slice(0, slowResult.evaluatedSymbols.length));
    const skipped = SYMBOLS.length - slowResult.evaluatedSymbols.length;
    expect(slowResult.errors).toEqual([
      { symbol: null, code: 'TRADER_TIMEOUT', message: expect.stringMatching(new RegExp(`120 ms tick budget \\(FILTER_TICK_BUDGET_MS\\).*; ${skipped} symbols not evaluated this tick$`)) },
    ]);
    // The healthy trader on the same thread saw every symbol and answers as the unsandboxed reference does.
    const reference = evaluateUnsandboxed([healthy], { ...tick, traderIds: [healthy.id] });
    expect(comparable([byId(first, healthy.id)])).toEqual(comparable(reference));
    expect(byId(first, healthy.id).evaluatedSymbols).toEqual(SYMBOLS);
    expect(byId(first, healthy.id).matches.length).toBeGreaterThan(0);

    // A spent budget is a failing tick: failureLimit of them disable the slow trader, not the healthy one.
    const second = await screener.run(tick);
    expect(byId(second, slow.id).disabled!.reason).toMatch(/2 failing ticks in a row; last error TRADER_TIMEOUT: .*tick budget/);
    expect(byId(second, healthy.id).disabled).toBeNull();
  });

  it('keeps a disable restored from before a restart until the row changes', async () => {
    const market = TestMarket.build({ symbols: SYMBOLS.slice(0, 2), intervals: ['1m'], candles: 30, lastCloseTime: LAST_CLOSE });
    const trader = makeTrader(`return true;`, { updatedAt: '2026-03-01T00:00:00.000Z' });
    const screener = await startScreener();
    screener.disable(trader.id, 'failed before restart', trader.updatedAt);
    screener.setTraders([trader]);
    const tick = { ...tickOver(market, [trader]), symbols: SYMBOLS.slice(0, 2) };
    expect((await screener.run(tick)).traders).toEqual([]);
    expect(screener.disabledTraders()).toEqual([{ traderId: trader.id, reason: 'failed before restart' }]);
    screener.setTraders([{ ...trader, updatedAt: '2026-03-02T00:00:00.000Z' }]);
    expect(screener.disabledTraders()).toEqual([]);
    expect((await screener.run(tick)).traders[0]!.matches).toHaveLength(2);
  });

  it('a thread that dies mid-tick is charged to the trader it was running; its neighbours run again and lose nothing', async () => {
    const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m'], candles: 60, lastCloseTime: LAST_CLOSE });
    // Fault injection: the thread exits as a native crash would, as soon as it begins the marked trader.
    const marker = 'SCREENER_TEST_THREAD_EXIT_1';
    const before = makeTrader(`return helpers.getLatestRSI(timeframes['1m'], 14) > 50;`);
    const crasher = makeTrader(`/* ${marker} */ return true;`);
    const after = makeTrader(`const k = timeframes['1m']; return { match: k[k.length - 1][4] > k[k.length - 2][4], conditions: ['up'] };`);
    const screener = await startScreener({ threads: 1, faults: { threadExitMarker: marker } });
    const traders = [before, crasher, after];
    screener.setTraders(traders);
    const tick = tickOver(market, traders);
    const first = await screener.run(tick);
    const charged = first.traders.find((t) => t.traderId === crasher.id)!;
    expect(charged.errors).toEqual([{ symbol: null, code: 'TRADER_CRASH', message: expect.stringMatching(/^crashed its screening thread: .*exit code 71/) }]);
    expect(charged.disabled!.reason).toMatch(/^TRADER_CRASH: crashed its screening thread: /);
    expect(screener.disabledTraders().map((d) => d.traderId)).toEqual([crasher.id]);
    const reference = evaluateUnsandboxed([before, after], tick);
    const neighbours = first.traders.filter((t) => t.traderId !== crasher.id);
    expect(comparable(neighbours)).toEqual(comparable(reference));
    expect(neighbours.every((t) => t.disabled === null && t.errors.length === 0 && t.evaluatedSymbols.length === SYMBOLS.length)).toBe(true);
    expect(screener.stats().threadRestarts).toBe(1);
    // Disabled, it never runs again: the next tick costs no restart.
    const second = await screener.run(tick);
    expect(comparable(second.traders)).toEqual(comparable(reference));
    expect(screener.stats().threadRestarts).toBe(1);
  });

  it('a thread killed at any moment loses no neighbour its results: at most the trader it was running is charged', async () => {
    const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m'], candles: 60, lastCloseTime: LAST_CLOSE });
    const slow = [0, 1, 2].map(() => makeTrader(`const end = Date.now() + 20; while (Date.now() < end) {} return true;`));
    const screener = await startScreener({ threads: 1, filterTickBudgetMs: 60_000 });
    screener.setTraders(slow);
    const inFlight = screener.run(tickOver(market, slow));
    await new Promise((resolve) => setTimeout(resolve, 100));
    await screener.crashThreadForTest(0);
    const crashed = await inFlight;
    const charged = crashed.traders.filter((t) => t.errors.some((e) => e.code === 'TRADER_CRASH'));
    expect(charged.length).toBeLessThanOrEqual(1);
    for (const other of crashed.traders.filter((t) => !charged.includes(t))) {
      expect(other.errors).toEqual([]);
      expect(other.matches.map((m) => m.symbol)).toEqual(SYMBOLS);
    }
    expect(screener.stats().threadRestarts).toBe(1);
  });

  it('a filter that changes its klines gets helper results on what it changed, as unsandboxed', async () => {
    const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m'], candles: 200, lastCloseTime: LAST_CLOSE, seed: 4 });
    const changer = makeTrader(`
      const k = timeframes['1m'];
      const before = helpers.getLatestRSI(k, 14);
      const recent = k.slice(-60);
      recent.push(recent[0]);
      k.reverse();
      return { match: true, conditions: [String(before), String(helpers.getLatestRSI(k, 14)), String(helpers.calculateAvgVolume(recent, 20)), String(helpers.getLatestEMA(k.slice(-30), 9))] };`);
    const screener = await startScreener({ threads: 1 });
    screener.setTraders([changer]);
    const tick = tickOver(market, [changer]);
    const result = await screener.run(tick);
    expect(result.traders[0]!.errors).toEqual([]);
    // Prices aside: the reference reads its price from the filter's own (here reversed) klines.
    const withoutPrices = (results: TraderTickOutcome[]) => results.map((r) => ({ ...r, evaluationMs: 0, matches: r.matches.map(({ price: _price, ...m }) => m) }));
    expect(withoutPrices(result.traders)).toEqual(withoutPrices(evaluateUnsandboxed([changer], tick)));
    // The reversed series really gives another RSI, so the comparison above could fail.
    expect(result.traders[0]!.matches.some((m) => m.conditions[0] !== m.conditions[1])).toBe(true);
  });

  it('a trader that opts in to the textbook helpers gets them, memoized or not, beside a trader on the web app default', async () => {
    const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m'], candles: 300, lastCloseTime: LAST_CLOSE, seed: 4 });
    // The web app's StochRSI is an array of { k, d }; the textbook one is { k: [...], d: [...] }. Same body, both libraries, on the
    // series itself (host memo, shared by the thread) and on a copy (computed in the isolate).
    const code = `
      const k = timeframes['1m'];
      const shape = (r) => Array.isArray(r) ? 'array' : r && Array.isArray(r.k) ? 'columns' : typeof r;
      return { match: true, conditions: [shape(helpers.calculateStochRSI(k)), shape(helpers.calculateStochRSI(Array.from(k))), String(helpers.calculateADX(k, 14))] };`;
    const webapp = makeTrader(code);
    const textbook = makeTrader(code, { helpers: 'textbook' });
    const screener = await startScreener({ threads: 1 });
    screener.setTraders([webapp, textbook]);
    const tick = tickOver(market, [webapp, textbook]);
    const result = await screener.run(tick);
    expect(comparable(result.traders)).toEqual(comparable(evaluateUnsandboxed([webapp, textbook], tick)));
    const conditions = (trader: Trader) => result.traders.find((t) => t.traderId === trader.id)!.matches.map((m) => m.conditions.slice(0, 2));
    expect(conditions(webapp)).toEqual(SYMBOLS.map(() => ['array', 'array']));
    expect(conditions(textbook)).toEqual(SYMBOLS.map(() => ['columns', 'columns']));
  });

  it('memoized helper results equal the ones computed on a copy inside the isolate', async () => {
    const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m'], candles: 300, lastCloseTime: LAST_CLOSE, seed: 3 });
    const same = makeTrader(`
      const k = timeframes['1m'];
      // Array.from gives a plain array the runtime does not know: helpers run on it inside the isolate.
      const copy = Array.from(k);
      const checks = ['calculateRSI', 'calculateMACDValues', 'calculateBollingerBands', 'calculateVWAPBands', 'calculateHighVolumeNodes', 'calculateStochRSI', 'getLatestEMA']
        .map((name) => JSON.stringify(helpers[name](k, 14)) === JSON.stringify(helpers[name](copy, 14)));
      checks.push(JSON.stringify(hvnNodes) === JSON.stringify(helpers.calculateHighVolumeNodes(copy, { lookback: Math.min(copy.length, 100) })));
      // Slices of the series are memoized by range; the same slices of the copy are not.
      for (const [from, to] of [[0, -1], [-100, undefined], [10, 60], [-5, -5]]) {
        checks.push(JSON.stringify(helpers.calculateRSI(k.slice(from, to), 14)) === JSON.stringify(helpers.calculateRSI(copy.slice(from, to), 14)));
        checks.push(helpers.calculateAvgVolume(k.slice(from, to), 20) === helpers.calculateAvgVolume(copy.slice(from, to), 20));
      }
      // A slice holds the same candle objects as the series, as Array.prototype.slice would.
      checks.push(k.slice(-3)[0] === k[k.length - 3] && k.slice(1, 4).length === 3 && Array.isArray(k.slice(2)));
      return { match: checks.every(Boolean), conditions: checks.map(String) };`);
    const screener = await startScreener({ threads: 1 });
    screener.setTraders([same]);
    const result = await screener.run(tickOver(market, [same]));
    expect(result.traders[0]!.errors).toEqual([]);
    expect(result.traders[0]!.matches).toHaveLength(SYMBOLS.length);
  });
});
