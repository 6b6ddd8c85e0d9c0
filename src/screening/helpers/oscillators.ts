// RSI, StochRSI and the stochastic oscillator. Functions named `…Textbook` are the opt-in 'textbook' definitions (see library.ts).
import { allReadable, closeColumn, closesOf, isValidPeriod, lastNonNull, latestStochRSI, nullSeries, smaOfSeries, toNumber, wilderRsi } from './internal.ts';
import type { Kline, Series } from './types.ts';

/**
 * Wilder's RSI of closes at every candle (null for the first `period`), or null when fewer than
 * period + 1 klines. Seeded with the mean gain and loss of the first `period` changes. Same as the web app.
 */
export function calculateRSI(klines: ArrayLike<Kline>, period: number = 14): Series | null {
  if (!klines || !isValidPeriod(period) || klines.length < period + 1) return null;
  const closes = closesOf(klines);
  for (let i = 0; i < closes.length; i++) if (closes[i] === null) return null;
  const out = nullSeries(closes.length);
  wilderRsi(closes as number[], period, out);
  return out;
}

/**
 * The latest RSI, or null: calculateRSI's last value by the same arithmetic, without its two arrays
 * of boxed numbers (the screener asks for the latest RSI of every symbol on every tick).
 */
export function getLatestRSI(klines: ArrayLike<Kline>, period: number = 14): number | null {
  if (!klines || !isValidPeriod(period) || klines.length < period + 1) return null;
  const closes = closeColumn(klines);
  if (!allReadable(closes)) return null;
  return wilderRsi(closes, period, null);
}

/**
 * Web app: an array as long as klines of { k, d }, or null when the RSI series is too short (fewer
 * than stochPeriod + kPeriod − 1 entries, or fewer than stochPeriod non-null values). Raw StochRSI
 * over the last `stochPeriod` non-null RSIs (50 when they are all equal), %K = mean of `kPeriod`
 * raws, %D = mean of `dPeriod` %Ks; { k: 0, d: 0 } wherever %K or %D is missing.
 */
export function calculateStochRSI(
  klines: ArrayLike<Kline>,
  rsiPeriod: number = 14,
  stochPeriod: number = 14,
  kPeriod: number = 3,
  dPeriod: number = 3,
): Array<{ k: number; d: number }> | null {
  // Guard: the web app fails on such periods in its own ways (NaN, throws); here they are "not calculable".
  if (!isValidPeriod(stochPeriod) || !isValidPeriod(kPeriod) || !isValidPeriod(dPeriod)) return null;
  const rsi = calculateRSI(klines, rsiPeriod);
  if (!rsi || rsi.length < stochPeriod + kPeriod - 1) return null;
  const positions: number[] = [];
  for (let i = 0; i < rsi.length; i++) if (rsi[i] !== null) positions.push(i);
  if (positions.length < stochPeriod) return null;
  const raw = nullSeries(rsi.length);
  for (let n = stochPeriod - 1; n < positions.length; n++) {
    let highest = -Infinity;
    let lowest = Infinity;
    for (let m = n - stochPeriod + 1; m <= n; m++) {
      const value = rsi[positions[m]!]!;
      if (value > highest) highest = value;
      if (value < lowest) lowest = value;
    }
    const current = rsi[positions[n]!]!;
    raw[positions[n]!] = highest === lowest ? 50 : ((current - lowest) / (highest - lowest)) * 100;
  }
  const k = smaOfSeries(raw, kPeriod);
  const d = smaOfSeries(k, dPeriod);
  const out: Array<{ k: number; d: number }> = new Array(rsi.length);
  for (let i = 0; i < rsi.length; i++) out[i] = k[i] !== null && d[i] !== null ? { k: k[i]!, d: d[i]! } : { k: 0, d: 0 };
  return out;
}

/** Web app: the last { k, d } of calculateStochRSI whose k or d is non-zero; null when there is none. */
export function getLatestStochRSI(
  klines: ArrayLike<Kline>,
  rsiPeriod: number = 14,
  stochPeriod: number = 14,
  kPeriod: number = 3,
  dPeriod: number = 3,
): { k: number; d: number } | null {
  if (!isValidPeriod(stochPeriod) || !isValidPeriod(kPeriod) || !isValidPeriod(dPeriod)) return null;
  if (!klines || !isValidPeriod(rsiPeriod) || klines.length < rsiPeriod + 1) return null;
  return latestStochRSI(closeColumn(klines), rsiPeriod, stochPeriod, kPeriod, dPeriod);
}

/**
 * Textbook: Stochastic RSI per candle as `{ k: [...], d: [...] }`: raw = (RSI − min) / (max − min)
 * × 100 over `stochPeriod` RSIs (0 when flat), %K = SMA(raw, kPeriod), %D = SMA(%K, dPeriod);
 * series as long as klines, null-padded. Null when the klines cannot produce a single %D.
 */
export function calculateStochRSITextbook(
  klines: ArrayLike<Kline>,
  rsiPeriod: number = 14,
  stochPeriod: number = 14,
  kPeriod: number = 3,
  dPeriod: number = 3,
): { k: Series; d: Series } | null {
  if (!isValidPeriod(stochPeriod) || !isValidPeriod(kPeriod) || !isValidPeriod(dPeriod)) return null;
  if (!klines || klines.length < rsiPeriod + stochPeriod + kPeriod + dPeriod - 2) return null;
  const rsi = calculateRSI(klines, rsiPeriod);
  if (!rsi) return null;
  const length = rsi.length;
  const raw = nullSeries(length);
  for (let i = rsiPeriod + stochPeriod - 1; i < length; i++) {
    let highest = -Infinity;
    let lowest = Infinity;
    for (let j = i - stochPeriod + 1; j <= i; j++) {
      if (rsi[j]! > highest) highest = rsi[j]!;
      if (rsi[j]! < lowest) lowest = rsi[j]!;
    }
    raw[i] = highest === lowest ? 0 : ((rsi[i]! - lowest) / (highest - lowest)) * 100;
  }
  const k = smaOfSeries(raw, kPeriod);
  const d = smaOfSeries(k, dPeriod);
  return { k, d };
}

/** Textbook: the latest { k, d } of the textbook StochRSI, or null. */
export function getLatestStochRSITextbook(
  klines: ArrayLike<Kline>,
  rsiPeriod: number = 14,
  stochPeriod: number = 14,
  kPeriod: number = 3,
  dPeriod: number = 3,
): { k: number; d: number } | null {
  const stoch = calculateStochRSITextbook(klines, rsiPeriod, stochPeriod, kPeriod, dPeriod);
  if (!stoch) return null;
  const k = lastNonNull(stoch.k);
  const d = lastNonNull(stoch.d);
  return k === null || d === null ? null : { k, d };
}

/**
 * Web app: fast %K of the last close within the last `kPeriod` candles' range (50 when the range
 * is flat) and d = 0.9 × k; { k: 0, d: 0 } when fewer than `kPeriod` klines. `dPeriod` and
 * `smooth` are accepted and ignored, as in the web app.
 */
export function calculateStochastic(
  klines: ArrayLike<Kline>,
  kPeriod: number = 14,
  _dPeriod: number = 3,
  _smooth: number = 3,
): { k: number; d: number } {
  if (!klines || !isValidPeriod(kPeriod) || klines.length < kPeriod) return { k: 0, d: 0 };
  let highest = -Infinity;
  let lowest = Infinity;
  for (let i = klines.length - kPeriod; i < klines.length; i++) {
    const high = toNumber(klines[i]![2]);
    const low = toNumber(klines[i]![3]);
    // Guard: an unreadable field would make the web app's result NaN.
    if (!Number.isFinite(high) || !Number.isFinite(low)) return { k: 0, d: 0 };
    if (high > highest) highest = high;
    if (low < lowest) lowest = low;
  }
  const close = toNumber(klines[klines.length - 1]![4]);
  if (!Number.isFinite(close)) return { k: 0, d: 0 };
  const k = highest === lowest ? 50 : ((close - lowest) / (highest - lowest)) * 100;
  return { k, d: k * 0.9 };
}

/**
 * Textbook: slow stochastic (latest): raw %K over `kPeriod`, %K = SMA(raw, smooth), %D =
 * SMA(%K, dPeriod). Null until enough klines.
 */
export function calculateStochasticTextbook(
  klines: ArrayLike<Kline>,
  kPeriod: number = 14,
  dPeriod: number = 3,
  smooth: number = 3,
): { k: number; d: number } | null {
  if (!klines || !isValidPeriod(kPeriod) || !isValidPeriod(dPeriod) || !isValidPeriod(smooth)) return null;
  const needed = kPeriod + smooth + dPeriod - 2;
  if (klines.length < needed) return null;
  const raw: number[] = [];
  for (let i = klines.length - (smooth + dPeriod - 1); i < klines.length; i++) {
    let highest = -Infinity;
    let lowest = Infinity;
    for (let j = i - kPeriod + 1; j <= i; j++) {
      const high = toNumber(klines[j]![2]);
      const low = toNumber(klines[j]![3]);
      if (!Number.isFinite(high) || !Number.isFinite(low)) return null;
      if (high > highest) highest = high;
      if (low < lowest) lowest = low;
    }
    const close = toNumber(klines[i]![4]);
    if (!Number.isFinite(close)) return null;
    raw.push(highest === lowest ? 50 : ((close - lowest) / (highest - lowest)) * 100);
  }
  const smoothed: number[] = [];
  for (let i = smooth - 1; i < raw.length; i++) {
    let sum = 0;
    for (let j = i - smooth + 1; j <= i; j++) sum += raw[j]!;
    smoothed.push(sum / smooth);
  }
  let dSum = 0;
  for (const value of smoothed) dSum += value;
  return { k: smoothed[smoothed.length - 1]!, d: dSum / dPeriod };
}
