// Conformance vectors for the default ('webapp') helper library: inputs and the web app's outputs,
// helper by helper. Small cases are worked out by hand from ../shared/WEBAPP-PARITY.md (and, for
// the helpers where worker and web app always agreed, from the documented behaviour); long random
// series take their expected values from the plain restatement of the web app in ./webapp.ts.
// Klines are numeric here; the check runs every vector again with string klines.
import type { HelperName } from '../../src/screening/helpers.ts';
import { seededRandom } from '../screening.support.ts';
import * as webapp from './webapp.ts';

export interface ParityVector {
  helper: HelperName;
  /** What the case exercises, e.g. 'shorter than 2 × period'. */
  name: string;
  args: unknown[];
  expected: unknown;
  /** Numbers must be identical (not just within 1e-9 relative): used where exactness is the point. */
  exact?: boolean;
}

type Bar = number[];
let time = 0;
/** One 12-field kline: open time, o, h, l, c, volume, close time, quote volume, trades, taker buy volume, taker buy quote, ignore. */
function bar(open: number, high: number, low: number, close: number, volume = 1, buy = volume / 2): Bar {
  time += 60_000;
  return [time, open, high, low, close, volume, time + 59_999, volume * close, 1, buy, buy * close, 0];
}

function walk(seed: number, count: number): Bar[] {
  const random = seededRandom(seed);
  let price = 50 + random() * 100;
  return Array.from({ length: count }, () => {
    const open = price;
    const close = open * (1 + (random() - 0.5) * 0.04);
    price = close;
    const volume = random() < 0.05 ? 0 : 100 + random() * 1000;
    return bar(open, Math.max(open, close) * (1 + random() * 0.01), Math.min(open, close) * (1 - random() * 0.01), close, volume, volume * random());
  });
}

const closes = (bars: Bar[]) => bars.map((b) => b[4]!);
const rising = [10, 11, 12, 13, 12, 11, 10].map((c) => bar(c, c + 1, c - 1, c));
const flat = Array.from({ length: 60 }, () => bar(100, 100, 100, 100, 10));
/** Flat at a large price with uneven (dyadic) volumes: every sum is exact, so the VWAP is exactly the price. */
const flatLarge = Array.from({ length: 40 }, (_, i) => bar(65_000, 65_000, 65_000, 65_000, [1.5, 2, 0.25, 3][i % 4]!));
/** Flat at prices binary fractions cannot hold: the VWAP itself is a rounding off the price, and the bands must stay that close. */
const flatOdd = Array.from({ length: 100 }, () => bar(65_000.123, 65_000.123, 65_000.123, 65_000.123, 1));
const flatSmall = Array.from({ length: 100 }, () => bar(27.31, 27.31, 27.31, 27.31, 3.7));
const twoBars = [bar(10, 12, 8, 10, 1), bar(20, 22, 18, 20, 3)];
const zeroVolume = Array.from({ length: 30 }, (_, i) => bar(100 + i, 101 + i, 99 + i, 100 + i, 0));
const adxBars = [bar(100, 101, 99, 100), bar(102, 103, 101, 102), bar(101, 102, 100, 101), bar(103, 104, 102, 103)];
const wideBars = Array.from({ length: 4 }, () => bar(1, 2, 0.5, 1));
const stochBars = [bar(9, 10, 8, 9), bar(10, 12, 9, 10), bar(10, 11, 7, 10)];
const bullish = [bar(10, 10.2, 8.8, 9), bar(8.5, 10.7, 8.4, 10.5), bar(10.5, 11, 10, 10.8)];
const bearish = [bar(9, 10.2, 8.8, 10), bar(10.5, 10.7, 8.4, 8.5), bar(8.5, 9, 8, 8.8)];
const pviBars = [bar(100, 100, 100, 100, 1), bar(110, 110, 110, 110, 2), bar(99, 99, 99, 99, 1)];
const hvnBars = [bar(0.5, 0.6, 0, 0.5, 10, 4), bar(1.5, 1.6, 1.4, 1.5, 30, 20), bar(2.5, 3, 2.4, 2.5, 5, 0)];
const hvnOptions = { bins: 3, threshold: 0, minStrength: 0, peakTolerance: 0 };
const node = (price: number) => ({ price, volume: 1, buyVolume: 0.5, sellVolume: 0.5, strength: 100, priceRange: [price - 0.5, price + 0.5] });
const nodes = [node(10), node(20), node(30)];
const divergencePrice = [10, 9, 10, 11, 12, 11, 10, 9, 8, 9, 10, 11, 12, 13, 12, 11, 10, 9, 8, 7, 8, 9];
const divergenceIndicator = divergencePrice.map((_, i) => (i < 12 ? 30 : 40));
const zero = { k: 0, d: 0 };
const zeros = (n: number) => Array.from({ length: n }, () => zero);
const nulls = (n: number): null[] => new Array(n).fill(null);
const deviation = Math.sqrt(31.25); // typical prices 10 and 20 around their VWAP 17.5

const long = walk(7, 500);
const medium = walk(8, 60);
const short = walk(9, 20);
const series = { 'a 500-candle walk': long, 'a 60-candle walk': medium, 'a 20-candle walk': short };

const vectors: ParityVector[] = [
  // Moving averages.
  { helper: 'calculateMA', name: 'last 3 closes', args: [rising, 3], expected: 11 },
  { helper: 'calculateMA', name: 'shorter than period', args: [rising, 8], expected: null },
  { helper: 'calculateMA', name: 'empty', args: [[], 3], expected: null },
  { helper: 'calculateMA', name: 'flat', args: [flat, 20], expected: 100 },
  { helper: 'calculateMASeries', name: 'per candle', args: [rising.slice(0, 4), 2], expected: [null, 10.5, 11.5, 12.5] },
  { helper: 'calculateMASeries', name: 'shorter than period', args: [rising.slice(0, 1), 2], expected: [null] },
  { helper: 'calculateMASeries', name: 'empty', args: [[], 2], expected: [] },
  { helper: 'calculateSMA', name: 'last 3 values', args: [[1, 2, 3, 4, 5], 3], expected: 4 },
  { helper: 'calculateSMA', name: 'exactly period values', args: [[1, 2, 3], 3], expected: 2 },
  { helper: 'calculateSMA', name: 'shorter than period is 0', args: [[1, 2], 3], expected: 0 },
  { helper: 'calculateSMA', name: 'missing values is 0', args: [undefined, 3], expected: 0 },
  { helper: 'calculateSMA', name: 'empty is 0', args: [[], 1], expected: 0 },
  { helper: 'calculateSMA', name: 'period 0 is 0', args: [[1, 2, 3], 0], expected: 0 },
  { helper: 'calculateSMA', name: 'negative period is 0', args: [[1, 2, 3], -2], expected: 0 },
  { helper: 'calculateAvgVolume', name: 'mean volume', args: [twoBars, 2], expected: 2 },
  { helper: 'calculateAvgVolume', name: 'shorter than period', args: [twoBars, 3], expected: null },
  { helper: 'calculateAvgVolume', name: 'empty', args: [[], 1], expected: null },
  { helper: 'calculateEMASeries', name: 'seeded with the SMA', args: [rising.slice(0, 4), 2], expected: [null, 10.5, 11.5, 12.5] },
  { helper: 'calculateEMASeries', name: 'empty', args: [[], 2], expected: [] },
  { helper: 'getLatestEMA', name: 'latest', args: [rising.slice(0, 4), 2], expected: 12.5 },
  { helper: 'getLatestEMA', name: 'empty', args: [[], 2], expected: null },
  { helper: 'calculateEMA', name: 'seeded with the first value', args: [[1, 2, 3], 2], expected: 23 / 9 },
  { helper: 'calculateEMA', name: 'flat', args: [[5, 5, 5, 5], 3], expected: 5 },
  { helper: 'calculateEMA', name: 'shorter than period is 0', args: [[1], 2], expected: 0 },
  { helper: 'calculateEMA', name: 'missing values is 0', args: [undefined, 2], expected: 0 },
  { helper: 'calculateEMA', name: 'period 0 is 0', args: [[1, 2], 0], expected: 0 },
  { helper: 'calculateMACD', name: 'first-value-seeded EMAs', args: [[1, 2, 3, 4, 5], 2, 3, 2], expected: { MACD: 575 / 1296, signal: 811 / 1944, histogram: 103 / 3888 } },
  { helper: 'calculateMACD', name: 'fewer MACD values than the signal period: signal 0', args: [[1, 2, 3, 4, 5], 2, 3, 5], expected: { MACD: 575 / 1296, signal: 0, histogram: 575 / 1296 } },
  { helper: 'calculateMACD', name: 'fewer than long closes is zeros', args: [closes(long).slice(0, 25)], expected: { MACD: 0, signal: 0, histogram: 0 } },
  { helper: 'calculateMACD', name: 'empty is zeros', args: [[]], expected: { MACD: 0, signal: 0, histogram: 0 } },
  { helper: 'calculateMACD', name: 'missing is zeros', args: [undefined], expected: { MACD: 0, signal: 0, histogram: 0 } },
  { helper: 'calculateMACD', name: 'flat is zeros', args: [closes(flat)], expected: { MACD: 0, signal: 0, histogram: 0 } },
  { helper: 'calculateMACDValues', name: 'per candle', args: [rising.slice(0, 4), 1, 2, 1], expected: { macdLine: [null, 0.5, 0.5, 0.5], signalLine: [null, 0.5, 0.5, 0.5], histogram: [null, 0, 0, 0] } },
  { helper: 'calculateMACDValues', name: 'shorter than the periods', args: [rising], expected: { macdLine: nulls(7), signalLine: nulls(7), histogram: nulls(7) } },
  { helper: 'calculateMACDValues', name: 'empty', args: [[]], expected: { macdLine: [], signalLine: [], histogram: [] } },
  { helper: 'getLatestMACD', name: 'latest', args: [rising.slice(0, 4), 1, 2, 1], expected: { macd: 0.5, signal: 0.5, histogram: 0 } },
  { helper: 'getLatestMACD', name: 'empty', args: [[]], expected: { macd: null, signal: null, histogram: null } },

  // Oscillators.
  { helper: 'calculateRSI', name: 'Wilder RSI per candle', args: [rising, 2], expected: [null, null, 100, 100, 50, 25, 12.5] },
  { helper: 'calculateRSI', name: 'flat is 50', args: [flat.slice(0, 20), 14], expected: [...nulls(14), 50, 50, 50, 50, 50, 50] },
  { helper: 'calculateRSI', name: 'shorter than period + 1', args: [rising.slice(0, 2), 2], expected: null },
  { helper: 'getLatestRSI', name: 'latest', args: [rising, 2], expected: 12.5 },
  { helper: 'getLatestRSI', name: 'empty', args: [[], 14], expected: null },
  { helper: 'calculateStochRSI', name: 'array of {k, d}; a genuine {0, 0} stays', args: [rising, 2, 2, 1, 1], expected: [zero, zero, zero, { k: 50, d: 50 }, zero, zero, zero] },
  { helper: 'calculateStochRSI', name: 'flat: raw 50, {0, 0} until %D exists', args: [flat], expected: [...zeros(31), ...Array.from({ length: 29 }, () => ({ k: 50, d: 50 }))] },
  { helper: 'calculateStochRSI', name: 'enough RSIs for one raw value only: all {0, 0}', args: [flat.slice(0, 28)], expected: zeros(28) },
  { helper: 'calculateStochRSI', name: 'fewer than stochPeriod RSIs', args: [flat.slice(0, 27)], expected: null },
  { helper: 'calculateStochRSI', name: 'fewer than stochPeriod + kPeriod − 1 RSI entries', args: [rising.slice(0, 3), 1, 2, 5, 1], expected: null },
  { helper: 'calculateStochRSI', name: 'just enough RSI entries, no %K yet', args: [rising.slice(0, 6), 1, 2, 5, 1], expected: zeros(6) },
  { helper: 'calculateStochRSI', name: 'empty', args: [[]], expected: null },
  { helper: 'getLatestStochRSI', name: 'last entry with k or d non-zero', args: [rising, 2, 2, 1, 1], expected: { k: 50, d: 50 } },
  { helper: 'getLatestStochRSI', name: 'flat', args: [flat], expected: { k: 50, d: 50 } },
  { helper: 'getLatestStochRSI', name: 'every entry {0, 0}', args: [flat.slice(0, 28)], expected: null },
  { helper: 'getLatestStochRSI', name: 'empty', args: [[]], expected: null },
  { helper: 'calculateStochastic', name: 'fast %K, d = 0.9 k', args: [stochBars, 3], expected: { k: 60, d: 54 } },
  { helper: 'calculateStochastic', name: 'dPeriod and smooth ignored', args: [stochBars, 3, 7, 9], expected: { k: 60, d: 54 } },
  { helper: 'calculateStochastic', name: 'flat range is 50', args: [flat, 14], expected: { k: 50, d: 45 } },
  { helper: 'calculateStochastic', name: 'fewer than kPeriod is {0, 0}', args: [stochBars, 4], expected: { k: 0, d: 0 } },
  { helper: 'calculateStochastic', name: 'empty is {0, 0}', args: [[]], expected: { k: 0, d: 0 } },

  // Trend, channel, patterns.
  { helper: 'calculateADX', name: 'mean true range over mean close × 1000', args: [adxBars, 2], expected: (2.5 / 102) * 1000 },
  { helper: 'calculateADX', name: 'clamped to 100', args: [wideBars, 2], expected: 100 },
  { helper: 'calculateADX', name: 'fewer than 2 × period is 0', args: [adxBars, 3], expected: 0 },
  { helper: 'calculateADX', name: 'flat is 0', args: [flat.slice(0, 28)], expected: 0 },
  { helper: 'calculateADX', name: 'empty is 0', args: [[]], expected: 0 },
  { helper: 'getHighestHigh', name: 'last 2', args: [stochBars, 2], expected: 12 },
  { helper: 'getHighestHigh', name: 'shorter than period', args: [stochBars, 4], expected: null },
  { helper: 'getLowestLow', name: 'last 2', args: [stochBars, 2], expected: 7 },
  { helper: 'getLowestLow', name: 'empty', args: [[], 1], expected: null },
  { helper: 'detectEngulfingPattern', name: 'bullish at length − 2', args: [bullish], expected: 'bullish' },
  { helper: 'detectEngulfingPattern', name: 'bearish at length − 2', args: [bearish], expected: 'bearish' },
  { helper: 'detectEngulfingPattern', name: 'none', args: [flat], expected: null },
  { helper: 'detectEngulfingPattern', name: 'fewer than 3', args: [bullish.slice(0, 2)], expected: null },
  { helper: 'detectGenericDivergence', name: 'bullish', args: [divergencePrice, divergenceIndicator, 22, 5], expected: 'bullish_regular' },
  { helper: 'detectGenericDivergence', name: 'bearish', args: [divergencePrice.map((p) => 30 - p), divergenceIndicator.map((v) => 100 - v), 22, 5], expected: 'bearish_regular' },
  { helper: 'detectGenericDivergence', name: 'none', args: [divergencePrice, divergencePrice, 22, 5], expected: null },
  { helper: 'detectGenericDivergence', name: 'different lengths', args: [divergencePrice, divergenceIndicator.slice(1), 22, 5], expected: null },
  { helper: 'detectRSIDivergence', name: 'flat has no extremes', args: [flat], expected: null },
  { helper: 'detectRSIDivergence', name: 'empty', args: [[]], expected: null },
  { helper: 'calculateBollingerBands', name: 'per candle', args: [rising.slice(0, 3), 2, 2], expected: { upper: [null, 11.5, 12.5], middle: [null, 10.5, 11.5], lower: [null, 9.5, 10.5] } },
  { helper: 'calculateBollingerBands', name: 'empty', args: [[], 20], expected: { upper: [], middle: [], lower: [] } },
  { helper: 'getLatestBollingerBands', name: 'latest', args: [rising.slice(0, 3), 2, 2], expected: { upper: 12.5, middle: 11.5, lower: 10.5 } },
  { helper: 'getLatestBollingerBands', name: 'flat', args: [flat], expected: { upper: 100, middle: 100, lower: 100 }, exact: true },
  { helper: 'getLatestBollingerBands', name: 'empty', args: [[]], expected: { upper: null, middle: null, lower: null } },

  // Volume.
  { helper: 'calculatePVISeries', name: 'moves on rising volume only', args: [pviBars], expected: [1000, 1100, 1100] },
  { helper: 'calculatePVISeries', name: 'initial value', args: [pviBars, 500], expected: [500, 550, 550] },
  { helper: 'calculatePVISeries', name: 'empty', args: [[]], expected: [] },
  { helper: 'getLatestPVI', name: 'latest', args: [pviBars], expected: 1100 },
  { helper: 'getLatestPVI', name: 'empty', args: [[]], expected: null },
  { helper: 'calculateVWAP', name: 'typical price weighted by volume', args: [twoBars], expected: 17.5 },
  { helper: 'calculateVWAP', name: 'no klines is 0', args: [[]], expected: 0 },
  { helper: 'calculateVWAP', name: 'missing klines is 0', args: [undefined], expected: 0 },
  { helper: 'calculateVWAP', name: 'zero total volume is 0', args: [zeroVolume], expected: 0 },
  { helper: 'calculateVWAPSeries', name: 'cumulative', args: [twoBars], expected: [10, 17.5] },
  { helper: 'calculateVWAPSeries', name: 'anchored', args: [twoBars, 1], expected: [null, 20] },
  { helper: 'calculateVWAPSeries', name: 'zero volume', args: [zeroVolume.slice(0, 3)], expected: [null, null, null] },
  { helper: 'calculateVWAPSeries', name: 'empty', args: [[]], expected: [] },
  { helper: 'getLatestVWAP', name: 'latest', args: [twoBars], expected: 17.5 },
  { helper: 'getLatestVWAP', name: 'anchored', args: [twoBars, 1], expected: 20 },
  { helper: 'getLatestVWAP', name: 'empty', args: [[]], expected: null },
  { helper: 'calculateVWAPBands', name: 'deviation of typical prices from the VWAP', args: [twoBars], expected: { vwap: [10, 17.5], upperBand: [10, 17.5 + deviation], lowerBand: [10, 17.5 - deviation] } },
  { helper: 'calculateVWAPBands', name: 'multiplier', args: [twoBars, undefined, 2], expected: { vwap: [10, 17.5], upperBand: [10, 17.5 + 2 * deviation], lowerBand: [10, 17.5 - 2 * deviation] } },
  { helper: 'calculateVWAPBands', name: 'anchored', args: [twoBars, 1], expected: { vwap: [null, 20], upperBand: [null, 20], lowerBand: [null, 20] } },
  { helper: 'calculateVWAPBands', name: 'flat: band width exactly 0', args: [flat], expected: { vwap: new Array(60).fill(100), upperBand: new Array(60).fill(100), lowerBand: new Array(60).fill(100) }, exact: true },
  { helper: 'calculateVWAPBands', name: 'empty', args: [[]], expected: { vwap: [], upperBand: [], lowerBand: [] } },
  { helper: 'getLatestVWAPBands', name: 'latest', args: [twoBars], expected: { vwap: 17.5, upperBand: 17.5 + deviation, lowerBand: 17.5 - deviation } },
  { helper: 'getLatestVWAPBands', name: 'flat at 65000, uneven volume: width exactly 0', args: [flatLarge, undefined, 2], expected: { vwap: 65_000, upperBand: 65_000, lowerBand: 65_000 }, exact: true },
  { helper: 'getLatestVWAPBands', name: 'flat at 65000.123: bands within rounding of the VWAP', args: [flatOdd], expected: webapp.latestVwapBands(flatOdd) },
  { helper: 'calculateVWAPBands', name: 'flat at 27.31: bands within rounding of the VWAP', args: [flatSmall, undefined, 2], expected: webapp.vwapBands(flatSmall, undefined, 2) },
  { helper: 'getLatestVWAPBands', name: 'empty', args: [[]], expected: { vwap: null, upperBand: null, lowerBand: null } },

  // High-volume nodes.
  { helper: 'calculateHighVolumeNodes', name: 'the peak bin', args: [hvnBars, hvnOptions], expected: [{ price: 1.5, volume: 30, buyVolume: 20, sellVolume: 10, strength: 100, priceRange: [1, 2] }] },
  { helper: 'calculateHighVolumeNodes', name: 'flat has no range', args: [flat], expected: [] },
  { helper: 'calculateHighVolumeNodes', name: 'empty', args: [[]], expected: [] },
  { helper: 'isNearHVN', name: 'within tolerance', args: [1.5, [node(1.505)], 0.5], expected: true },
  { helper: 'isNearHVN', name: 'outside tolerance', args: [1.6, [node(1.5)], 0.5], expected: false },
  { helper: 'isNearHVN', name: 'no nodes', args: [100, [], 0.5], expected: false },
  { helper: 'getClosestHVN', name: 'nearest', args: [19, nodes], expected: node(20) },
  { helper: 'getClosestHVN', name: 'nearest above', args: [21, nodes, 'above'], expected: node(30) },
  { helper: 'getClosestHVN', name: 'nearest below', args: [21, nodes, 'below'], expected: node(20) },
  { helper: 'getClosestHVN', name: 'none above', args: [31, nodes, 'above'], expected: null },
  { helper: 'getClosestHVN', name: 'no nodes', args: [5, []], expected: null },
  { helper: 'countHVNInRange', name: '(0, Infinity) counts every node', args: [0, Infinity, nodes], expected: 3 },
  { helper: 'countHVNInRange', name: '(−Infinity, 15)', args: [-Infinity, 15, nodes], expected: 1 },
  { helper: 'countHVNInRange', name: 'bounds inclusive', args: [10, 30, nodes], expected: 3 },
  { helper: 'countHVNInRange', name: 'inside', args: [15, 25, nodes], expected: 1 },
  { helper: 'countHVNInRange', name: 'NaN low bound is 0', args: [NaN, 100, nodes], expected: 0 },
  { helper: 'countHVNInRange', name: 'NaN high bound is 0', args: [0, NaN, nodes], expected: 0 },
  { helper: 'countHVNInRange', name: 'no nodes', args: [0, 100, []], expected: 0 },
  { helper: 'countHVNInRange', name: 'missing nodes', args: [0, 100, undefined], expected: 0 },
  { helper: 'clearHVNCache', name: 'with a key', args: ['BTCUSDT'], expected: undefined },
  { helper: 'clearHVNCache', name: 'without', args: [], expected: undefined },
];

// Long random series (with some zero-volume candles): expected values from the restatement in ./webapp.ts.
for (const [label, bars] of Object.entries(series)) {
  const c = closes(bars);
  vectors.push(
    { helper: 'calculateADX', name: `${label}, default period`, args: [bars], expected: webapp.adx(bars) },
    { helper: 'calculateADX', name: `${label}, period 7`, args: [bars, 7], expected: webapp.adx(bars, 7) },
    { helper: 'calculateStochastic', name: `${label}, defaults`, args: [bars], expected: webapp.stochastic(bars) },
    { helper: 'calculateStochastic', name: `${label}, kPeriod 5`, args: [bars, 5, 3, 3], expected: webapp.stochastic(bars, 5) },
    { helper: 'calculateStochRSI', name: `${label}, defaults`, args: [bars], expected: webapp.stochRsi(bars) },
    { helper: 'calculateStochRSI', name: `${label}, 7/10/2/4`, args: [bars, 7, 10, 2, 4], expected: webapp.stochRsi(bars, 7, 10, 2, 4) },
    { helper: 'getLatestStochRSI', name: `${label}, defaults`, args: [bars], expected: webapp.latestStochRsi(bars) },
    { helper: 'getLatestStochRSI', name: `${label}, 5/5/1/1`, args: [bars, 5, 5, 1, 1], expected: webapp.latestStochRsi(bars, 5, 5, 1, 1) },
    { helper: 'calculateSMA', name: `${label} closes, period 20`, args: [c, 20], expected: webapp.sma(c, 20) },
    { helper: 'calculateSMA', name: `${label} closes, period 50`, args: [c, 50], expected: webapp.sma(c, 50) },
    { helper: 'calculateEMA', name: `${label} closes, period 12`, args: [c, 12], expected: webapp.ema(c, 12) },
    { helper: 'calculateEMA', name: `${label} closes, period 26`, args: [c, 26], expected: webapp.ema(c, 26) },
    { helper: 'calculateMACD', name: `${label} closes, defaults`, args: [c], expected: webapp.macd(c) },
    { helper: 'calculateMACD', name: `${label} closes, 5/10/4`, args: [c, 5, 10, 4], expected: webapp.macd(c, 5, 10, 4) },
    { helper: 'calculateVWAP', name: label, args: [bars], expected: webapp.vwap(bars) },
    { helper: 'calculateVWAPBands', name: label, args: [bars], expected: webapp.vwapBands(bars) },
    { helper: 'calculateVWAPBands', name: `${label}, anchored 12, multiplier 2`, args: [bars, 12, 2], expected: webapp.vwapBands(bars, 12, 2) },
    { helper: 'getLatestVWAPBands', name: `${label}, anchored 48`, args: [bars, 48], expected: webapp.latestVwapBands(bars, 48) },
    { helper: 'countHVNInRange', name: `nodes at ${label}'s closes, (0, Infinity)`, args: [0, Infinity, c.map(node)], expected: webapp.countInRange(0, Infinity, c.map(node)) },
  );
}

export const PARITY_VECTORS: readonly ParityVector[] = vectors;
