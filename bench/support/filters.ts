// The benchmark's traders: filters written the way the web app's users write them (RSI, EMA cross, volume spike, Bollinger squeeze, MACD).
import { createHash } from 'node:crypto';
import { INTERVALS, type Interval, type Trader } from '../../src/domain.ts';
import { bollingerFloor, emaCrossFloor, type FloorFilter, macdStochFloor, rsiFloor, volumeSpikeFloor } from './floor.ts';

export interface BenchFilter {
  name: string;
  refreshInterval: Interval;
  requiredTimeframes: Interval[];
  code: string;
  /** The same filter by hand over Float64Array columns: the compute floor (bench/support/floor.ts). */
  floor: FloorFilter;
}

/**
 * Five kinds of filter, each a template over the refresh series `k` and a second, higher timeframe
 * `h`. Parameters vary per trader the way users tune them (most keep the defaults, a few do not), so
 * traders share some indicator work and not all of it, as they would on a real account.
 */
const KINDS: Array<(variant: number, h: Interval) => { name: string; code: string; floor: FloorFilter }> = [
  (variant, h) => {
    const period = [14, 14, 7, 21][variant % 4]!;
    const below = [40, 45, 35, 42][variant % 4]!;
    return {
      name: `RSI(${period}) < ${below}, ${h} RSI(14) < 60`,
      code: `const k = timeframes['1m'];
const rsi = helpers.getLatestRSI(k, ${period});
const higher = helpers.getLatestRSI(timeframes['${h}'], 14);
if (rsi === null || higher === null) return false;
return { match: rsi < ${below} && higher < 60, conditions: ['RSI(${period}) ' + rsi.toFixed(1), '${h} RSI ' + higher.toFixed(1)] };`,
      floor: rsiFloor(period, below, h),
    };
  },
  (variant, h) => {
    const [fast, slow] = [[9, 21], [12, 26], [9, 21], [20, 50]][variant % 4]!;
    return {
      name: `EMA ${fast}/${slow} cross up, above ${h} EMA(50)`,
      code: `const k = timeframes['1m'];
const fast = helpers.calculateEMASeries(k, ${fast});
const slow = helpers.calculateEMASeries(k, ${slow});
const n = k.length - 1;
const trend = helpers.getLatestEMA(timeframes['${h}'], 50);
const close = parseFloat(k[n][4]);
if (fast[n] === null || slow[n] === null || trend === null) return false;
// Crossed up within the last three candles, with the higher timeframe's trend.
const crossed = fast[n] > slow[n] && fast[n - 3] !== null && fast[n - 3] <= slow[n - 3];
return { match: crossed && close > trend, conditions: ['EMA ${fast} crossed above EMA ${slow}'] };`,
      floor: emaCrossFloor(fast, slow),
    };
  },
  (variant, h) => {
    const factor = [2, 1.5, 2.5, 1.8][variant % 4]!;
    return {
      name: `volume > ${factor}× 20-candle average, ${h} close above SMA(20)`,
      code: `const k = timeframes['1m'];
const last = k[k.length - 1];
const average = helpers.calculateAvgVolume(k.slice(0, -1), 20);
const higher = timeframes['${h}'];
const sma = helpers.calculateMA(higher, 20);
if (average === null || sma === null) return false;
const ratio = parseFloat(last[5]) / average;
return { match: ratio > ${factor} && parseFloat(higher[higher.length - 1][4]) > sma && parseFloat(ticker.q) > 0, conditions: ['volume ' + ratio.toFixed(2) + 'x average'] };`,
      floor: volumeSpikeFloor(factor),
    };
  },
  (variant, h) => {
    const width = [0.02, 0.025, 0.018, 0.022][variant % 4]!;
    return {
      name: `Bollinger(20, 2) width < ${width}, ${h} ADX`,
      code: `const k = timeframes['1m'];
const bb = helpers.getLatestBollingerBands(k, 20, 2);
if (!bb || bb.upper === null || bb.lower === null || !bb.middle) return false;
const width = (bb.upper - bb.lower) / bb.middle;
const adx = helpers.calculateADX(timeframes['${h}'], 14);
return { match: width < ${width} && adx !== null, conditions: ['BB width ' + width.toFixed(4), 'ADX ' + (adx === null ? '-' : adx.toFixed(1))] };`,
      floor: bollingerFloor(width),
    };
  },
  (variant, h) => {
    const stochAbove = [20, 30, 20, 25][variant % 4]!;
    return {
      name: `MACD histogram > 0, StochRSI K in ${stochAbove}..${stochAbove + 15}, near ${h} VWAP`,
      code: `const k = timeframes['1m'];
const macd = helpers.getLatestMACD(k);
const stoch = helpers.getLatestStochRSI(k);
const vwap = helpers.getLatestVWAP(timeframes['${h}']);
if (!macd || macd.histogram === null || !stoch || stoch.k === null || vwap === null) return false;
const close = parseFloat(ticker.c);
return { match: macd.histogram > 0 && stoch.k > ${stochAbove} && stoch.k < ${stochAbove + 15}, conditions: ['MACD hist ' + macd.histogram.toFixed(5), 'near HVN ' + helpers.isNearHVN(close, hvnNodes, 2), 'vs VWAP ' + (close / vwap).toFixed(3)] };`,
      floor: macdStochFloor(stochAbove),
    };
  },
];

/**
 * `count` traders refreshing on 1m, each seeing 1m plus one higher timeframe taken in turn from
 * `higher` (so the union of all traders' timeframes is 1m ∪ higher).
 */
export function benchFilters(count: number, higher: readonly Interval[]): BenchFilter[] {
  if (higher.length === 0) throw new RangeError('benchFilters needs at least one higher timeframe');
  return Array.from({ length: count }, (_, index) => {
    const h = higher[index % higher.length]!;
    const { name, code, floor } = KINDS[index % KINDS.length]!(Math.floor(index / KINDS.length), h);
    return { name, refreshInterval: '1m', requiredTimeframes: ['1m', h], code, floor };
  });
}

/** The filters as Trader rows, as StateSynchronizer would hand them to the Screener. */
export function benchTraders(filters: readonly BenchFilter[]): Trader[] {
  return filters.map((filter, index) => ({
    id: `00000000-0000-4000-8000-${String(index + 1).padStart(12, '0')}`,
    userId: '11111111-1111-4111-8111-111111111111',
    name: filter.name,
    enabled: true,
    executionMode: 'cloud',
    filter: { code: filter.code, description: [], refreshInterval: filter.refreshInterval, requiredTimeframes: filter.requiredTimeframes, indicators: [], helpers: 'webapp' },
    timeframes: INTERVALS.filter((interval) => interval === filter.refreshInterval || filter.requiredTimeframes.includes(interval)),
    codeHash: createHash('sha256').update(filter.code).digest('hex'),
    updatedAt: '2026-01-01T00:00:00.000Z',
  }));
}
