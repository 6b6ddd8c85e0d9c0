// Building blocks the helpers share: present in the library's source, never on `helpers`.
//
// Like every function of the library, each one is self-contained plain JavaScript once types are
// stripped, calling only other library functions by their own names (see library.ts).
import type { HVNOptions, Kline, Series, VolumeNode } from './types.ts';

/** A kline field as a number, accepting the browser's strings (parseFloat, as the web app does); NaN when unreadable. */
export function toNumber(value: unknown): number {
  return typeof value === 'number' ? value : parseFloat(value as string);
}

export function isValidPeriod(period: unknown): boolean {
  return typeof period === 'number' && Number.isInteger(period) && period > 0;
}

export function closesOf(klines: ArrayLike<Kline>): Series {
  const closes: Series = new Array(klines.length);
  for (let i = 0; i < klines.length; i++) {
    const close = toNumber(klines[i]![4]);
    closes[i] = Number.isFinite(close) ? close : null;
  }
  return closes;
}

export function lastNonNull(series: Series | null): number | null {
  if (!series) return null;
  for (let i = series.length - 1; i >= 0; i--) if (series[i] !== null) return series[i]!;
  return null;
}

export function nullSeries(length: number): Series {
  return new Array(length).fill(null);
}

/** EMA of a series with nulls: seeded with the SMA of the first `period` consecutive values. */
export function emaOfSeries(values: ArrayLike<number | null>, period: number): Series {
  const out = nullSeries(values ? values.length : 0);
  if (!values || !isValidPeriod(period) || values.length < period) return out;
  emaInto(values, period, out);
  return out;
}

/**
 * emaOfSeries's arithmetic for a valid `period` of at most `values.length`: writes only the
 * positions that get a value into `out` (a null series, or a NaN-filled Float64Array on the host),
 * so both forms hold the same numbers.
 */
export function emaInto(values: ArrayLike<number | null>, period: number, out: { [index: number]: number | null }): void {
  let start = -1;
  let run = 0;
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    run = value === null || value === undefined || !Number.isFinite(value) ? 0 : run + 1;
    if (run === period) {
      start = i - period + 1;
      break;
    }
  }
  if (start < 0) return;
  let sum = 0;
  for (let i = start; i < start + period; i++) sum += values[i]!;
  const k = 2 / (period + 1);
  let ema = sum / period;
  out[start + period - 1] = ema;
  for (let i = start + period; i < values.length; i++) {
    const value = values[i];
    if (value === null || value === undefined || !Number.isFinite(value)) break;
    ema = value * k + ema * (1 - k);
    out[i] = ema;
  }
}

/**
 * emaOfSeries's last value by its arithmetic (seeded on the first run of `period` readable values,
 * ended by a gap), without its array; `closes` holds NaN where a value is unreadable (closeColumn).
 */
export function latestEma(closes: ArrayLike<number>, period: number): number | null {
  if (!isValidPeriod(period) || closes.length < period) return null;
  let start = -1;
  let run = 0;
  for (let i = 0; i < closes.length; i++) {
    run = closes[i] !== closes[i] ? 0 : run + 1;
    if (run === period) {
      start = i - period + 1;
      break;
    }
  }
  if (start < 0) return null;
  let sum = 0;
  for (let i = start; i < start + period; i++) sum += closes[i]!;
  const k = 2 / (period + 1);
  let ema = sum / period;
  for (let i = start + period; i < closes.length; i++) {
    const value = closes[i]!;
    if (value !== value) break;
    ema = value * k + ema * (1 - k);
  }
  return ema;
}

/**
 * calculateBollingerBands's latest complete entry by its arithmetic, computed from the end only, for
 * a valid `period` of at most `closes.length`; `closes` holds NaN where a close is unreadable.
 */
export function latestBollingerBands(
  closes: ArrayLike<number>,
  period: number,
  stdDev: number,
): { upper: number | null; middle: number | null; lower: number | null } {
  for (let i = closes.length - 1; i >= period - 1; i--) {
    let sum = 0;
    let valid = true;
    for (let j = i - period + 1; j <= i; j++) {
      if (closes[j] !== closes[j]) {
        valid = false;
        break;
      }
      sum += closes[j]!;
    }
    if (!valid) continue;
    const mean = sum / period;
    let squares = 0;
    for (let j = i - period + 1; j <= i; j++) squares += (closes[j]! - mean) * (closes[j]! - mean);
    const deviation = Math.sqrt(squares / period);
    return { upper: mean + stdDev * deviation, middle: mean, lower: mean - stdDev * deviation };
  }
  return { upper: null, middle: null, lower: null };
}

/**
 * calculateMACDValues from the EMA series of its closes: the MACD line wherever both EMAs have a
 * value, the signal as its EMA, the histogram as their difference. `macdLine` and `histogram` come
 * in as null series as long as the klines and go out filled.
 */
export function macdOfEmas(
  short: Series,
  long: Series,
  signalPeriod: number,
  macdLine: Series,
  histogram: Series,
): { macdLine: Series; signalLine: Series; histogram: Series } {
  const length = macdLine.length;
  for (let i = 0; i < length; i++) if (short[i] != null && long[i] != null) macdLine[i] = short[i]! - long[i]!;
  const signalLine = emaOfSeries(macdLine, signalPeriod);
  for (let i = 0; i < length; i++) if (macdLine[i] !== null && signalLine[i] !== null) histogram[i] = macdLine[i]! - signalLine[i]!;
  return { macdLine, signalLine, histogram };
}

/** SMA per position of a series with nulls: null wherever the window holds a null. */
export function smaOfSeries(values: Series, period: number): Series {
  const out = nullSeries(values.length);
  for (let i = period - 1; i < values.length; i++) {
    let sum = 0;
    let valid = true;
    for (let j = i - period + 1; j <= i; j++) {
      if (values[j] === null) {
        valid = false;
        break;
      }
      sum += values[j]!;
    }
    if (valid) out[i] = sum / period;
  }
  return out;
}

/**
 * closesOf as a Float64Array, NaN where closesOf has null: the same numbers without boxing each one
 * (a null in an array makes every element a heap object). Reads every kline, as closesOf does, so a
 * missing kline throws the same way.
 */
export function closeColumn(klines: ArrayLike<Kline>): Float64Array {
  const closes = new Float64Array(klines.length);
  for (let i = 0; i < klines.length; i++) {
    const close = toNumber(klines[i]![4]);
    closes[i] = Number.isFinite(close) ? close : NaN;
  }
  return closes;
}

/**
 * Wilder's RSI of `closes` (no NaN or null in them), calculateRSI's arithmetic: the latest value, and every value from
 * index `period` on written into `out` when one is given (entries below `period` are left as they are). One loop
 * serves the full series, the latest value and StochRSI's input, so they agree to the last bit.
 */
export function wilderRsi(closes: ArrayLike<number>, period: number, out: { [index: number]: number | null } | null): number {
  let gains = 0;
  let losses = 0;
  for (let i = 1; i <= period; i++) {
    const change = closes[i]! - closes[i - 1]!;
    if (change > 0) gains += change;
    else losses -= change;
  }
  let avgGain = gains / period;
  let avgLoss = losses / period;
  if (out !== null) out[period] = avgLoss === 0 ? (avgGain > 0 ? 100 : 50) : 100 - 100 / (1 + avgGain / avgLoss);
  for (let i = period + 1; i < closes.length; i++) {
    const change = closes[i]! - closes[i - 1]!;
    avgGain = (avgGain * (period - 1) + (change > 0 ? change : 0)) / period;
    avgLoss = (avgLoss * (period - 1) + (change < 0 ? -change : 0)) / period;
    if (out !== null) out[i] = avgLoss === 0 ? (avgGain > 0 ? 100 : 50) : 100 - 100 / (1 + avgGain / avgLoss);
  }
  return avgLoss === 0 ? (avgGain > 0 ? 100 : 50) : 100 - 100 / (1 + avgGain / avgLoss);
}

/**
 * getLatestStochRSI's answer: calculateStochRSI's arithmetic in its order, computed only at the
 * entries looked at from the end (usually the last one) instead of building the whole series of
 * { k, d }. For valid periods and at least rsiPeriod + 1 closes; NaN marks an unreadable close.
 * `rsiOf`, when given, hands over wilderRsi's series of these closes (the host's, shared with
 * getLatestRSI of the same closes: the same array to the bit); else it is computed here.
 */
export function latestStochRSI(
  closes: ArrayLike<number>,
  rsiPeriod: number,
  stochPeriod: number,
  kPeriod: number,
  dPeriod: number,
  rsiOf?: (closes: ArrayLike<number>, period: number) => ArrayLike<number>,
): { k: number; d: number } | null {
  if (!allReadable(closes)) return null;
  const length = closes.length;
  // calculateRSI has a value from rsiPeriod on: those are the positions the raw StochRSI reads.
  if (length < stochPeriod + kPeriod - 1 || length - rsiPeriod < stochPeriod) return null;
  let rsi: ArrayLike<number>;
  if (rsiOf !== undefined) rsi = rsiOf(closes, rsiPeriod);
  else {
    const own = new Float64Array(length);
    wilderRsi(closes, rsiPeriod, own);
    rsi = own;
  }
  return stochRSIOfRsi(rsi, rsiPeriod, stochPeriod, kPeriod, dPeriod);
}

/**
 * latestStochRSI from its RSI series (wilderRsi's values from index `rsiPeriod` on; entries below
 * are never read), once the closes passed its checks: kept apart so that the host can hand it the
 * RSI series it computed for getLatestRSI of the same closes, which is the same array to the bit.
 */
export function stochRSIOfRsi(rsi: ArrayLike<number>, rsiPeriod: number, stochPeriod: number, kPeriod: number, dPeriod: number): { k: number; d: number } | null {
  const length = rsi.length;
  const firstRaw = rsiPeriod + stochPeriod - 1;
  const raw = (at: number): number => {
    let highest = -Infinity;
    let lowest = Infinity;
    for (let m = at - stochPeriod + 1; m <= at; m++) {
      const value = rsi[m]!;
      if (value > highest) highest = value;
      if (value < lowest) lowest = value;
    }
    return highest === lowest ? 50 : ((rsi[at]! - lowest) / (highest - lowest)) * 100;
  };
  const kAt = (at: number): number => {
    let sum = 0;
    for (let j = at - kPeriod + 1; j <= at; j++) sum += raw(j);
    return sum / kPeriod;
  };
  // Before this index %K or %D is missing, and the web app's entry is { k: 0, d: 0 }.
  const firstEntry = firstRaw + kPeriod - 1 + dPeriod - 1;
  for (let i = length - 1; i >= firstEntry; i--) {
    let sum = 0;
    for (let j = i - dPeriod + 1; j <= i; j++) sum += kAt(j);
    const k = kAt(i);
    const d = sum / dPeriod;
    if (k !== 0 || d !== 0) return { k, d };
  }
  return null;
}

/** A candle's true range: its own range, or further to the previous close when it gapped. */
export function trueRange(high: number, low: number, previousClose: number): number {
  return Math.max(high - low, Math.abs(high - previousClose), Math.abs(low - previousClose));
}

/** The web app's "ADX" from the sums over the last `period` candles: mean true range over mean close, × 1000, clamped to 0–100. */
export function volatilityIndex(trueRangeSum: number, closeSum: number, period: number): number {
  const atr = trueRangeSum / period;
  const avgClose = closeSum / period;
  const value = (atr / avgClose) * 1000;
  // Guard: 0 / 0 (a zero range over zero closes) is NaN in the web app.
  if (Number.isNaN(value)) return 0;
  return Math.min(100, Math.max(0, value));
}

/**
 * The first candle of an anchored VWAP window over `length` candles: the last `anchorPeriod`
 * (floored) of them, or all of them when it is omitted, not positive or not shorter than the series.
 */
export function anchorStart(anchorPeriod: number | undefined, length: number): number {
  return anchorPeriod && anchorPeriod > 0 && anchorPeriod < length ? length - Math.floor(anchorPeriod) : 0;
}

/** True when every value is a number (no NaN: closeColumn's stand-in for null). */
export function allReadable(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (values[i] !== values[i]) return false;
  return true;
}

/** calculateHighVolumeNodes's options with its defaults: a bin count and a lookback must be positive integers, the rest numbers. */
export function hvnSettings(options: HVNOptions | null | undefined): { bins: number; threshold: number; lookback: number; minStrength: number; peakTolerance: number } {
  const settings = options || {};
  const bins = isValidPeriod(settings.bins) ? settings.bins! : 30;
  const threshold = typeof settings.threshold === 'number' ? settings.threshold : 70;
  const lookback = isValidPeriod(settings.lookback) ? settings.lookback! : 250;
  const minStrength = typeof settings.minStrength === 'number' ? settings.minStrength : 50;
  const peakTolerance = typeof settings.peakTolerance === 'number' ? settings.peakTolerance : 0.05;
  return { bins, threshold, lookback, minStrength, peakTolerance };
}

/** One readable candle's volume (and taker-buy volume, when readable) spread evenly over the price bins its body and wicks span. */
export function spreadVolume(
  volumeByBin: number[],
  buyByBin: number[],
  minPrice: number,
  binSize: number,
  open: number,
  high: number,
  low: number,
  close: number,
  volume: number,
  buyVolume: number,
): void {
  const bins = volumeByBin.length;
  const firstBin = Math.floor((Math.min(open, close, low) - minPrice) / binSize);
  const lastBin = Math.floor((Math.max(open, close, high) - minPrice) / binSize);
  const spanned = Math.max(1, lastBin - firstBin + 1);
  // The same share for every bin the candle spans (computed once: the same quotient each time).
  const share = volume / spanned;
  const buyShare = Number.isFinite(buyVolume) ? buyVolume / spanned : 0;
  for (let bin = Math.max(0, firstBin); bin <= Math.min(bins - 1, lastBin); bin++) {
    volumeByBin[bin] += share;
    buyByBin[bin] += buyShare;
  }
}

/** The nodes of filled bins: peaks above the `threshold` percentile that beat both neighbours by `peakTolerance` and reach `minStrength` % of the biggest bin; strongest first. */
export function volumeNodes(
  volumeByBin: number[],
  buyByBin: number[],
  minPrice: number,
  binSize: number,
  threshold: number,
  minStrength: number,
  peakTolerance: number,
): VolumeNode[] {
  const bins = volumeByBin.length;
  // The bins in ascending order: Float64Array's sort orders numbers as the comparator a - b does, except NaN
  // (which the comparator leaves anywhere: then the comparator's own order) and the sign of a zero (which `|| 0` drops).
  const sorted: ArrayLike<number> = allReadable(volumeByBin) ? new Float64Array(volumeByBin).sort() : volumeByBin.slice().sort((a, b) => a - b);
  const volumeThreshold = sorted[Math.floor((threshold / 100) * sorted.length)] || 0;
  let maxVolume = 0;
  for (const volume of volumeByBin) if (volume > maxVolume) maxVolume = volume;
  const nodes: VolumeNode[] = [];
  for (let bin = 0; bin < bins; bin++) {
    const volume = volumeByBin[bin]!;
    if (volume < volumeThreshold || volume <= 0) continue;
    const previous = bin > 0 ? volumeByBin[bin - 1]! : 0;
    const next = bin < bins - 1 ? volumeByBin[bin + 1]! : 0;
    if (!(volume > previous * (1 + peakTolerance) && volume > next * (1 + peakTolerance))) continue;
    const strength = maxVolume > 0 ? (volume / maxVolume) * 100 : 0;
    if (strength < minStrength) continue;
    const low = minPrice + bin * binSize;
    const high = low + binSize;
    nodes.push({ price: (low + high) / 2, volume, buyVolume: buyByBin[bin]!, sellVolume: volume - buyByBin[bin]!, strength, priceRange: [low, high] });
  }
  nodes.sort((a, b) => b.strength - a.strength);
  return nodes;
}

export const INTERNAL_FUNCTIONS = [
  toNumber,
  isValidPeriod,
  closesOf,
  lastNonNull,
  nullSeries,
  emaOfSeries,
  emaInto,
  macdOfEmas,
  latestEma,
  latestBollingerBands,
  smaOfSeries,
  closeColumn,
  wilderRsi,
  latestStochRSI,
  stochRSIOfRsi,
  allReadable,
  trueRange,
  volatilityIndex,
  anchorStart,
  hvnSettings,
  spreadVolume,
  volumeNodes,
];
