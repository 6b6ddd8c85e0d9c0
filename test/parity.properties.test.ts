// Properties of both helper libraries over arbitrary series shapes: the browser's string klines give the same answers as numeric ones, and nothing throws or returns NaN.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { helperFunctions, HELPERS_VERSIONS, KLINE_HELPERS, type HelperName } from '../src/screening/helpers.ts';
import { sameResult, withStringKlines } from './parity/check.ts';

/** A price, now and then unreadable (the web app passes NaN through; the worker's guards must still hold). */
const price = fc.oneof({ weight: 20, arbitrary: fc.double({ min: 0.0001, max: 100_000, noNaN: true }) }, { weight: 1, arbitrary: fc.constant(NaN) });
const kline = fc
  .tuple(price, price, price, price, fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1e6, noNaN: true })), fc.double({ min: 0, max: 1, noNaN: true }))
  .map(([open, a, b, close, volume, buyShare]) => [0, open, Math.max(a, b, open, close), Math.min(a, b, open, close), close, volume, 59_999, volume * close, 1, volume * buyShare, 0, 0]);
/** Series of every shape: empty, shorter than any period, long, flat, or with flat runs. */
const klines = fc.oneof(
  fc.array(kline, { maxLength: 80 }),
  fc.tuple(kline, fc.integer({ min: 0, max: 80 })).map(([one, count]) => Array.from({ length: count }, () => one.slice())),
  fc.array(fc.tuple(kline, fc.integer({ min: 1, max: 6 })), { maxLength: 20 }).map((runs) => runs.flatMap(([one, count]) => Array.from({ length: count }, () => one.slice()))),
);
/** Periods as filters pass them: usually small positive integers, sometimes omitted (the default) or odd. */
const period = fc.oneof({ weight: 10, arbitrary: fc.integer({ min: 1, max: 40 }) }, { weight: 1, arbitrary: fc.constantFrom(undefined, 0, -3, 2.5) });
const periods = fc.array(period, { minLength: 4, maxLength: 4 });
const hvnOptions = fc.record({ bins: fc.integer({ min: 1, max: 60 }), lookback: fc.integer({ min: 1, max: 120 }), threshold: fc.integer({ min: 0, max: 100 }) }, { requiredKeys: [] });

function noNaN(value: unknown): boolean {
  if (typeof value === 'number') return !Number.isNaN(value);
  if (Array.isArray(value)) return value.every(noNaN);
  if (value !== null && typeof value === 'object') return Object.values(value).every(noNaN);
  return true;
}

function call(version: (typeof HELPERS_VERSIONS)[number], helper: HelperName, args: unknown[]): unknown {
  return (helperFunctions(version)[helper] as (...args: unknown[]) => unknown)(...args);
}

const runs = { numRuns: 150, seed: 1301 };

describe.each(HELPERS_VERSIONS)('the %s library over arbitrary series', (version) => {
  it('every kline helper gives identical results for string and numeric klines, never throws and never returns NaN', () => {
    fc.assert(
      fc.property(klines, periods, hvnOptions, (series, [a, b, c, d], options) => {
        for (const helper of KLINE_HELPERS as ReadonlySet<HelperName>) {
          const args = helper === 'calculateHighVolumeNodes' ? [series, options] : [series, a, b, c, d];
          const numeric = call(version, helper, args);
          const strings = call(version, helper, withStringKlines(args));
          expect(sameResult(strings, numeric, true), `${helper}(${JSON.stringify(args.slice(1))})`).toBe(true);
          expect(noNaN(numeric), helper).toBe(true);
        }
      }),
      runs,
    );
  });

  it('the helpers of plain numbers and of nodes never throw on any series shape', () => {
    fc.assert(
      fc.property(fc.array(price, { maxLength: 60 }), periods, fc.double({ noNaN: false }), fc.double({ noNaN: false }), ([...values], [a, b, c], low, high) => {
        const nodes = values.filter(Number.isFinite).map((p) => ({ price: p, volume: 1, buyVolume: 0, sellVolume: 1, strength: 100, priceRange: [p, p] }));
        const results = [
          call(version, 'calculateSMA', [values, a]),
          call(version, 'calculateEMA', [values, a]),
          call(version, 'calculateMACD', [values, a, b, c]),
          call(version, 'detectGenericDivergence', [values, values.slice().reverse(), a, b]),
          call(version, 'isNearHVN', [low, nodes, 0.5]),
          call(version, 'getClosestHVN', [low, nodes, 'above']),
          call(version, 'countHVNInRange', [low, high, nodes]),
        ];
        expect(results.every(noNaN)).toBe(true);
        // The browser's strings (a filter mapping klines to k[4]) read the same as numbers.
        expect(sameResult(call(version, 'calculateSMA', [values.map(String), a]), results[0], true)).toBe(true);
        expect(sameResult(call(version, 'calculateEMA', [values.map(String), a]), results[1], true)).toBe(true);
      }),
      runs,
    );
  });
});

describe('the webapp library on missing arguments', () => {
  it("returns the web app's no-value answers rather than throwing", () => {
    const h = helperFunctions('webapp');
    for (const helper of Object.keys(h) as HelperName[]) {
      for (const input of [undefined, null, [], [[]], [[1, 'x', 'y', 'z', 'w', 'v']]]) expect(() => call('webapp', helper, [input])).not.toThrow();
    }
    expect(h.calculateStochRSI(undefined)).toBeNull();
    expect(h.calculateADX(undefined)).toBe(0);
    expect(h.calculateStochastic(undefined)).toEqual({ k: 0, d: 0 });
    expect(h.calculateVWAP([[1, 'x', 'y', 'z', 'w', 'v']])).toBe(0);
  });
});
