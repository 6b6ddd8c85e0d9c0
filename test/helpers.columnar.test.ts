// The host's columnar helpers answer exactly as the library does on the equivalent kline arrays: same bits, nulls, shapes and key order, for any series and any argument the memo accepts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CANDLE_ROW_FIELDS } from '../src/domain.ts';
import { CloseColumns, computeOnRows, NOT_COVERED, seriesOnRows } from '../src/screening/helpers/columnar.ts';
import { helperFunctions, HELPERS_VERSIONS, KLINE_HELPERS, type HelperName, type HelpersVersion } from '../src/screening/helpers.ts';

const F = CANDLE_ROW_FIELDS;

/** Identical down to the bit: Object.is for every number, the same keys in the same order, the same array lengths. */
function identical(actual: unknown, expected: unknown): boolean {
  if (Array.isArray(expected)) return Array.isArray(actual) && actual.length === expected.length && expected.every((value, i) => identical(actual[i], value));
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return false;
    const keys = Object.keys(expected);
    return Object.keys(actual).join('|') === keys.join('|') && keys.every((key) => identical((actual as Record<string, unknown>)[key], (expected as Record<string, unknown>)[key]));
  }
  return Object.is(actual, expected);
}

/** The library's answer, or the error it throws, on the klines the memo would have built from the same rows (12 fields, the last 0). */
function libraryAnswer(version: HelpersVersion, helper: HelperName, rows: Float64Array, start: number, length: number, args: unknown[]): { value?: unknown; threw?: boolean } {
  const klines = Array.from({ length }, (_, i) => [...rows.subarray((start + i) * F, (start + i + 1) * F), 0]);
  try {
    return { value: (helperFunctions(version)[helper] as (...rest: unknown[]) => unknown)(klines, ...args) };
  } catch {
    return { threw: true };
  }
}

function columnarAnswer(
  version: HelpersVersion,
  helper: HelperName,
  rows: Float64Array,
  start: number,
  length: number,
  args: unknown[],
  columns?: CloseColumns,
): { value?: unknown; threw?: boolean } {
  try {
    return { value: computeOnRows(version, helper, rows, start, length, args, columns) };
  } catch {
    return { threw: true };
  }
}

interface Market {
  rows: Float64Array;
  start: number;
  length: number;
}

/** Values that break arithmetic, planted now and then in any field. */
const special = fc.constantFrom(NaN, Infinity, -Infinity, 0, -0, -1, 1e308, -1e308, 5e-324, 1e-300);

/**
 * Series of every shape as shared rows with foreign rows around them (a range bug reads those): random walks at
 * magnitudes from 1e-300 to 1e300, flat series, zeros, lengths 0, 1 and 2, with special values planted.
 */
const market: fc.Arbitrary<Market> = fc
  .record({
    length: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 12 }) }, { weight: 4, arbitrary: fc.integer({ min: 13, max: 120 }) }, { weight: 1, arbitrary: fc.integer({ min: 300, max: 600 }) }),
    before: fc.integer({ min: 0, max: 3 }),
    after: fc.integer({ min: 0, max: 3 }),
    shape: fc.constantFrom('walk', 'walk', 'walk', 'flat', 'zeros', 'steps'),
    exponent: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: -3, max: 6 }) }, { weight: 1, arbitrary: fc.integer({ min: -300, max: 300 }) }),
    seed: fc.integer({ min: 1, max: 2 ** 30 }),
    planted: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: F - 1 }), special), { maxLength: 3 }),
  })
  .map(({ length, before, after, shape, exponent, seed, planted }) => {
    let state = seed;
    const random = (): number => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state / 2147483648;
    };
    const scale = 10 ** exponent;
    const rows = new Float64Array((before + length + after) * F);
    let close = scale * (0.5 + random());
    for (let row = 0; row < before + length + after; row++) {
      const o = row * F;
      const open = close;
      if (shape === 'walk') close = close * (1 + (random() - 0.5) * 0.04);
      else if (shape === 'steps' && random() < 0.2) close = scale * (0.5 + random());
      else if (shape === 'zeros') close = 0;
      const flat = shape === 'flat' || shape === 'zeros';
      const volume = shape === 'zeros' ? 0 : flat ? 100 : random() < 0.1 ? 0 : 1000 * random();
      rows[o] = row * 60_000;
      rows[o + 1] = flat ? close : open;
      rows[o + 2] = flat ? close : Math.max(open, close) * (1 + 0.01 * random());
      rows[o + 3] = flat ? close : Math.min(open, close) * (1 - 0.01 * random());
      rows[o + 4] = close;
      rows[o + 5] = volume;
      rows[o + 6] = row * 60_000 + 59_999;
      rows[o + 7] = volume * close;
      rows[o + 8] = 7;
      rows[o + 9] = volume * random();
      rows[o + 10] = rows[o + 9]! * close;
    }
    for (const [at, field, value] of planted) if (length > 0) rows[(before + (at % length)) * F + field] = value;
    return { rows, start: before, length };
  });

/** One argument of parseArgsKey's grammar: numbers up to 100,000 (0, negatives, fractions), undefined, null, booleans, short words. */
const argument = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 30 }) },
  { weight: 2, arbitrary: fc.constantFrom(undefined, 1, 2, 3, 9, 12, 14, 20, 26, 50, 100, 200, 499, 500, 501) },
  { weight: 2, arbitrary: fc.oneof(fc.integer({ min: -100_000, max: 100_000 }), fc.double({ min: -100_000, max: 100_000, noNaN: true }), fc.constantFrom(0, -0, 0.5, 2.5, -3)) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(null, true, false, '', '14', '2.5', 'abc', '-3', '1e3', 'Infinity', 'NaN', '0x10') },
);
const argumentLists = fc.array(argument, { maxLength: 6 });
/** calculateHighVolumeNodes's options as the memo parses them: any of five fields, numbers up to 100,000 (bins up to 1000). */
const number = fc.oneof(fc.integer({ min: -5, max: 120 }), fc.integer({ min: -100_000, max: 100_000 }), fc.double({ min: -100_000, max: 100_000, noNaN: true }));
const hvnOptions = fc.record(
  { bins: fc.oneof(fc.integer({ min: 1, max: 60 }), fc.integer({ min: -3, max: 1000 }), fc.constant(2.5)), threshold: number, lookback: number, minStrength: number, peakTolerance: fc.oneof(number, fc.constantFrom(0, 0.05, -1)) },
  { requiredKeys: [], noNullPrototype: true },
);
const hvnArgumentLists = fc.oneof({ weight: 4, arbitrary: hvnOptions.map((options) => [options]) }, { weight: 1, arbitrary: argumentLists });

const kinds = [...KLINE_HELPERS] as HelperName[];

describe('helpers computed on a series’ rows', () => {
  it('answer bit for bit as the library does on the same klines, for every helper, version and argument list they cover', () => {
    let covered = 0;
    // One cache of close columns for every call on a series, as the memo shares one across a batch of symbols.
    const columns = new CloseColumns();
    fc.assert(
      fc.property(market, fc.array(argumentLists, { minLength: 3, maxLength: 3 }), fc.array(hvnArgumentLists, { minLength: 3, maxLength: 3 }), ({ rows, start, length }, argumentSets, hvnArgumentSets) => {
        columns.release();
        // The whole series and a range of it that ends one candle earlier (k.slice(0, -1)).
        for (const [from, count] of [[start, length], [start, Math.max(0, length - 1)]] as const) {
          for (const version of HELPERS_VERSIONS) {
            for (const helper of kinds) {
              for (const args of [[], ...(helper === 'calculateHighVolumeNodes' ? hvnArgumentSets : argumentSets)]) {
                const columnar = columnarAnswer(version, helper, rows, from, count, args);
                if (columnar.value === NOT_COVERED) continue;
                covered++;
                const library = libraryAnswer(version, helper, rows, from, count, args);
                const name = `${version} ${helper}(${JSON.stringify(args)}) on ${count} candles`;
                expect(columnar.threw, `${name} throws`).toBe(library.threw);
                expect(identical(columnar.value, library.value), name).toBe(true);
                expect(identical(columnarAnswer(version, helper, rows, from, count, args, columns).value, library.value), `${name}, closes shared`).toBe(true);
              }
            }
          }
        }
      }),
      { numRuns: 150, seed: 1401 },
    );
    // The property must have compared something: thousands of covered calls, not a vacuous pass.
    expect(covered).toBeGreaterThan(20_000);
  });

  it('give a series helper’s answer as a column whose NaNs are exactly the library’s nulls', () => {
    let covered = 0;
    const columns = new CloseColumns();
    fc.assert(
      fc.property(market, fc.array(argumentLists, { minLength: 4, maxLength: 4 }), ({ rows, start, length }, argumentSets) => {
        columns.release();
        for (const version of HELPERS_VERSIONS) {
          for (const helper of kinds) {
            for (const args of [[], ...argumentSets]) {
              const column = seriesOnRows(version, helper, rows, start, length, args);
              if (column === NOT_COVERED) continue;
              covered++;
              const library = libraryAnswer(version, helper, rows, start, length, args);
              const decoded = column === null ? null : Array.from(column, (value) => (Number.isNaN(value) ? null : value));
              expect(identical(decoded, library.value), `${version} ${helper}(${JSON.stringify(args)}) on ${length} candles`).toBe(true);
              // Written in place into a longer, dirty buffer: the same entries, in that buffer.
              const into = new Float64Array(length + 3).fill(7);
              const inPlace = seriesOnRows(version, helper, rows, start, length, args, into);
              expect(inPlace === null ? null : Array.from(inPlace as Float64Array), helper).toEqual(column === null ? null : Array.from(column));
              if (inPlace !== null) expect((inPlace as Float64Array).buffer).toBe(into.buffer);
              const shared = seriesOnRows(version, helper, rows, start, length, args, undefined, columns);
              expect(shared === null ? null : Array.from(shared as Float64Array), `${helper}, closes shared`).toEqual(column === null ? null : Array.from(column));
            }
          }
        }
      }),
      { numRuns: 300, seed: 1402 },
    );
    expect(covered).toBeGreaterThan(2_000);
    // Only series helpers: a latest value is never given as a column.
    expect(seriesOnRows('webapp', 'getLatestRSI', new Float64Array(F * 30), 0, 30, [14])).toBe(NOT_COVERED);
  });

  it('read the rows again once their shared close columns are released, and not before', () => {
    const rows = new Float64Array(40 * F);
    for (let i = 0; i < 40; i++) rows[i * F + 4] = 100 + Math.sin(i);
    const columns = new CloseColumns();
    const before = computeOnRows('webapp', 'getLatestRSI', rows, 0, 40, [14], columns);
    expect(before).toBe(libraryAnswer('webapp', 'getLatestRSI', rows, 0, 40, [14]).value);
    // The rows change (between ticks, a copy is moved back to the front of its buffer).
    for (let i = 0; i < 40; i++) rows[i * F + 4] = 100 + i;
    const changed = libraryAnswer('webapp', 'getLatestRSI', rows, 0, 40, [14]).value;
    expect(changed).not.toBe(before);
    expect(computeOnRows('webapp', 'getLatestRSI', rows, 0, 40, [14], columns)).toBe(before);
    columns.release();
    expect(computeOnRows('webapp', 'getLatestRSI', rows, 0, 40, [14], columns)).toBe(changed);
    expect(computeOnRows('webapp', 'getLatestRSI', rows, 0, 40, [14])).toBe(changed);
  });

  it('share one RSI series between getLatestRSI and getLatestStochRSI of the same closes, in either order, to the library’s bit', () => {
    let shared = 0;
    const columns = new CloseColumns();
    const period = fc.oneof(fc.integer({ min: 1, max: 30 }), fc.constantFrom(14, 14, 7, 21));
    fc.assert(
      fc.property(market, period, period, fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 3, maxLength: 3 }), fc.constantFrom('rsi first', 'stoch first', 'stoch in the last batch'), (series, rsiPeriod, otherPeriod, [stochPeriod, kPeriod, dPeriod], order) => {
        const { rows, start, length } = series;
        const stochArgs = [rsiPeriod, stochPeriod, kPeriod, dPeriod];
        const rsi = (): unknown => columnarAnswer('webapp', 'getLatestRSI', rows, start, length, [rsiPeriod], columns).value;
        const stoch = (): unknown => columnarAnswer('webapp', 'getLatestStochRSI', rows, start, length, stochArgs, columns).value;
        const other = (): unknown => columnarAnswer('webapp', 'getLatestRSI', rows, start, length, [otherPeriod], columns).value;
        const expected = {
          rsi: libraryAnswer('webapp', 'getLatestRSI', rows, start, length, [rsiPeriod]).value,
          stoch: libraryAnswer('webapp', 'getLatestStochRSI', rows, start, length, stochArgs).value,
          other: libraryAnswer('webapp', 'getLatestRSI', rows, start, length, [otherPeriod]).value,
        };
        columns.release();
        // StochRSI asked in the batch before: getLatestRSI of its period keeps the series it computes, and StochRSI reads it.
        if (order === 'stoch in the last batch') {
          stoch();
          columns.release();
        }
        const before = columns.rsiSeriesComputed;
        const answers = order === 'stoch first' ? { stoch: stoch(), rsi: rsi() } : { rsi: rsi(), stoch: stoch() };
        const passes = columns.rsiSeriesComputed - before;
        // Another period asked in the same batch, after them: its own answer, whatever they kept.
        const otherAnswer = other();
        const name = `${order}: RSI(${rsiPeriod}), RSI(${otherPeriod}) and StochRSI(${stochArgs.join(', ')}) on ${length} candles`;
        expect(identical(answers.rsi, expected.rsi), `${name}: RSI`).toBe(true);
        expect(identical(answers.stoch, expected.stoch), `${name}: StochRSI`).toBe(true);
        expect(identical(otherAnswer, expected.other), `${name}: the other RSI`).toBe(true);
        // One pass for both where both have an answer (and none for an RSI that StochRSI does not read).
        if (typeof expected.rsi === 'number' && expected.stoch !== null && order !== 'rsi first') {
          expect(passes, name).toBe(1);
          shared++;
        }
      }),
      { numRuns: 400, seed: 1403 },
    );
    expect(shared).toBeGreaterThan(50);
  });

  it('cover every helper the benchmark filters call, in the default library, over long series with their usual arguments', () => {
    const { rows, start, length } = fc.sample(market.filter((m) => m.length >= 300), { numRuns: 1, seed: 7 })[0]!;
    const calls: Array<[HelperName, unknown[]]> = [
      ['getLatestRSI', [14]],
      ['calculateEMASeries', [21]],
      ['getLatestEMA', [50]],
      ['calculateAvgVolume', [20]],
      ['calculateMA', [20]],
      ['getLatestBollingerBands', [20, 2]],
      ['calculateADX', [14]],
      ['getLatestMACD', []],
      ['getLatestStochRSI', []],
      ['getLatestVWAP', []],
      ['calculateHighVolumeNodes', [{ lookback: 100 }]],
    ];
    for (const [helper, args] of calls) {
      const columnar = computeOnRows('webapp', helper, rows, start, length, args);
      expect(columnar, helper).not.toBe(NOT_COVERED);
      expect(identical(columnar, libraryAnswer('webapp', helper, rows, start, length, args).value), helper).toBe(true);
    }
  });

  it('leave to the library the names a version answers with another definition, and the helpers they do not compute', () => {
    const rows = new Float64Array(40 * F).fill(1);
    // The textbook ADX and StochRSI are other functions than the web app's, which are the ones computed on rows.
    expect(computeOnRows('textbook', 'calculateADX', rows, 0, 40, [14])).toBe(NOT_COVERED);
    expect(computeOnRows('textbook', 'getLatestStochRSI', rows, 0, 40, [])).toBe(NOT_COVERED);
    expect(computeOnRows('webapp', 'calculateADX', rows, 0, 40, [14])).toBe(0);
    expect(computeOnRows('webapp', 'detectEngulfingPattern', rows, 0, 40, [])).toBe(NOT_COVERED);
  });

  it('leave closes that could overflow to the library, whose NaN numbers and nulls a NaN-marked column would confuse', () => {
    const rows = new Float64Array(60 * F);
    for (let i = 0; i < 60; i++) rows[i * F + 4] = i % 2 === 0 ? 1e308 : -1e308;
    const klines = Array.from({ length: 60 }, (_, i) => [...rows.subarray(i * F, (i + 1) * F), 0]);
    // The library's RSI of such closes holds NaN numbers (infinite gains over infinite losses), not nulls.
    expect((helperFunctions('webapp').calculateRSI(klines, 14) as number[]).slice(14).every(Number.isNaN)).toBe(true);
    expect(seriesOnRows('webapp', 'calculateRSI', rows, 0, 60, [14])).toBe(NOT_COVERED);
    expect(seriesOnRows('webapp', 'calculateEMASeries', rows, 0, 60, [9])).toBe(NOT_COVERED);
    expect(computeOnRows('webapp', 'getLatestMACD', rows, 0, 60, [])).toBe(NOT_COVERED);
    expect(computeOnRows('webapp', 'getLatestMACD', rows, 0, 60, [12, 26, 0])).toBe(NOT_COVERED);
  });
});
