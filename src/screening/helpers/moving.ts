// Moving averages and MACD. Functions named `…Textbook` are the opt-in 'textbook' definitions (see library.ts).
import { closeColumn, closesOf, emaOfSeries, isValidPeriod, lastNonNull, latestEma, macdOfEmas, nullSeries, smaOfSeries, toNumber } from './internal.ts';
import type { Kline, Series } from './types.ts';

/** Simple moving average of the last `period` closes, or null. Same as the web app. */
export function calculateMA(klines: ArrayLike<Kline>, period: number): number | null {
  if (!klines || !isValidPeriod(period) || klines.length < period) return null;
  let sum = 0;
  for (let i = klines.length - period; i < klines.length; i++) {
    const close = toNumber(klines[i]![4]);
    if (!Number.isFinite(close)) return null;
    sum += close;
  }
  return sum / period;
}

/** SMA of closes at every candle; null until `period` candles exist. Same length as klines. */
export function calculateMASeries(klines: ArrayLike<Kline>, period: number): Series {
  const length = klines ? klines.length : 0;
  if (!isValidPeriod(period) || length < period) return nullSeries(length);
  return smaOfSeries(closesOf(klines), period);
}

/** Web app: SMA of the last `period` numbers; 0 when values are missing or short, or the period is not a positive integer. */
export function calculateSMA(values: ArrayLike<number>, period: number): number {
  if (!values || !isValidPeriod(period) || values.length < period) return 0;
  let sum = 0;
  for (let i = values.length - period; i < values.length; i++) {
    const value = toNumber(values[i]);
    // Guard: the web app would return NaN; 0 is its own "no value".
    if (!Number.isFinite(value)) return 0;
    sum += value;
  }
  return sum / period;
}

/** Textbook: SMA of the last `period` numbers, or null when it cannot be computed. */
export function calculateSMATextbook(values: ArrayLike<number>, period: number): number | null {
  if (!values || !isValidPeriod(period) || values.length < period) return null;
  let sum = 0;
  for (let i = values.length - period; i < values.length; i++) {
    const value = toNumber(values[i]);
    if (!Number.isFinite(value)) return null;
    sum += value;
  }
  return sum / period;
}

/** Mean volume (field 5) of the last `period` klines, or null. */
export function calculateAvgVolume(klines: ArrayLike<Kline>, period: number): number | null {
  if (!klines || !isValidPeriod(period) || klines.length < period) return null;
  let sum = 0;
  for (let i = klines.length - period; i < klines.length; i++) {
    const volume = toNumber(klines[i]![5]);
    if (!Number.isFinite(volume)) return null;
    sum += volume;
  }
  return sum / period;
}

/** EMA of closes at every candle, seeded with the SMA of the first `period` closes. */
export function calculateEMASeries(klines: ArrayLike<Kline>, period: number): Series {
  if (!klines) return [];
  // closeColumn: closesOf's numbers unboxed, NaN where it has null (emaOfSeries reads both as a gap).
  return emaOfSeries(closeColumn(klines), period);
}

/** The latest EMA of closes, or null. */
export function getLatestEMA(klines: ArrayLike<Kline>, period: number): number | null {
  if (!klines) return null;
  return latestEma(closeColumn(klines), period);
}

/** Web app: EMA of plain numbers seeded with the FIRST value and run over the whole array; 0 when short. */
export function calculateEMA(values: ArrayLike<number>, period: number): number {
  if (!values || !isValidPeriod(period) || values.length < period) return 0;
  const k = 2 / (period + 1);
  let ema = toNumber(values[0]);
  for (let i = 1; i < values.length; i++) ema = toNumber(values[i]) * k + ema * (1 - k);
  // Guard: an unreadable value would make the web app's result NaN.
  return Number.isFinite(ema) ? ema : 0;
}

/** Textbook: the same first-value-seeded EMA, or null when short. */
export function calculateEMATextbook(values: ArrayLike<number>, period: number): number | null {
  if (!values || !isValidPeriod(period) || values.length < period) return null;
  const k = 2 / (period + 1);
  let ema = toNumber(values[0]);
  for (let i = 1; i < values.length; i++) ema = toNumber(values[i]) * k + ema * (1 - k);
  return Number.isFinite(ema) ? ema : null;
}

/** MACD line (EMA short − EMA long of closes), signal (EMA of MACD), histogram, each per candle. */
export function calculateMACDValues(
  klines: ArrayLike<Kline>,
  shortPeriod: number = 12,
  longPeriod: number = 26,
  signalPeriod: number = 9,
): { macdLine: Series; signalLine: Series; histogram: Series } {
  const length = klines ? klines.length : 0;
  const macdLine = nullSeries(length);
  const histogram = nullSeries(length);
  if (length < Math.max(shortPeriod, longPeriod, signalPeriod)) return { macdLine, signalLine: nullSeries(length), histogram };
  return macdOfEmas(calculateEMASeries(klines, shortPeriod), calculateEMASeries(klines, longPeriod), signalPeriod, macdLine, histogram);
}

/** The latest { macd, signal, histogram } of calculateMACDValues; each null when not calculable. */
export function getLatestMACD(
  klines: ArrayLike<Kline>,
  shortPeriod: number = 12,
  longPeriod: number = 26,
  signalPeriod: number = 9,
): { macd: number | null; signal: number | null; histogram: number | null } {
  const values = calculateMACDValues(klines, shortPeriod, longPeriod, signalPeriod);
  return { macd: lastNonNull(values.macdLine), signal: lastNonNull(values.signalLine), histogram: lastNonNull(values.histogram) };
}

/**
 * Web app: MACD of plain closes with first-value-seeded EMAs: MACD = EMA(short) − EMA(long) of all
 * closes; signal = calculateEMA(signal) of the MACD values from index longPeriod − 1 on (so 0 while
 * there are fewer than `signal` of them). All zeros when fewer than `longPeriod` closes, so
 * `.histogram` never throws.
 */
export function calculateMACD(
  closes: ArrayLike<number>,
  shortPeriod: number = 12,
  longPeriod: number = 26,
  signalPeriod: number = 9,
): { MACD: number; signal: number; histogram: number } {
  const zeros = { MACD: 0, signal: 0, histogram: 0 };
  if (!closes || !isValidPeriod(shortPeriod) || !isValidPeriod(longPeriod) || !isValidPeriod(signalPeriod)) return zeros;
  if (closes.length < longPeriod) return zeros;
  // Running EMAs over growing prefixes equal calculateEMA of each prefix (0 below its period), in one pass.
  const kShort = 2 / (shortPeriod + 1);
  const kLong = 2 / (longPeriod + 1);
  let emaShort = toNumber(closes[0]);
  let emaLong = emaShort;
  const macdValues: number[] = [];
  for (let i = 0; i < closes.length; i++) {
    if (i > 0) {
      const close = toNumber(closes[i]);
      emaShort = close * kShort + emaShort * (1 - kShort);
      emaLong = close * kLong + emaLong * (1 - kLong);
    }
    if (i >= longPeriod - 1) macdValues.push((i + 1 >= shortPeriod ? emaShort : 0) - emaLong);
  }
  const macd = macdValues[macdValues.length - 1]!;
  // Guard: an unreadable close would make the web app's result NaN.
  if (!Number.isFinite(macd)) return zeros;
  const signal = calculateEMA(macdValues, signalPeriod);
  return { MACD: macd, signal, histogram: macd - signal };
}

/** Textbook: the same MACD, but null when fewer than `longPeriod` closes or than `signal` MACD values. */
export function calculateMACDTextbook(
  closes: ArrayLike<number>,
  shortPeriod: number = 12,
  longPeriod: number = 26,
  signalPeriod: number = 9,
): { MACD: number; signal: number; histogram: number } | null {
  if (!closes || !isValidPeriod(shortPeriod) || !isValidPeriod(longPeriod) || !isValidPeriod(signalPeriod)) return null;
  if (closes.length < longPeriod) return null;
  const kShort = 2 / (shortPeriod + 1);
  const kLong = 2 / (longPeriod + 1);
  let emaShort = toNumber(closes[0]);
  let emaLong = emaShort;
  const macdValues: number[] = [];
  for (let i = 0; i < closes.length; i++) {
    if (i > 0) {
      const close = toNumber(closes[i]);
      emaShort = close * kShort + emaShort * (1 - kShort);
      emaLong = close * kLong + emaLong * (1 - kLong);
    }
    if (i >= longPeriod - 1) macdValues.push((i + 1 >= shortPeriod ? emaShort : 0) - emaLong);
  }
  const macd = macdValues[macdValues.length - 1]!;
  const signal = calculateEMATextbook(macdValues, signalPeriod);
  if (signal === null || !Number.isFinite(macd)) return null;
  return { MACD: macd, signal, histogram: macd - signal };
}
