// What a filter receives inside its isolate (ticker, timeframes, lazy kline arrays) is what the browser's plain objects and arrays would be.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateUnsandboxed } from '../bench/support/reference.ts';
import type { Screener } from '../src/screening/Screener.ts';
import { makeTrader, screenTick, startTestScreener, TestMarket } from './screening.support.ts';

const SYMBOLS = ['AAAUSDT', 'BBBUSDT', 'CCCUSDT'];
const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m', '5m', '15m', '1h', '4h'], candles: 120, lastCloseTime: Date.UTC(2026, 0, 10) - 1, seed: 5 });

let screener: Screener;

beforeAll(async () => {
  screener = await startTestScreener({ filterTimeoutMs: 200 });
});

afterAll(async () => {
  await screener.stop();
});

/** Reads of a kline array, each one condition; the array is changed only at the end, so every read sees the series. */
const PROBES = `
  const out = [];
  const probe = (name, read) => { try { out.push(name + ' ' + JSON.stringify(read())); } catch (e) { out.push(name + ' threw ' + (e && e.name)); } };
  const k = timeframes['1m'];
  // Before anything makes the array whole (the probes below do): the keys as the lazy array reads them.
  probe('index, lazy', () => [k[0], k['01'], k['1.5'], k['1e1'], k['1e2'], k['0x1'], k[' 1'], k['+5'], k['5 '], k['-0'], k['100'], k[k.length - 1], k[String(k.length)], k['4096'], k['9999999999']]);
  probe('in, lazy', () => ['01' in k, '1e1' in k, '7' in k, String(k.length - 1) in k]);
  probe('keys', () => Object.keys(timeframes));
  probe('own', () => [Object.getOwnPropertyNames(timeframes), Object.getPrototypeOf(timeframes) === Object.prototype, Object.getOwnPropertyDescriptor(timeframes, '1m').writable]);
  probe('ticker', () => [Object.keys(ticker), ticker, Object.getPrototypeOf(ticker) === Object.prototype]);
  probe('shape', () => [Array.isArray(k), typeof k, k instanceof Array, Object.getPrototypeOf(k) === Array.prototype, k.constructor === Array]);
  probe('length', () => [k.length, k.slice(0, -1).length, k.slice(-5).length, k.slice(7, 3).length, k.slice().length, k.slice('2', '9').length]);
  probe('index', () => [k[0], k[k.length - 1], k[k.length], k[-1], k['01'], k['1.5'], k[1.5], k['1e1'], k['0x1'], k[' 1'], k['1e2'], k['100'], k['+5'], k['5 '], k['-0'], k['4096'], k['9999999999']]);
  probe('at', () => [k.at(-1), k.at(0), k.at(k.length), k.at(-k.length - 1), k.at('3'), k.at(2.7), k.at()]);
  probe('in', () => [0 in k, (k.length - 1) in k, k.length in k, 'length' in k, '01' in k, '1e2' in k, '100' in k, 'slice' in k, Symbol.iterator in k]);
  probe('same candle', () => [k[5] === k[5], k.slice(2)[3] === k[5], k.slice(-3)[0] === k.at(-3), k.slice(1, 9).slice(2, 4)[1] === k[4]]);
  probe('slices', () => [k.slice(-2), k.slice(0, 2), k.slice(3, -110), k.slice(-1000, 2), k.slice(NaN, 1), k.slice(1, undefined).length, k.slice(undefined, 1)]);
  probe('methods', () => [k.indexOf(k[3]), k.includes(k[2]), k.map((c) => c[4]).slice(-3), k.filter((c, i) => i < 2), k.reduce((s, c) => s + c[5], 0), k.findLast(() => true)]);
  probe('iteration', () => { let n = 0; for (const c of k) n += c[4]; const spread = [...k.slice(-3)]; return [n, spread, Array.from(k.slice(0, 2)), Object.entries(k.slice(-1))]; });
  probe('descriptors', () => [Object.getOwnPropertyDescriptor(k, '3'), Object.getOwnPropertyDescriptor(k, 'length'), Object.keys(k).length, Reflect.ownKeys(k.slice(-2))]);
  probe('json', () => JSON.parse(JSON.stringify(k)).length);
  probe('other timeframes', () => ['5m', '15m', '1h', '4h'].map((i) => [timeframes[i].length, timeframes[i].at(-1)[4]]));
  probe('helpers', () => [helpers.getLatestRSI(k, 14), helpers.getLatestRSI(k.slice(0, -1), 14), helpers.calculateAvgVolume(k.slice(-30), 20), helpers.getLatestEMA(timeframes['4h'], 9)]);
  const s = k.slice(-4);
  s.push(s[0]);
  k.reverse();
  k[0] = 'x';
  delete k[1];
  probe('changed', () => [s.length, s[4] === s[0], k[0], k[1], k.length, helpers.getLatestRSI(k.slice(2), 14)]);
  // The reference reads its match price from the last candle: keep one there.
  k.length = 5;
  probe('shortened', () => [k.length, k.slice(-2)]);
  return { match: true, conditions: out };`;

describe('kline arrays and the objects around them', () => {
  it('answer every read, slice, method and change like the plain arrays of the unsandboxed reference', async () => {
    const prober = makeTrader(PROBES, { requiredTimeframes: ['5m', '15m', '1h', '4h'] });
    const { outcomes, tick } = await screenTick(screener, [prober], SYMBOLS, market);
    expect(outcomes[0]!.errors).toEqual([]);
    const reference = evaluateUnsandboxed([prober], tick)[0]!;
    expect(reference.errors).toEqual([]);
    expect(outcomes[0]!.matches.map((m) => m.conditions)).toEqual(reference.matches.map((m) => m.conditions));
    // Every probe read something (no probe threw in both places alike, hiding a difference).
    expect(reference.matches[0]!.conditions.filter((c) => c.includes(' threw '))).toEqual([]);
  });

  it('stay the same, with the same helper results, after a filter tampered with every builtin the runtime relies on', async () => {
    const reads = `
      const k = timeframes['1m'];
      return { match: true, conditions: [JSON.stringify(Object.keys(timeframes)), String(k.length), String(k[k.length - 1][4]), String(helpers.getLatestRSI(k, 14)),
        String(helpers.getLatestRSI(k.slice(0, -1), 14)), String(helpers.calculateAvgVolume(k.slice(-30), 20)), String(timeframes['5m'].at(-2)[1]), JSON.stringify(ticker)] };`;
    // The first evaluation tampers; the reads run in every evaluation, the first one included.
    const tamperer = makeTrader(`
      if (!globalThis.tampered) {
        globalThis.tampered = true;
        for (const key of ['1m', '5m', 'source', 'full', 'dirty', 'length']) Object.defineProperty(Object.prototype, key, { set() { throw new Error('setter of ' + key + ' ran'); }, configurable: true });
        // The first indices of every array: the runtime's own lists must never write through a prototype.
        for (let i = 0; i < 20; i++) Object.defineProperty(Array.prototype, String(i), { set() { throw new Error('index setter ran'); }, configurable: true });
        WeakMap.prototype.get = () => { throw new Error('WeakMap.get ran'); };
        WeakMap.prototype.set = () => { throw new Error('WeakMap.set ran'); };
        Map.prototype.get = () => { throw new Error('Map.get ran'); };
        Reflect.defineProperty = () => { throw new Error('defineProperty ran'); };
        Object.create = () => { throw new Error('Object.create ran'); };
        String.prototype.charCodeAt = () => 48;
        globalThis.Proxy = function () { throw new Error('Proxy ran'); };
      }
      ${reads}`, { requiredTimeframes: ['5m'] });
    const clean = makeTrader(reads, { requiredTimeframes: ['5m'] });
    const { outcomes } = await screenTick(screener, [tamperer, clean], SYMBOLS, market);
    expect(outcomes[0]!.errors).toEqual([]);
    expect(outcomes[1]!.errors).toEqual([]);
    expect(outcomes[0]!.matches).toEqual(outcomes[1]!.matches);
    expect(outcomes[0]!.matches).toHaveLength(SYMBOLS.length);
  });

  it('give correct helper results on arrays kept from an earlier evaluation and on more slices than an evaluation tracks', async () => {
    const keeper = makeTrader(`
      const k = timeframes['1m'];
      const earlier = globalThis.kept ?? k;
      globalThis.kept = k;
      const copy = Array.from(earlier);
      const slices = [];
      for (let i = 0; i < 300; i++) slices.push(k.slice(0, k.length - (i % 50)));
      const plain = Array.from(k);
      const same = [
        helpers.getLatestRSI(earlier, 14) === helpers.getLatestRSI(copy, 14),
        helpers.getLatestRSI(earlier.slice(-40), 14) === helpers.getLatestRSI(copy.slice(-40), 14),
        helpers.getLatestRSI(slices[0], 14) === helpers.getLatestRSI(plain, 14),
        helpers.getLatestRSI(slices[299], 14) === helpers.getLatestRSI(plain.slice(0, plain.length - 49), 14),
      ];
      return { match: same.every(Boolean), conditions: same.map(String) };`);
    const { outcomes } = await screenTick(screener, [keeper], SYMBOLS, market);
    expect(outcomes[0]!.errors).toEqual([]);
    expect(outcomes[0]!.matches.map((m) => m.conditions)).toEqual(SYMBOLS.map(() => ['true', 'true', 'true', 'true']));
  });

  it('read every shape of verdict like the unsandboxed reference: conditions, warnings, truthiness and the order of reads', async () => {
    const shapes = [
      `return { match: true, conditions: ['a', 'b\\u0000c', 'd'.repeat(600)] };`,
      `return { match: true };`,
      `return { match: true, conditions: [] };`,
      `return { match: 1, conditions: ['loose', 2, null, 'kept'] };`,
      `return { match: true, conditions: 'one string' };`,
      `return { match: false, conditions: ['never read'] };`,
      `return { conditions: ['no match key'] };`,
      `return [1, 2];`,
      `return 0;`,
      `return 'yes';`,
      `return undefined;`,
      `return () => true;`,
      `return { match: true, conditions: Array.from({ length: 60 }, (_, i) => 'c' + i) };`,
      `return { match: true, conditions: ['\\ud800 lone', 'ok'], values: { a: 1, 'bad key': 2, b: NaN } };`,
      // Getters see the order the verdict is read in: match, conditions, each condition, values.
      `const seen = []; return { get match() { seen.push('match'); return true; }, get conditions() { seen.push('conditions'); return [{ toString() { return 'x'; } }, 'first', { get length() { return 0; } }].concat([seen.join()]); }, get values() { seen.push('values'); return undefined; } };`,
      `return new Proxy({ match: true, conditions: ['through a proxy'] }, {});`,
    ];
    const traders = shapes.map((code) => makeTrader(code));
    const { outcomes, tick } = await screenTick(screener, traders, SYMBOLS, market);
    const reference = evaluateUnsandboxed(traders, tick);
    const comparable = (outcome: (typeof outcomes)[number]) => ({ matches: outcome.matches.map((m) => [m.symbol, m.conditions]), warnings: outcome.warnings, errors: outcome.errors, evaluated: outcome.evaluatedSymbols });
    for (let i = 0; i < shapes.length; i++) {
      const sandboxed = outcomes[i]!;
      const expected = reference.find((r) => r.traderId === traders[i]!.id)!;
      expect(comparable(sandboxed), shapes[i]).toEqual(comparable(expected));
    }
    // The shapes do differ: some match with conditions, some warn, some do not match.
    expect(outcomes.filter((o) => o.warnings.length > 0).length).toBeGreaterThan(3);
    expect(outcomes.filter((o) => o.matches.length === 0).length).toBe(3);
  });

  it('hand the ticker and hvnNodes to filters that reach them through arguments or eval, as to those that name them', async () => {
    const readers = [
      `return { match: true, conditions: [ticker.s, ticker.c, String(hvnNodes.length)] };`,
      `return { match: true, conditions: [arguments[0].s, arguments[0].c, String(arguments[3].length)] };`,
      // Neither name appears in the code: only eval can reach them.
      `const name = (a, b) => a + b; return { match: true, conditions: [eval(name('tick', 'er')).s, eval(name('tick', 'er') + '.c'), String(eval(name('hvn', 'Nodes')).length)] };`,
    ].map((code) => makeTrader(code));
    const { outcomes, tick } = await screenTick(screener, readers, SYMBOLS, market);
    const reference = evaluateUnsandboxed(readers, tick);
    for (let i = 0; i < readers.length; i++) {
      expect(outcomes[i]!.errors).toEqual([]);
      expect(outcomes[i]!.matches.map((m) => m.conditions)).toEqual(reference.find((r) => r.traderId === readers[i]!.id)!.matches.map((m) => m.conditions));
    }
    // Each names its symbol, and some symbols have high-volume nodes (an empty list would pass for none).
    expect(outcomes[2]!.matches.map((m) => m.conditions[0])).toEqual(SYMBOLS);
    expect(outcomes[2]!.matches.some((m) => Number(m.conditions[2]) > 0)).toBe(true);
  });
});
