// What the isolate runtime's cheaper paths must keep: the same candles and results as plain arrays, and isolates kept (not rebuilt) when garbage alone grew them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateUnsandboxed } from '../bench/support/reference.ts';
import type { Screener } from '../src/screening/Screener.ts';
import { SharedSeriesStore, type SeriesSlot } from '../src/screening/sharedSeries.ts';
import { ThreadScreener } from '../src/screening/worker.ts';
import { makeTrader, screenTick, startTestScreener, TestMarket } from './screening.support.ts';

const LAST_CLOSE = Date.UTC(2026, 0, 10) - 1;
const SYMBOLS = ['AAAUSDT', 'BBBUSDT', 'CCCUSDT'];
const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m', '5m'], candles: 120, lastCloseTime: LAST_CLOSE, seed: 11 });

let screener: Screener;

beforeAll(async () => {
  screener = await startTestScreener({ filterTimeoutMs: 200 });
});

afterAll(async () => {
  await screener.stop();
});

describe('candles of a kline array', () => {
  it('are the same objects on every read, before and after a filter has read more than a handful of them', async () => {
    // The runtime keeps the first few candles read without an array sized to the timeframe, then moves
    // them into one: identity and a filter's own changes must survive the move, as on a plain array.
    const prober = makeTrader(`
      const k = timeframes['1m'];
      const h = timeframes['5m'];
      const out = [];
      const last = k[k.length - 1];
      last.mark = 'kept';
      last[4] = -1;
      out.push(String(k[k.length - 1] === last), String(k.at(-1).mark), String(k[k.length - 1][4]));
      const first = [k[0], k[1], k[2]];
      out.push(String(k[1] === first[1]), String(k.slice(1)[0] === first[1]), String(k.slice(-1)[0] === last));
      const more = [k[3], k[4], k[5], k[6], k[7]];
      out.push(String(k[k.length - 1] === last), String(k[k.length - 1].mark), String(k[k.length - 1][4]));
      out.push(String(first.every((c, i) => c === k[i])), String(more.every((c, i) => c === k[i + 3])), String(k.slice(3, 8).every((c, i) => c === more[i])));
      out.push(String(h[h.length - 1] === h.at(-1)), String(h[0] !== k[0]), String(h[h.length - 1][4]));
      out.push(String(k.map((c) => c[4]).slice(-2)), String(k.filter((c) => c.mark === 'kept').length));
      return { match: true, conditions: out };`, { requiredTimeframes: ['5m'] });
    const { outcomes, tick } = await screenTick(screener, [prober], SYMBOLS, market);
    expect(outcomes[0]!.errors).toEqual([]);
    const reference = evaluateUnsandboxed([prober], tick)[0]!;
    expect(reference.errors).toEqual([]);
    expect(outcomes[0]!.matches.map((m) => m.conditions)).toEqual(reference.matches.map((m) => m.conditions));
    expect(outcomes[0]!.matches[0]!.conditions.slice(0, 12)).toEqual(['true', 'kept', '-1', 'true', 'true', 'true', 'true', 'kept', '-1', 'true', 'true', 'true']);
  });
});

describe('records read from the results board', () => {
  it('are built without running a setter or getter a filter put on a prototype, and stay each filter\'s own', async () => {
    const reads = `
      const k = timeframes['1m'];
      const bands = helpers.getLatestBollingerBands(k, 20, 2);
      const macd = helpers.getLatestMACD(k);
      const stoch = helpers.getLatestStochRSI(k);
      const nodes = hvnNodes;
      const out = [JSON.stringify(bands), JSON.stringify(macd), JSON.stringify(stoch), JSON.stringify(nodes), String(Object.getPrototypeOf(bands) === Object.prototype), JSON.stringify(Object.keys(nodes[0] ?? {}))];
      // Changing what it got changes nothing for its next call or anyone else's.
      bands.upper = -1; delete bands.lower; macd.extra = 1; if (nodes[0]) { nodes[0].price = -1; nodes[0].priceRange.length = 0; }
      out.push(JSON.stringify(helpers.getLatestBollingerBands(k, 20, 2)), JSON.stringify(hvnNodes === nodes));
      return { match: true, conditions: out };`;
    const tamperer = makeTrader(`
      if (!globalThis.tampered) {
        globalThis.tampered = true;
        for (const key of ['upper', 'middle', 'lower', 'macd', 'signal', 'histogram', 'k', 'd', 'price', 'volume', 'buyVolume', 'sellVolume', 'strength', 'priceRange']) {
          Object.defineProperty(Object.prototype, key, { get() { throw new Error('getter of ' + key + ' ran'); }, set() { throw new Error('setter of ' + key + ' ran'); }, configurable: true });
        }
      }
      ${reads}`);
    const clean = makeTrader(reads);
    // The first tick teaches the board these calls; the second reads them from it.
    for (let round = 0; round < 2; round++) {
      const { outcomes, tick } = await screenTick(screener, [tamperer, clean], SYMBOLS, market);
      expect(outcomes[0]!.errors).toEqual([]);
      expect(outcomes[1]!.errors).toEqual([]);
      expect(outcomes[0]!.matches).toEqual(outcomes[1]!.matches);
      const reference = evaluateUnsandboxed([clean], { ...tick, traderIds: [clean.id] })[0]!;
      expect(outcomes[1]!.matches.map((m) => m.conditions)).toEqual(reference.matches.map((m) => m.conditions));
    }
  });
});

describe('isolates between ticks', () => {
  it('are collected, not rebuilt, when their heap grew with garbage alone', () => {
    // Each evaluation leaves a 640 kB array behind (large-object space: only a full collection frees it),
    // so every tick grows the heap by about 2 MB past its first tick. A global counter shows whether the
    // isolate (and its compiled code) survived: a rebuilt one would count from 1 again.
    const litter = makeTrader(`globalThis.count = (globalThis.count ?? 0) + 1; const junk = new Array(80000).fill(1.5); return { match: junk.length > 0, conditions: [String(globalThis.count)] };`);
    const thread = new ThreadScreener({ filterTimeoutMs: 1000, filterMemoryMb: 64 }, (message) => {
      throw new Error(message);
    });
    const store = new SharedSeriesStore();
    thread.setTraders([{ id: litter.id, code: litter.filter.code, codeHash: litter.codeHash, updatedAt: litter.updatedAt, refreshInterval: '1m', timeframes: ['1m'], hvnInterval: '1m', helpers: 'webapp' }], []);
    try {
      const counts: string[] = [];
      let recycled = 0;
      for (let tick = 0; tick < 5; tick++) {
        const slots: Record<string, SeriesSlot> = {};
        for (const symbol of SYMBOLS) slots[`${symbol}|1m`] = store.sync(market, symbol, '1m', 0)!;
        const buffers = tick === 0 ? Object.values(slots).map((slot) => store.buffer(slot[0])!) : [];
        const reply = thread.tick({ type: 'tick', tickId: tick, traderIds: [litter.id], symbols: SYMBOLS, tickers: {}, buffers, dropped: [], slots });
        expect(reply.traders[0]!.errors).toEqual([]);
        counts.push(reply.traders[0]!.matches.at(-1)!.conditions[0]!);
        recycled += thread.recycleGrownIsolates();
      }
      expect(counts).toEqual(['3', '6', '9', '12', '15']);
      expect(recycled).toBe(0);
    } finally {
      thread.stop();
    }
  });
});
