// How the host fills the results board: what an isolate reads back for every column and symbol is the library's answer, a result the board could not hold still reaches the callbacks without a second computation, and the shortcuts on the way (results encoded in place, close columns checked once) answer as the long way does.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Interval } from '../src/domain.ts';
import { CANDLE_ROW_FIELDS as F } from '../src/domain.ts';
import { systemClock } from '../src/clock.ts';
import { MarketStore } from '../src/market/MarketStore.ts';
import { SyntheticMarket } from '../bench/support/market.ts';
import { CarriedResults, NOT_CARRIED } from '../src/screening/carriedResults.ts';
import { CloseColumns, computeOnRows, NOT_COVERED, seriesOnRows, wilderRsiPair } from '../src/screening/helpers/columnar.ts';
import { helperFunctions, KLINE_HELPERS, type HelperName } from '../src/screening/helpers.ts';
import { spreadVolume, volumeNodes, wilderRsi } from '../src/screening/helpers/internal.ts';
import type { VolumeNode } from '../src/screening/helpers/types.ts';
import { encodeFresh, encodeResult, KlineScratch, TickMemo } from '../src/screening/memo.ts';
import { ResultBoard } from '../src/screening/resultBoard.ts';
import { installResultBoard } from '../src/screening/runtime/resultBoard.ts';
import { SeriesTable, SharedSeriesStore, seriesKey, type SeriesBuffer, type SeriesRows, type SeriesSlot } from '../src/screening/sharedSeries.ts';

const INTERVALS: Interval[] = ['1m', '1h'];
const CANDLES = 300;

/** Symbols × intervals of a synthetic market, as a thread's table holds them for one tick. */
function marketTable(symbols: number): { table: SeriesTable; symbols: readonly string[] } {
  const market = new SyntheticMarket({ symbols, intervals: INTERVALS, history: CANDLES });
  const store = new MarketStore({ history: CANDLES, clock: systemClock });
  market.fill(store);
  const shared = new SharedSeriesStore();
  const slots: Record<string, SeriesSlot> = {};
  const buffers: SeriesBuffer[] = [];
  for (const symbol of market.symbols) {
    for (const interval of INTERVALS) {
      const slot = shared.sync(store, symbol, interval, Date.now())!;
      slots[seriesKey(symbol, interval)] = slot;
      buffers.push(shared.buffer(slot[0])!);
    }
  }
  const table = new SeriesTable();
  table.beginTick(buffers, [], slots);
  return { table, symbols: market.symbols };
}

/** Calls of every kind the board holds: numbers, null, records of three shapes, a list of records, series, ranges (from the end). */
const CALLS: Array<{ helper: HelperName; argsKey: string; args: unknown[]; range?: [fromEnd: number, count: number] }> = [
  { helper: 'getLatestRSI', argsKey: '#14', args: [14] },
  { helper: 'getLatestRSI', argsKey: '#7', args: [7] },
  { helper: 'getLatestBollingerBands', argsKey: '#20|#2', args: [20, 2] },
  { helper: 'getLatestMACD', argsKey: '', args: [] },
  { helper: 'getLatestStochRSI', argsKey: '', args: [] },
  { helper: 'calculateHighVolumeNodes', argsKey: '{lookback=100}', args: [{ lookback: 100 }] },
  { helper: 'calculateEMASeries', argsKey: '#9', args: [9] },
  { helper: 'calculateEMASeries', argsKey: '#21', args: [21] },
  { helper: 'calculateMACDValues', argsKey: '', args: [] },
  { helper: 'calculateAvgVolume', argsKey: '#20', args: [20], range: [CANDLES, CANDLES - 1] },
  { helper: 'getLatestRSI', argsKey: '#14', args: [14], range: [60, 50] },
  { helper: 'getLatestStochRSI', argsKey: '#500', args: [500] },
];

/** What the library answers on the klines of `length` rows from `offset` of the series (as the isolate's copy would give). */
function library(table: SeriesTable, id: number, helper: HelperName, args: unknown[], offset: number, length: number): unknown {
  const { rows, start } = table.rows(id)!;
  const klines = Array.from({ length }, (_, i) => [...rows.subarray((start + offset + i) * F, (start + offset + i + 1) * F), 0]);
  return (helperFunctions('webapp')[helper] as (...rest: unknown[]) => unknown)(klines, ...args);
}

/** A memo answer as the isolate's runtime decodes it: packed series back to arrays with null. */
function decoded(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if ('$series' in value) return Array.from((value as { $series: Float64Array }).$series, (x) => (Number.isNaN(x) ? null : x));
  if (Array.isArray(value)) return value.map(decoded);
  return Object.fromEntries(Object.entries(value).map(([key, field]) => [key, decoded(field)]));
}

function rangeOf(table: SeriesTable, id: number, range: [number, number] | undefined): { offset: number; length: number; given: [number?, number?] } {
  const total = table.rows(id)!.length;
  if (range === undefined) return { offset: 0, length: total, given: [] };
  return { offset: total - range[0], length: range[1], given: [total - range[0], range[1]] };
}

describe('filling the results board', () => {
  it('an isolate reads back the library’s answer for every column and symbol; what did not fit still reaches the callbacks, computed once', () => {
    // One batch's worth (16 symbols, a row each per interval on the first tick), whose series alone outgrow a fresh board's data region.
    const { table, symbols } = marketTable(16);
    const ids = symbols.flatMap((symbol) => INTERVALS.map((interval) => table.slot(seriesKey(symbol, interval))![0]));
    const board = new ResultBoard();
    // Tick 1: the callbacks teach the board (one symbol is enough: a column applies to every symbol of its interval).
    const teacher = new TickMemo(table, new KlineScratch());
    for (const interval of INTERVALS) {
      const id = table.slot(seriesKey(symbols[0]!, interval))![0];
      for (const call of CALLS) {
        const { given } = rangeOf(table, id, call.range);
        board.learn('trader-a', 'webapp', table, id, call.helper, call.argsKey, given[0], given[1], teacher.memo('webapp', id, call.helper, call.argsKey, ...given));
      }
    }
    expect(board.size).toBe(CALLS.length);
    const reader = installResultBoard(() => board.connect('webapp'));
    let overflowed = 0;
    for (let tick = 0; tick < 2; tick++) {
      // A board sized from nothing (the first tick after learning) holds only part of the batch's results: the rest overflows.
      board.beginTick(['trader-a'], ids, INTERVALS.length);
      const memo = new TickMemo(table, new KlineScratch());
      memo.nextSymbol();
      let charged = 0;
      board.fill(memo, table, symbols, (trader, ms) => {
        expect(trader).toBe('trader-a');
        charged += ms;
      });
      expect(charged).toBeGreaterThan(0);
      const computed = memo.misses;
      for (const id of ids) {
        for (const call of CALLS) {
          const { offset, length, given } = rangeOf(table, id, call.range);
          const want = library(table, id, call.helper, call.args, offset, length);
          const read = reader.read(id, offset, length, call.helper, call.argsKey);
          if (read !== undefined) {
            expect(read, `${call.helper}(${call.argsKey}) on ${id}`).toStrictEqual(want);
            continue;
          }
          overflowed++;
          expect(tick, 'the second tick holds everything').toBe(0);
          expect(decoded(memo.memo('webapp', id, call.helper, call.argsKey, ...given)), `${call.helper}(${call.argsKey}) on ${id} by callback`).toStrictEqual(want);
        }
      }
      // The callbacks found what fill computed: nothing was computed twice.
      expect(memo.misses).toBe(computed);
      board.endTick();
    }
    expect(overflowed).toBeGreaterThan(0);
  });

  it('encodes a columnar answer in place exactly as encodeResult copies it', () => {
    const { table, symbols } = marketTable(3);
    let compared = 0;
    for (const symbol of symbols) {
      for (const interval of INTERVALS) {
        const { rows, start, length } = table.rows(table.slot(seriesKey(symbol, interval))![0])!;
        for (const helper of KLINE_HELPERS) {
          for (const args of [[], [14], [{ lookback: 50, bins: 20 }]]) {
            for (const count of [length, 10]) {
              const copied = encodeResult(computeOnRows('webapp', helper, rows, start, count, args));
              if (copied === NOT_COVERED) continue;
              const fresh = computeOnRows('webapp', helper, rows, start, count, args);
              const inPlace = encodeFresh(fresh);
              expect(inPlace, `${helper}(${JSON.stringify(args)}) on ${count}`).toStrictEqual(copied);
              // Records and lists are the helper's own fresh values, encoded where they are.
              if (fresh !== null && typeof fresh === 'object' && !Array.isArray(fresh)) expect(inPlace).toBe(fresh);
              compared++;
            }
          }
        }
      }
    }
    expect(compared).toBeGreaterThan(100);
  });

  it('checks a shared close column once, and again only after release, like its values', () => {
    const rows = new Float64Array(40 * F);
    for (let i = 0; i < 40; i++) rows[i * F + 4] = 100 + Math.sin(i);
    const columns = new CloseColumns();
    const readable = computeOnRows('webapp', 'getLatestRSI', rows, 0, 40, [14], columns);
    expect(typeof readable).toBe('number');
    const series = seriesOnRows('webapp', 'calculateEMASeries', rows, 0, 40, [9], undefined, columns);
    expect(series).toBeInstanceOf(Float64Array);
    // An unreadable close, and one that could overflow: unseen until the columns are released (the rows of a batch do not change).
    rows[20 * F + 4] = Infinity;
    expect(computeOnRows('webapp', 'getLatestRSI', rows, 0, 40, [14], columns)).toBe(readable);
    expect(Array.from(seriesOnRows('webapp', 'calculateEMASeries', rows, 0, 40, [9], undefined, columns) as Float64Array)).toEqual(Array.from(series as Float64Array));
    columns.release();
    expect(computeOnRows('webapp', 'getLatestRSI', rows, 0, 40, [14], columns)).toBe(null);
    rows[20 * F + 4] = 1e301;
    columns.release();
    expect(seriesOnRows('webapp', 'calculateEMASeries', rows, 0, 40, [9], undefined, columns)).toBe(NOT_COVERED);
    rows[20 * F + 4] = 100;
    columns.release();
    expect(seriesOnRows('webapp', 'calculateEMASeries', rows, 0, 40, [9], undefined, columns)).toBeInstanceOf(Float64Array);
  });

  it('drops at the next tick a carried result no tick read, however often the others of its series were', () => {
    const rows = new Float64Array(10 * F);
    for (let i = 0; i < 10; i++) rows[i * F] = i * 3_600_000;
    const entry: SeriesRows = { id: 1, generation: 1, interval: '1h', rows, start: 0, length: 10 };
    const args = [14];
    const carried = new CarriedResults();
    carried.beginTick();
    expect(carried.keeps(entry)).toBe(true);
    carried.put(entry, 'a', 1);
    carried.put(entry, 'b', 2);
    carried.putParsed(entry, args, 'webapp', 'getLatestRSI', undefined, undefined, 3);
    // Every result read (the usual tick): all stay.
    carried.beginTick();
    expect(carried.keeps(entry)).toBe(true);
    expect([carried.get(entry, 'a'), carried.get(entry, 'b'), carried.getParsed(entry, args, 'webapp', 'getLatestRSI')]).toEqual([1, 2, 3]);
    carried.beginTick();
    expect(carried.size).toBe(3);
    // 'a' read twice, the parsed one once, 'b' never (as many reads as results): 'b' alone goes.
    expect(carried.keeps(entry)).toBe(true);
    for (let i = 0; i < 2; i++) expect(carried.get(entry, 'a')).toBe(1);
    expect(carried.getParsed(entry, args, 'webapp', 'getLatestRSI')).toBe(3);
    carried.beginTick();
    expect(carried.size).toBe(2);
    expect(carried.keeps(entry)).toBe(true);
    expect(carried.get(entry, 'b')).toBe(NOT_CARRIED);
    expect(carried.get(entry, 'a')).toBe(1);
    // Nothing read: everything goes.
    carried.beginTick();
    carried.keeps(entry);
    carried.beginTick();
    expect(carried.size).toBe(0);
    expect(carried.bytes).toBe(0);
  });

  it('spreads volume and picks the high-volume nodes to the bit as the comparator sort and the per-bin division did', () => {
    // The library's code before: a division per bin, and the bins sorted by the comparator a - b.
    const spreadBefore = (volumeByBin: number[], buyByBin: number[], minPrice: number, binSize: number, open: number, high: number, low: number, close: number, volume: number, buyVolume: number): void => {
      const bins = volumeByBin.length;
      const firstBin = Math.floor((Math.min(open, close, low) - minPrice) / binSize);
      const lastBin = Math.floor((Math.max(open, close, high) - minPrice) / binSize);
      const spanned = Math.max(1, lastBin - firstBin + 1);
      for (let bin = Math.max(0, firstBin); bin <= Math.min(bins - 1, lastBin); bin++) {
        volumeByBin[bin] += volume / spanned;
        buyByBin[bin] += Number.isFinite(buyVolume) ? buyVolume / spanned : 0;
      }
    };
    const nodesBefore = (volumeByBin: number[], buyByBin: number[], minPrice: number, binSize: number, threshold: number, minStrength: number, peakTolerance: number): VolumeNode[] => {
      const sorted = volumeByBin.slice().sort((a, b) => a - b);
      const volumeThreshold = sorted[Math.floor((threshold / 100) * sorted.length)] || 0;
      let maxVolume = 0;
      for (const volume of volumeByBin) if (volume > maxVolume) maxVolume = volume;
      const nodes: VolumeNode[] = [];
      for (let bin = 0; bin < volumeByBin.length; bin++) {
        const volume = volumeByBin[bin]!;
        if (volume < volumeThreshold || volume <= 0) continue;
        const previous = bin > 0 ? volumeByBin[bin - 1]! : 0;
        const next = bin < volumeByBin.length - 1 ? volumeByBin[bin + 1]! : 0;
        if (!(volume > previous * (1 + peakTolerance) && volume > next * (1 + peakTolerance))) continue;
        const strength = maxVolume > 0 ? (volume / maxVolume) * 100 : 0;
        if (strength < minStrength) continue;
        const low = minPrice + bin * binSize;
        const high = low + binSize;
        nodes.push({ price: (low + high) / 2, volume, buyVolume: buyByBin[bin]!, sellVolume: volume - buyByBin[bin]!, strength, priceRange: [low, high] });
      }
      nodes.sort((a, b) => b.strength - a.strength);
      return nodes;
    };
    const odd = fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 1e308, -1, 5e-324);
    const value = fc.oneof({ weight: 8, arbitrary: fc.double({ min: 0, max: 1e6, noNaN: true }) }, { weight: 3, arbitrary: fc.integer({ min: 0, max: 5 }) }, { weight: 1, arbitrary: odd });
    const candle = fc.tuple(value, value, value, value, value, value);
    const threshold = fc.oneof(fc.integer({ min: 0, max: 100 }), fc.constantFrom(-5, 150, 33.3, NaN));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.array(candle, { maxLength: 30 }), fc.double({ min: 0, max: 1000, noNaN: true }), fc.double({ min: 1e-9, max: 50, noNaN: true }), threshold, fc.constantFrom(0, 50, 90), (bins, candles, minPrice, binSize, percentile, minStrength) => {
        const after = [new Array<number>(bins).fill(0), new Array<number>(bins).fill(0)];
        const before = [new Array<number>(bins).fill(0), new Array<number>(bins).fill(0)];
        for (const [open, high, low, close, volume, buy] of candles) {
          spreadVolume(after[0]!, after[1]!, minPrice, binSize, open, minPrice + high, minPrice + low, close, volume, buy);
          spreadBefore(before[0]!, before[1]!, minPrice, binSize, open, minPrice + high, minPrice + low, close, volume, buy);
        }
        expect(after).toStrictEqual(before);
        for (let i = 0; i < bins; i++) expect(Object.is(after[0]![i], before[0]![i])).toBe(true);
        expect(volumeNodes(after[0]!, after[1]!, minPrice, binSize, percentile, minStrength, 0.05)).toStrictEqual(nodesBefore(before[0]!, before[1]!, minPrice, binSize, percentile, minStrength, 0.05));
      }),
      { numRuns: 2000, seed: 1407 },
    );
    // Bins with zeros of both signs, ties and NaN, straight into the node picking.
    const bin = fc.oneof(fc.constantFrom(0, -0, 1, 2, 2, 3, NaN, Infinity), fc.double({ min: -10, max: 10, noNaN: true }));
    fc.assert(
      fc.property(fc.array(bin, { minLength: 1, maxLength: 40 }), threshold, (volumes, percentile) => {
        const buys = volumes.map((v) => v / 2);
        expect(volumeNodes(volumes.slice(), buys, 1, 0.5, percentile, 0, 0.05)).toStrictEqual(nodesBefore(volumes.slice(), buys, 1, 0.5, percentile, 0, 0.05));
      }),
      { numRuns: 3000, seed: 1408 },
    );
  });

  it('computes two RSI periods of one close column in one loop, each to the bit of its own pass, and pairs the periods of the batch before', () => {
    const step = fc.oneof({ weight: 6, arbitrary: fc.double({ min: -5, max: 5, noNaN: true }) }, { weight: 2, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(-0, 1e-300, 1e6) });
    fc.assert(
      fc.property(fc.array(step, { minLength: 2, maxLength: 160 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.double({ min: -1e6, max: 1e6, noNaN: true }), (steps, p, q, first) => {
        fc.pre(p !== q && steps.length >= Math.max(p, q) + 1);
        let close = first;
        const closes = Float64Array.from(steps, (change) => (close += change));
        const [a, b] = wilderRsiPair(closes, p, q);
        expect(Object.is(a, wilderRsi(closes, p, null)), `period ${p}`).toBe(true);
        expect(Object.is(b, wilderRsi(closes, q, null)), `period ${q}`).toBe(true);
      }),
      { numRuns: 3000, seed: 1409 },
    );
    // Batch after batch on shared columns (StochRSI keeps period 14's series): every answer the library's, and pairs computed.
    const { table, symbols } = marketTable(4);
    const columns = new CloseColumns();
    for (let batch = 0; batch < 3; batch++) {
      columns.release();
      for (const symbol of symbols) {
        const { rows, start, length } = table.rows(table.slot(seriesKey(symbol, '1m'))![0])!;
        for (const [helper, args] of [['getLatestRSI', [14]], ['getLatestRSI', [7]], ['getLatestStochRSI', []], ['getLatestRSI', [21]], ['getLatestRSI', [5]]] as const) {
          const want = (helperFunctions('webapp')[helper] as (...rest: unknown[]) => unknown)(Array.from({ length }, (_, i) => [...rows.subarray((start + i) * F, (start + i + 1) * F), 0]), ...args);
          expect(computeOnRows('webapp', helper, rows, start, length, args as unknown as unknown[], columns), `${helper}(${args.join()}) batch ${batch}`).toStrictEqual(want);
        }
      }
    }
    expect(columns.rsiPairsComputed).toBeGreaterThan(0);
  });
});
