// A filter may return numeric values with a match ({ match, conditions, values }): bounded, checked in the isolate and on
// the host, and anything off-contract dropped with a warning, never a failure.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TraderTickOutcome } from '../src/ports.ts';
import type { Screener } from '../src/screening/Screener.ts';
import { decodeVerdict, JUDGE_LIMITS } from '../src/screening/sandboxRuntime.ts';
import { makeTrader, screenTick, startTestScreener, TestMarket } from './screening.support.ts';

const SYMBOLS = ['AAAUSDT', 'BBBUSDT'];
const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m'], candles: 120, lastCloseTime: Date.UTC(2026, 0, 10) - 1 });

let screener: Screener;

beforeAll(async () => {
  screener = await startTestScreener({ filterTimeoutMs: 200 });
});

afterAll(async () => {
  await screener.stop();
});

async function run(code: string): Promise<TraderTickOutcome> {
  const { outcomes } = await screenTick(screener, [makeTrader(code)], SYMBOLS, market);
  return outcomes[0]!;
}

describe('explain values', () => {
  it('a match carries the numbers its filter computed, per symbol', async () => {
    const outcome = await run(`const k = timeframes['1m']; const close = k[k.length - 1][4]; return { match: true, conditions: ['c'], values: { close, rsi: helpers.getLatestRSI(k, 14), 'ema.fast-9': 1.5e-7 } };`);
    expect(outcome.errors).toEqual([]);
    expect(outcome.warnings).toEqual([]);
    expect(outcome.matches).toHaveLength(2);
    for (const match of outcome.matches) {
      const last = market.series(match.symbol, '1m')!.lastClosed()!;
      expect(match.values).toEqual({ close: last.close, rsi: expect.any(Number), 'ema.fast-9': 1.5e-7 });
      expect(match.conditions).toEqual(['c']);
    }
  });

  it('a match without values has none, and a non-match keeps nothing', async () => {
    const plain = await run(`return { match: true, conditions: ['x'] };`);
    expect(plain.matches.every((match) => match.values === undefined)).toBe(true);
    const none = await run(`return { match: false, values: { a: 1 } };`);
    expect(none.matches).toEqual([]);
    expect(none.errors).toEqual([]);
  });

  it('keeps the first 20 finite numbers under plain keys and drops the rest with a warning', async () => {
    const outcome = await run(`const values = {}; for (let i = 0; i < 30; i++) values['v' + i] = i; return { match: true, values };`);
    expect(outcome.errors).toEqual([]);
    const values = outcome.matches[0]!.values!;
    expect(Object.keys(values)).toHaveLength(JUDGE_LIMITS.values);
    expect(values.v0).toBe(0);
    expect(values.v19).toBe(19);
    expect(outcome.warnings[0]!.message).toMatch(/more than 20 keys/);
  });

  it('drops non-numbers, non-finite numbers and odd keys, keeping the good ones, with a warning', async () => {
    const outcome = await run(`return { match: true, values: { nan: NaN, inf: -Infinity, text: '5', obj: { a: 1 }, 'bad key': 1, ['x'.repeat(40)]: 2, [Symbol('s')]: 3, good: 42 } };`);
    expect(outcome.errors).toEqual([]);
    expect(outcome.matches.map((match) => match.values)).toEqual([{ good: 42 }, { good: 42 }]);
    expect(outcome.warnings[0]!.message).toMatch(/values\.nan is not finite/);
  });

  it('values that are not an object, or a throwing getter, never crash: a warning, or the filter\'s own error', async () => {
    const array = await run(`return { match: true, values: [1, 2] };`);
    expect(array.matches.map((match) => match.values)).toEqual([undefined, undefined]);
    expect(array.warnings[0]!.message).toMatch(/values is an array/);
    const throwing = await run(`return { match: true, values: { get boom() { throw new Error('kaboom'); } } };`);
    expect(throwing.matches).toEqual([]);
    expect(throwing.errors[0]!.message).toMatch(/kaboom/);
  });

  it('a filter that tampers with Object.prototype cannot spoil or capture the values', async () => {
    const outcome = await run(`Object.defineProperty(Object.prototype, 'values', { set() { throw new Error('captured'); }, get() { return { evil: 1 }; }, configurable: true }); Reflect.ownKeys = () => ['evil']; return { match: true, values: { ok: 1 } };`);
    expect(outcome.errors).toEqual([]);
    expect(outcome.matches.map((match) => match.values)).toEqual([{ ok: 1 }, { ok: 1 }]);
  });

  it('the host refuses an encoding the runtime could not have produced', () => {
    expect(decodeVerdict('w\u00001\u0000\u0000a=1;b=2\u0000cond')).toEqual({ kind: 'verdict', verdict: { match: true, conditions: ['cond'], warning: null, values: { a: 1, b: 2 } } });
    expect(decodeVerdict('w\u00001\u0000\u0000a=NaN')).toBeNull();
    expect(decodeVerdict('w\u00001\u0000\u0000a=1;a=2')).toBeNull();
    expect(decodeVerdict('w\u00001\u0000\u0000bad key=1')).toBeNull();
    expect(decodeVerdict('w\u00001\u0000\u0000a=')).toBeNull();
    expect(decodeVerdict(`w\u00001\u0000\u0000${Array.from({ length: 21 }, (_, i) => `k${i}=1`).join(';')}`)).toBeNull();
    const proto = decodeVerdict('w\u00001\u0000\u0000__proto__=3');
    expect(proto?.kind === 'verdict' && Object.getOwnPropertyDescriptor(proto.verdict.values, '__proto__')?.value).toBe(3);
  });
});
