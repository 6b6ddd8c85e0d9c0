// ADX, channel extremes and Bollinger Bands. Functions named `…Textbook` are the opt-in 'textbook' definitions (see library.ts).
import { closeColumn, closesOf, isValidPeriod, latestBollingerBands, nullSeries, toNumber, trueRange, volatilityIndex } from './internal.ts';
import { calculateMASeries } from './moving.ts';
import type { Kline, Series } from './types.ts';

/**
 * Web app: not Wilder's ADX but a volatility reading under that name: the mean true range of the
 * last `period` candles over their mean close, × 1000, clamped to 0–100. 0 when fewer than
 * 2 × period klines.
 */
export function calculateADX(klines: ArrayLike<Kline>, period: number = 14): number {
  if (!klines || !isValidPeriod(period) || klines.length < 2 * period) return 0;
  let trSum = 0;
  let closeSum = 0;
  for (let i = klines.length - period; i < klines.length; i++) {
    const high = toNumber(klines[i]![2]);
    const low = toNumber(klines[i]![3]);
    const close = toNumber(klines[i]![4]);
    const previousClose = toNumber(klines[i - 1]![4]);
    // Guard: an unreadable field would make the web app's result NaN.
    if (![high, low, close, previousClose].every(Number.isFinite)) return 0;
    trSum += trueRange(high, low, previousClose);
    closeSum += close;
  }
  return volatilityIndex(trSum, closeSum, period);
}

/** Textbook: Wilder's Average Directional Index (latest value, 0–100). Needs 2 × period klines; null before. */
export function calculateADXTextbook(klines: ArrayLike<Kline>, period: number = 14): number | null {
  if (!klines || !isValidPeriod(period) || klines.length < 2 * period) return null;
  let trSum = 0;
  let plusSum = 0;
  let minusSum = 0;
  let dxSum = 0;
  let adx: number | null = null;
  for (let i = 1; i < klines.length; i++) {
    const high = toNumber(klines[i]![2]);
    const low = toNumber(klines[i]![3]);
    const previousHigh = toNumber(klines[i - 1]![2]);
    const previousLow = toNumber(klines[i - 1]![3]);
    const previousClose = toNumber(klines[i - 1]![4]);
    if (![high, low, previousHigh, previousLow, previousClose].every(Number.isFinite)) return null;
    const tr = trueRange(high, low, previousClose);
    const up = high - previousHigh;
    const down = previousLow - low;
    const plusDM = up > down && up > 0 ? up : 0;
    const minusDM = down > up && down > 0 ? down : 0;
    if (i <= period) {
      trSum += tr;
      plusSum += plusDM;
      minusSum += minusDM;
      if (i < period) continue;
    } else {
      trSum = trSum - trSum / period + tr;
      plusSum = plusSum - plusSum / period + plusDM;
      minusSum = minusSum - minusSum / period + minusDM;
    }
    const plusDI = trSum === 0 ? 0 : (100 * plusSum) / trSum;
    const minusDI = trSum === 0 ? 0 : (100 * minusSum) / trSum;
    const diSum = plusDI + minusDI;
    const dx = diSum === 0 ? 0 : (100 * Math.abs(plusDI - minusDI)) / diSum;
    const dxIndex = i - period; // 0 for the first DX
    if (dxIndex < period) {
      dxSum += dx;
      if (dxIndex === period - 1) adx = dxSum / period;
    } else {
      adx = (adx! * (period - 1) + dx) / period;
    }
  }
  return adx;
}

/** Highest high (field 2) of the last `period` klines, or null. */
export function getHighestHigh(klines: ArrayLike<Kline>, period: number): number | null {
  if (!klines || !isValidPeriod(period) || klines.length < period) return null;
  let highest = -Infinity;
  for (let i = klines.length - period; i < klines.length; i++) {
    const high = toNumber(klines[i]![2]);
    if (!Number.isFinite(high)) return null;
    if (high > highest) highest = high;
  }
  return highest;
}

/** Lowest low (field 3) of the last `period` klines, or null. */
export function getLowestLow(klines: ArrayLike<Kline>, period: number): number | null {
  if (!klines || !isValidPeriod(period) || klines.length < period) return null;
  let lowest = Infinity;
  for (let i = klines.length - period; i < klines.length; i++) {
    const low = toNumber(klines[i]![3]);
    if (!Number.isFinite(low)) return null;
    if (low < lowest) lowest = low;
  }
  return lowest;
}

/** Bollinger Bands per candle: SMA(period) ± stdDev × population standard deviation. */
export function calculateBollingerBands(
  klines: ArrayLike<Kline>,
  period: number = 20,
  stdDev: number = 2,
): { upper: Series; middle: Series; lower: Series } {
  const length = klines ? klines.length : 0;
  const upper = nullSeries(length);
  const lower = nullSeries(length);
  if (!isValidPeriod(period) || length < period) return { upper, middle: nullSeries(length), lower };
  const closes = closesOf(klines);
  const middle = calculateMASeries(klines, period);
  for (let i = period - 1; i < length; i++) {
    const mean = middle[i];
    if (mean === null || mean === undefined) continue;
    let squares = 0;
    for (let j = i - period + 1; j <= i; j++) squares += (closes[j]! - mean) * (closes[j]! - mean);
    const deviation = Math.sqrt(squares / period);
    upper[i] = mean + stdDev * deviation;
    lower[i] = mean - stdDev * deviation;
  }
  return { upper, middle, lower };
}

/** The latest { upper, middle, lower }; each null when not calculable. */
export function getLatestBollingerBands(
  klines: ArrayLike<Kline>,
  period: number = 20,
  stdDev: number = 2,
): { upper: number | null; middle: number | null; lower: number | null } {
  const length = klines ? klines.length : 0;
  if (!isValidPeriod(period) || length < period) return { upper: null, middle: null, lower: null };
  return latestBollingerBands(closeColumn(klines), period, stdDev);
}
