// Filters are untrusted: escapes are refused, runaway filters are contained, and nobody else is affected.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Trader } from '../src/domain.ts';
import { evaluateUnsandboxed } from '../bench/support/reference.ts';
import type { Screener } from '../src/screening/Screener.ts';
import type { ScreenerRun, TraderTickOutcome } from '../src/ports.ts';
import { makeTrader, screenTick, startTestScreener, TestMarket } from './screening.support.ts';

const SYMBOLS = ['AAAUSDT', 'BBBUSDT', 'CCCUSDT', 'DDDUSDT'];
const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m'], candles: 300, lastCloseTime: Date.UTC(2026, 0, 10) - 1 });

const healthy = makeTrader(`const rsi = helpers.getLatestRSI(timeframes['1m'], 14); return { match: rsi !== null, conditions: ['rsi ' + rsi.toFixed(4)] };`);

let screener: Screener;

beforeAll(async () => {
  // One thread, so every trader here shares a thread (and a memo) with the others.
  screener = await startTestScreener({ filterTimeoutMs: 50 });
});

afterAll(async () => {
  await screener.stop();
});

async function runAlone(...traders: Trader[]): Promise<TraderTickOutcome[]> {
  const { outcomes, tick } = await screenTick(screener, [...traders, healthy], SYMBOLS, market);
  // The healthy trader always evaluates every symbol and matches exactly as it does unsandboxed.
  const reference = evaluateUnsandboxed([healthy], tick)[0]!;
  const own = outcomes[traders.length]!;
  expect(own.matches).toEqual(reference.matches);
  expect(own.errors).toEqual([]);
  return outcomes.slice(0, traders.length);
}

function firstError(result: TraderTickOutcome): { code: string; message: string } {
  return result.errors.find((e) => e.symbol !== null) ?? result.errors[0]!;
}

describe('sandbox escapes are refused', () => {
  it('sees no Node globals: process, require, Buffer, fetch and timers are absent', async () => {
    const probe = makeTrader(`return { match: true, conditions: [typeof process, typeof require, typeof Buffer, typeof fetch, typeof setTimeout, typeof setInterval, typeof queueMicrotask === 'function' ? 'qm' : 'none', typeof module, typeof globalThis.__memo, typeof globalThis.__fetchRows, typeof globalThis.__runtime] };`);
    const [result] = await runAlone(probe);
    expect(result!.errors).toEqual([]);
    for (const match of result!.matches) {
      expect(match.conditions.slice(0, 6)).toEqual(['undefined', 'undefined', 'undefined', 'undefined', 'undefined', 'undefined']);
      expect(match.conditions.slice(7)).toEqual(['undefined', 'undefined', 'undefined', 'undefined']);
    }
  });

  it('cannot reach process through the constructor chain, this, or Function', async () => {
    const attempts = [
      `return this.constructor.constructor('return process')().env.SUPABASE_KEY.length > 0;`,
      `return (function () { return this; })().process.env !== undefined;`,
      `return Function('return process')().env !== undefined;`,
      `return ticker.constructor.constructor('return process')().mainModule !== undefined;`,
      `return helpers.getLatestRSI.constructor('return require')()('fs') !== undefined;`,
      `return Object.getPrototypeOf(timeframes['1m']).constructor.constructor('return process')().pid > 0;`,
    ];
    const traders = attempts.map((code) => makeTrader(code));
    const results = await runAlone(...traders);
    for (const result of results) {
      expect(result.matches).toEqual([]);
      expect(firstError(result).code).toBe('TRADER_RUNTIME');
      expect(firstError(result).message).toMatch(/ReferenceError|TypeError/);
    }
  });

  it('dynamic import() and fetch do not load or send anything', async () => {
    const importer = makeTrader(`return import('node:fs');`);
    const fetcher = makeTrader(`return fetch('http://127.0.0.1:1/steal');`);
    const [imported, fetched] = await runAlone(importer, fetcher);
    expect(imported!.matches).toEqual([]);
    expect(imported!.errors.length).toBeGreaterThan(0);
    expect(fetched!.matches).toEqual([]);
    expect(firstError(fetched!).message).toMatch(/fetch is not defined/);
  });

  it('a timer loop cannot be scheduled', async () => {
    const looper = makeTrader(`setTimeout(function again() { setTimeout(again, 0); }, 0); return true;`);
    const [result] = await runAlone(looper);
    expect(firstError(result!).message).toMatch(/setTimeout is not defined/);
  });

  it('globals written by one trader are invisible to another, even on the same thread', async () => {
    const writer = makeTrader(`globalThis.shared = 'from writer'; Array.prototype.leak = 'writer'; return true;`);
    const reader = makeTrader(`return { match: true, conditions: [typeof globalThis.shared, typeof [].leak] };`);
    const [written, read] = await runAlone(writer, reader);
    expect(written!.errors).toEqual([]);
    expect(read!.matches.map((m) => m.conditions)).toEqual(SYMBOLS.map(() => ['undefined', 'undefined']));
  });

  it('mutating inputs, helpers, prototypes and memoized results changes nothing for other traders', async () => {
    const vandal = makeTrader(`
      const k = timeframes['1m'];
      const rsi = helpers.calculateRSI(k, 14);
      rsi[rsi.length - 1] = 0;
      helpers.calculateRSI(k, 14).fill(0);
      k[k.length - 1][4] = 0;
      k.length = 0;
      try { helpers.getLatestRSI = () => 0; } catch (e) {}
      Array.prototype.map = function () { return []; };
      Object.prototype.match = true;
      Math.max = () => 0;
      return false;`);
    const [result] = await runAlone(vandal);
    expect(result!.errors).toEqual([]);
    expect(result!.evaluatedSymbols).toEqual(SYMBOLS);
  });

  it('the host callbacks reject forged arguments instead of crashing the thread', async () => {
    // Even a filter that captured the runtime's callbacks could only ask for this tick's market data.
    const forger = makeTrader(`
      const out = [];
      out.push(String(helpers.calculateHighVolumeNodes(timeframes['1m'], { bins: 5000, lookback: 1e12 }).length >= 0));
      out.push(String(helpers.calculateMASeries(timeframes['1m'], 1e12).every((v) => v === null)));
      out.push(String(helpers.getLatestRSI(timeframes['1m'], 'x')));
      return { match: true, conditions: out };`);
    const [result] = await runAlone(forger);
    expect(result!.errors).toEqual([]);
    expect(result!.matches.map((m) => m.conditions)).toEqual(SYMBOLS.map(() => ['true', 'true', 'null']));
  });
});

describe('runaway filters are contained', () => {
  it('an infinite loop times out on its first symbol and costs one time budget per tick', async () => {
    const looper = makeTrader(`while (true) {}`);
    const [result] = await runAlone(looper);
    expect(result!.matches).toEqual([]);
    expect(result!.errors.map((e) => e.code)).toEqual(['TRADER_TIMEOUT', 'TRADER_TIMEOUT']);
    expect(result!.errors.find((e) => e.symbol === null)!.message).toMatch(/3 symbols not evaluated/);
    // One budget: the batch cut at 3 x 50 ms and the symbol alone at its 500 ms wall backstop, 0.72-0.77 s in all beside four busy
    // loops (the rest is setup, which load stretches further); a budget for each of the four symbols would be over 2 s.
    expect(result!.evaluationMs).toBeLessThan(1500);
  });

  it('a memory bomb is stopped by the memory limit and the trader recovers on the next tick', async () => {
    const bomb = makeTrader(`const hoard = []; while (true) hoard.push(new Array(100000).fill(Math.random())); return true;`);
    const [first] = await runAlone(bomb);
    expect(first!.matches).toEqual([]);
    expect(['TRADER_MEMORY', 'TRADER_TIMEOUT']).toContain(firstError(first!).code);
    const [second] = await runAlone(bomb);
    expect(['TRADER_MEMORY', 'TRADER_TIMEOUT']).toContain(firstError(second!).code);
  });

  it('one builtin call that would allocate past the memory limit in one piece is refused, not a process crash', async () => {
    // Each of these took the whole process down (SIGSEGV inside V8) or committed hundreds of MB past the
    // isolate's limit before the builtins were capped: isolated-vm's limit only sees the heap grow step by step.
    const bombs = [
      `return new Array(1e8).fill(0).length > 0;`,
      `return Array.from({ length: 1e8 }).length > 0;`,
      `const a = []; a.length = 1e8; a.fill(1); return true;`,
      `return Array.prototype.fill.call({ length: 1e8 }, 0) !== null;`,
      `return new Array(1e8).toSorted().length > 0;`,
      `return Array.apply(null, { length: 1e8 }).length > 0;`,
      `return Reflect.apply(Array, null, { length: 1e8 }).length > 0;`,
      `return 'x'.repeat(5e8).length > 0;`,
      `return 'x'.padStart(5e8).length > 0;`,
      `return new Array(1e8).join('x').length > 0;`,
      `return String(new Array(1e8)).length > 0;`,
      // 10 MB: room in the isolate's 16 MB, so the listing of its 1e7 keys is what must be refused.
      `return Object.keys(new Uint8Array(1e7)).length > 0;`,
    ].map((code) => makeTrader(code));
    const rssBefore = process.memoryUsage().rss;
    const results = await runAlone(...bombs);
    for (const [i, result] of results.entries()) {
      expect(result.matches, bombs[i]!.filter.code).toEqual([]);
      expect(firstError(result).message, bombs[i]!.filter.code).toMatch(/exceeds the sandbox limit of \d+ \(FILTER_MEMORY_MB\)/);
    }
    // Nothing near the sizes asked for was ever allocated (the thread lives in this process).
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 1024 * 1024);
  });

  it('the capped builtins give the same results as the originals below the limits', async () => {
    const probe = makeTrader(`
      const k = timeframes['1m'];
      const closes = k.map((c) => c[4]);
      return { match: true, conditions: [
        String(new Array(5).fill(2).join('-')), String(Array.from({ length: 3 }, (_, i) => i * 2)), 'ab'.repeat(3), '7'.padStart(3, '0'),
        String(closes.slice(-3).length), String([1, 2].concat([3], 4).length), String(Object.keys([1, 2, 3])), String(Math.max.apply(null, [1, 5, 2])),
        String(Reflect.apply(Math.min, null, [4, 2])), 'a-b-c'.split('-').join('+'), 'x1x'.replaceAll('x', 'yy'), String([3, 1, 2].toSorted()),
      ] };`);
    const [result] = await runAlone(probe);
    expect(result!.errors).toEqual([]);
    expect(result!.matches[0]!.conditions).toEqual(['2-2-2-2-2', '0,2,4', 'ababab', '007', '3', '4', '0,1,2', '5', '2', 'a+b+c', 'yy1yy', '1,2,3']);
  });

  it('a deep recursion is an ordinary runtime error', async () => {
    const recursive = makeTrader(`function f(n) { return f(n + 1) + 1; } return f(0) > 0;`);
    const [result] = await runAlone(recursive);
    expect(firstError(result!).code).toBe('TRADER_RUNTIME');
    expect(firstError(result!).message).toMatch(/RangeError/);
  });
});

describe('the shared market rows stay out of reach', () => {
  it('a filter that hooks typed-array and Map prototypes cannot capture or corrupt the rows other traders read', async () => {
    // If the runtime ever touched its shared rows through a prototype getter or method, these hooks
    // would receive the shared view and zero it for every trader on the thread.
    const hooker = makeTrader(`
      const TypedArray = Object.getPrototypeOf(Float64Array.prototype);
      const wipe = (view) => { try { if (view && view.buffer instanceof SharedArrayBuffer) new Float64Array(view.buffer).fill(0); } catch (e) {} };
      for (const name of ['length', 'buffer', 'byteLength', 'byteOffset']) {
        const original = Object.getOwnPropertyDescriptor(TypedArray, name);
        Object.defineProperty(TypedArray, name, { configurable: true, get() { wipe(this); return original.get.call(this); } });
      }
      for (const name of ['subarray', 'slice', 'set', 'fill', 'at']) {
        const original = TypedArray[name];
        TypedArray[name] = function (...args) { wipe(this); return original.apply(this, args); };
      }
      const getter = Map.prototype.get;
      Map.prototype.get = function (key) { const value = getter.call(this, key); if (Array.isArray(value)) wipe(value[1]); return value; };
      const k = timeframes['1m'];
      return k[k.length - 1][4] > 0 && k[0][4] > 0;`);
    const victim = makeTrader(`const k = timeframes['1m']; return { match: true, conditions: [String(k[k.length - 1][4]), String(k[0][1])] };`);
    const [hooked, seen] = await runAlone(hooker, victim);
    expect(hooked!.errors).toEqual([]);
    const tick: ScreenerRun = { interval: '1m', candleOpenTime: 0, traderIds: [victim.id], symbols: SYMBOLS, market };
    expect(seen!.matches).toEqual(evaluateUnsandboxed([victim], tick)[0]!.matches);
    // And the hooker itself still saw real prices on its second tick.
    const [again] = await runAlone(hooker, victim);
    expect(again!.matches.map((m) => m.symbol)).toEqual(SYMBOLS);
  });

  it('Atomics.wait on a filter-made SharedArrayBuffer is stopped by the time limit', async () => {
    const waiter = makeTrader(`Atomics.wait(new Int32Array(new SharedArrayBuffer(16)), 0, 0); return true;`);
    const [result] = await runAlone(waiter);
    expect(result!.errors[0]!.code).toBe('TRADER_TIMEOUT');
  });

  it('gc is not available to filters', async () => {
    const collector = makeTrader(`return { match: true, conditions: [typeof gc, typeof globalThis.gc] };`);
    const [result] = await runAlone(collector);
    expect(result!.matches.map((m) => m.conditions)).toEqual(SYMBOLS.map(() => ['undefined', 'undefined']));
  });
});
