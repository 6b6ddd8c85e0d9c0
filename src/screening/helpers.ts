// The indicator library filters call as `helpers.*`: the web app's names, argument orders and return shapes, in one source for Node and the isolates.
//
// Every function here is self-contained plain JavaScript once types are stripped: it may call the
// other functions of HELPER_FUNCTIONS by name and nothing else (no imports, no module state). That
// lets `helpersSource()` rebuild the library inside an isolate from `Function.prototype.toString`,
// so the sandboxed filters and the unsandboxed reference run exactly the same code.
// Insufficient data yields null (or a null-padded series), never a throw and never NaN.

/** Bumped whenever a helper's result can change; recorded in signal provenance. */
export const HELPERS_VERSION = '2026.11.24-1';

/** Binance's 12-field kline; values are numbers here, strings in the browser (both are accepted). */
export type Kline = ArrayLike<number | string>;
export type Series = Array<number | null>;

export interface VolumeNode {
  price: number;
  volume: number;
  buyVolume: number;
  sellVolume: number;
  strength: number;
  priceRange: [number, number];
}

export interface HVNOptions {
  bins?: number;
  threshold?: number;
  lookback?: number;
  minStrength?: number;
  peakTolerance?: number;
  cacheKey?: string;
}

/** A kline field as a number, accepting the browser's strings; NaN when unreadable. */
function toNumber(value: unknown): number {
  return typeof value === 'number' ? value : parseFloat(value as string);
}

function isValidPeriod(period: unknown): boolean {
  return typeof period === 'number' && Number.isInteger(period) && period > 0;
}

function closesOf(klines: ArrayLike<Kline>): Series {
  const closes: Series = new Array(klines.length);
  for (let i = 0; i < klines.length; i++) {
    const close = toNumber(klines[i]![4]);
    closes[i] = Number.isFinite(close) ? close : null;
  }
  return closes;
}

function lastNonNull(series: Series | null): number | null {
  if (!series) return null;
  for (let i = series.length - 1; i >= 0; i--) if (series[i] !== null) return series[i]!;
  return null;
}

function nullSeries(length: number): Series {
  return new Array(length).fill(null);
}

/** Simple moving average of the last `period` closes, or null. */
function calculateMA(klines: ArrayLike<Kline>, period: number): number | null {
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
function calculateMASeries(klines: ArrayLike<Kline>, period: number): Series {
  const length = klines ? klines.length : 0;
  const out = nullSeries(length);
  if (!isValidPeriod(period) || length < period) return out;
  const closes = closesOf(klines);
  for (let i = period - 1; i < length; i++) {
    let sum = 0;
    let valid = true;
    for (let j = i - period + 1; j <= i; j++) {
      if (closes[j] === null) {
        valid = false;
        break;
      }
      sum += closes[j]!;
    }
    out[i] = valid ? sum / period : null;
  }
  return out;
}

/** SMA of the last `period` numbers. The web app returned 0 when short; this returns null. */
function calculateSMA(values: ArrayLike<number>, period: number): number | null {
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
function calculateAvgVolume(klines: ArrayLike<Kline>, period: number): number | null {
  if (!klines || !isValidPeriod(period) || klines.length < period) return null;
  let sum = 0;
  for (let i = klines.length - period; i < klines.length; i++) {
    const volume = toNumber(klines[i]![5]);
    if (!Number.isFinite(volume)) return null;
    sum += volume;
  }
  return sum / period;
}

/**
 * Wilder's RSI of closes at every candle (null for the first `period`), or null when fewer than
 * period + 1 klines. Seeded with the mean gain and loss of the first `period` changes.
 */
function calculateRSI(klines: ArrayLike<Kline>, period: number = 14): Series | null {
  if (!klines || !isValidPeriod(period) || klines.length < period + 1) return null;
  const closes = closesOf(klines);
  for (let i = 0; i < closes.length; i++) if (closes[i] === null) return null;
  const out = nullSeries(closes.length);
  let gains = 0;
  let losses = 0;
  for (let i = 1; i <= period; i++) {
    const change = closes[i]! - closes[i - 1]!;
    if (change > 0) gains += change;
    else losses -= change;
  }
  let avgGain = gains / period;
  let avgLoss = losses / period;
  out[period] = avgLoss === 0 ? (avgGain > 0 ? 100 : 50) : 100 - 100 / (1 + avgGain / avgLoss);
  for (let i = period + 1; i < closes.length; i++) {
    const change = closes[i]! - closes[i - 1]!;
    avgGain = (avgGain * (period - 1) + (change > 0 ? change : 0)) / period;
    avgLoss = (avgLoss * (period - 1) + (change < 0 ? -change : 0)) / period;
    out[i] = avgLoss === 0 ? (avgGain > 0 ? 100 : 50) : 100 - 100 / (1 + avgGain / avgLoss);
  }
  return out;
}

/** The latest RSI, or null. */
function getLatestRSI(klines: ArrayLike<Kline>, period: number = 14): number | null {
  return lastNonNull(calculateRSI(klines, period));
}

/**
 * Regular divergence between a price series and an indicator series over the last
 * `lookbackCandles`: price lower low with indicator higher low → 'bullish_regular'; price higher
 * high with indicator lower high → 'bearish_regular'; the most recent pair of extremes at least
 * `minPeakValleySeparation` candles apart wins, bullish checked first.
 */
function detectGenericDivergence(
  series1: ArrayLike<number | null>,
  series2: ArrayLike<number | null>,
  lookbackCandles: number = 30,
  minPeakValleySeparation: number = 5,
): 'bullish_regular' | 'bearish_regular' | null {
  if (!series1 || !series2 || series1.length !== series2.length) return null;
  if (series1.length < Math.max(lookbackCandles, minPeakValleySeparation * 2 + 2)) return null;
  const lookback = Math.min(lookbackCandles, series1.length);
  const start = series1.length - lookback;
  const valleys: Array<[number, number, number]> = [];
  const peaks: Array<[number, number, number]> = [];
  for (let i = start + 1; i < series1.length - 1; i++) {
    const previous = series1[i - 1];
    const current = series1[i];
    const next = series1[i + 1];
    const indicator = series2[i];
    if (previous == null || current == null || next == null || indicator == null) continue;
    if (current < previous && current < next) valleys.push([i, current, indicator]);
    if (current > previous && current > next) peaks.push([i, current, indicator]);
  }
  for (let recent = valleys.length - 1; recent >= 0; recent--) {
    for (let older = recent - 1; older >= 0; older--) {
      const a = valleys[older]!;
      const b = valleys[recent]!;
      if (b[0] - a[0] >= minPeakValleySeparation && b[1] < a[1] && b[2] > a[2]) return 'bullish_regular';
    }
  }
  for (let recent = peaks.length - 1; recent >= 0; recent--) {
    for (let older = recent - 1; older >= 0; older--) {
      const a = peaks[older]!;
      const b = peaks[recent]!;
      if (b[0] - a[0] >= minPeakValleySeparation && b[1] > a[1] && b[2] < a[2]) return 'bearish_regular';
    }
  }
  return null;
}

/** detectGenericDivergence of closes against RSI(rsiPeriod). */
function detectRSIDivergence(
  klines: ArrayLike<Kline>,
  rsiPeriod: number = 14,
  lookbackCandles: number = 30,
  minPeakValleySeparation: number = 5,
): 'bullish_regular' | 'bearish_regular' | null {
  if (!klines || klines.length < Math.max(rsiPeriod + 1, lookbackCandles, minPeakValleySeparation * 2 + 2)) return null;
  const rsi = calculateRSI(klines, rsiPeriod);
  if (!rsi) return null;
  return detectGenericDivergence(closesOf(klines), rsi, lookbackCandles, minPeakValleySeparation);
}

/** EMA of a series with nulls: seeded with the SMA of the first `period` consecutive values. */
function emaOfSeries(values: ArrayLike<number | null>, period: number): Series {
  const out = nullSeries(values ? values.length : 0);
  if (!values || !isValidPeriod(period) || values.length < period) return out;
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
  if (start < 0) return out;
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
  return out;
}

/** EMA of closes at every candle, seeded with the SMA of the first `period` closes. */
function calculateEMASeries(klines: ArrayLike<Kline>, period: number): Series {
  if (!klines) return [];
  return emaOfSeries(closesOf(klines), period);
}

/** The latest EMA of closes, or null. */
function getLatestEMA(klines: ArrayLike<Kline>, period: number): number | null {
  return lastNonNull(calculateEMASeries(klines, period));
}

/**
 * EMA of plain numbers seeded with the FIRST value (the web app's semantics, unlike the series
 * helpers). Null when fewer than `period` values (the web app returned 0).
 */
function calculateEMA(values: ArrayLike<number>, period: number): number | null {
  if (!values || !isValidPeriod(period) || values.length < period) return null;
  const k = 2 / (period + 1);
  let ema = toNumber(values[0]);
  for (let i = 1; i < values.length; i++) ema = toNumber(values[i]) * k + ema * (1 - k);
  return Number.isFinite(ema) ? ema : null;
}

/** MACD line (EMA short − EMA long of closes), signal (EMA of MACD), histogram, each per candle. */
function calculateMACDValues(
  klines: ArrayLike<Kline>,
  shortPeriod: number = 12,
  longPeriod: number = 26,
  signalPeriod: number = 9,
): { macdLine: Series; signalLine: Series; histogram: Series } {
  const length = klines ? klines.length : 0;
  const macdLine = nullSeries(length);
  const histogram = nullSeries(length);
  if (length < Math.max(shortPeriod, longPeriod, signalPeriod)) return { macdLine, signalLine: nullSeries(length), histogram };
  const short = calculateEMASeries(klines, shortPeriod);
  const long = calculateEMASeries(klines, longPeriod);
  for (let i = 0; i < length; i++) if (short[i] != null && long[i] != null) macdLine[i] = short[i]! - long[i]!;
  const signalLine = emaOfSeries(macdLine, signalPeriod);
  for (let i = 0; i < length; i++) if (macdLine[i] !== null && signalLine[i] !== null) histogram[i] = macdLine[i]! - signalLine[i]!;
  return { macdLine, signalLine, histogram };
}

/** The latest { macd, signal, histogram } of calculateMACDValues; each null when not calculable. */
function getLatestMACD(
  klines: ArrayLike<Kline>,
  shortPeriod: number = 12,
  longPeriod: number = 26,
  signalPeriod: number = 9,
): { macd: number | null; signal: number | null; histogram: number | null } {
  const values = calculateMACDValues(klines, shortPeriod, longPeriod, signalPeriod);
  return { macd: lastNonNull(values.macdLine), signal: lastNonNull(values.signalLine), histogram: lastNonNull(values.histogram) };
}

/**
 * MACD of plain closes with the web app's first-value-seeded EMAs: MACD = EMA(short) − EMA(long)
 * of all closes; signal = EMA(signal) of the MACD values from index longPeriod − 1 on.
 * Null when fewer than `longPeriod` closes (the web app returned zeros).
 */
function calculateMACD(
  closes: ArrayLike<number>,
  shortPeriod: number = 12,
  longPeriod: number = 26,
  signalPeriod: number = 9,
): { MACD: number; signal: number; histogram: number } | null {
  if (!closes || !isValidPeriod(shortPeriod) || !isValidPeriod(longPeriod) || !isValidPeriod(signalPeriod)) return null;
  if (closes.length < longPeriod) return null;
  // Running EMAs over growing prefixes equal calculateEMA of each prefix, in one pass.
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
  const signal = calculateEMA(macdValues, signalPeriod);
  if (signal === null || !Number.isFinite(macd)) return null;
  return { MACD: macd, signal, histogram: macd - signal };
}

/**
 * Wilder's Average Directional Index (latest value, 0–100). Needs 2 × period klines; null before.
 * The web app shipped a volatility approximation under this name; this is the standard ADX.
 */
function calculateADX(klines: ArrayLike<Kline>, period: number = 14): number | null {
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
    const tr = Math.max(high - low, Math.abs(high - previousClose), Math.abs(low - previousClose));
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

/**
 * Slow stochastic (latest): raw %K over `kPeriod`, %K = SMA(raw, smooth), %D = SMA(%K, dPeriod).
 * Null until enough klines. The web app shipped an approximation (%D = 0.9 × %K) under this name.
 */
function calculateStochastic(
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

/**
 * Stochastic RSI per candle: raw = (RSI − min RSI) / (max − min) × 100 over `stochPeriod` RSIs,
 * %K = SMA(raw, kPeriod), %D = SMA(%K, dPeriod); series as long as klines, null-padded.
 * Null when the klines cannot produce a single %D.
 */
function calculateStochRSI(
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

function smaOfSeries(values: Series, period: number): Series {
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

/** The latest { k, d } of calculateStochRSI, or null. */
function getLatestStochRSI(
  klines: ArrayLike<Kline>,
  rsiPeriod: number = 14,
  stochPeriod: number = 14,
  kPeriod: number = 3,
  dPeriod: number = 3,
): { k: number; d: number } | null {
  const stoch = calculateStochRSI(klines, rsiPeriod, stochPeriod, kPeriod, dPeriod);
  if (!stoch) return null;
  const k = lastNonNull(stoch.k);
  const d = lastNonNull(stoch.d);
  return k === null || d === null ? null : { k, d };
}

/** Highest high (field 2) of the last `period` klines, or null. */
function getHighestHigh(klines: ArrayLike<Kline>, period: number): number | null {
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
function getLowestLow(klines: ArrayLike<Kline>, period: number): number | null {
  if (!klines || !isValidPeriod(period) || klines.length < period) return null;
  let lowest = Infinity;
  for (let i = klines.length - period; i < klines.length; i++) {
    const low = toNumber(klines[i]![3]);
    if (!Number.isFinite(low)) return null;
    if (low < lowest) lowest = low;
  }
  return lowest;
}

/**
 * Engulfing pattern of the candle at length − 2 over the one at length − 3 (the web app's indexes:
 * it assumed a forming candle last; here the last candle is closed, and the indexes are kept so a
 * trader behaves the same in both places).
 */
function detectEngulfingPattern(klines: ArrayLike<Kline>): 'bullish' | 'bearish' | null {
  if (!klines || klines.length < 3) return null;
  const current = klines[klines.length - 2]!;
  const previous = klines[klines.length - 3]!;
  const currentOpen = toNumber(current[1]);
  const currentClose = toNumber(current[4]);
  const previousOpen = toNumber(previous[1]);
  const previousClose = toNumber(previous[4]);
  if (![currentOpen, currentClose, previousOpen, previousClose].every(Number.isFinite)) return null;
  if (previousClose < previousOpen && currentClose > currentOpen && currentOpen < previousClose && currentClose > previousOpen) return 'bullish';
  if (previousClose > previousOpen && currentClose < currentOpen && currentOpen > previousClose && currentClose < previousOpen) return 'bearish';
  return null;
}

/** Positive Volume Index per candle: moves by the close's % change only when volume rose. */
function calculatePVISeries(klines: ArrayLike<Kline>, initialPVI: number = 1000): Series {
  if (!klines || klines.length === 0) return [];
  const out = nullSeries(klines.length);
  out[0] = initialPVI;
  for (let i = 1; i < klines.length; i++) {
    const previous = out[i - 1];
    if (previous === null) continue;
    const close = toNumber(klines[i]![4]);
    const previousClose = toNumber(klines[i - 1]![4]);
    const volume = toNumber(klines[i]![5]);
    const previousVolume = toNumber(klines[i - 1]![5]);
    if (![close, previousClose, volume, previousVolume].every(Number.isFinite)) continue;
    if (volume > previousVolume) {
      if (previousClose === 0) continue;
      const next = previous + ((close - previousClose) / previousClose) * previous;
      out[i] = Number.isFinite(next) ? next : null;
    } else {
      out[i] = previous;
    }
  }
  return out;
}

/** The latest PVI, or null. */
function getLatestPVI(klines: ArrayLike<Kline>, initialPVI: number = 1000): number | null {
  return lastNonNull(calculatePVISeries(klines, initialPVI));
}

/**
 * High-volume nodes of the last `lookback` klines: volume spread evenly over the price bins each
 * candle spans, peaks above the `threshold` percentile that beat both neighbours by
 * `peakTolerance` and reach `minStrength` % of the biggest bin; strongest first.
 * `cacheKey` is accepted and ignored: results are memoized per tick by the screener instead.
 */
function calculateHighVolumeNodes(klines: ArrayLike<Kline>, options: HVNOptions = {}): VolumeNode[] {
  const settings = options || {};
  const bins = isValidPeriod(settings.bins) ? settings.bins! : 30;
  const threshold = typeof settings.threshold === 'number' ? settings.threshold : 70;
  const lookback = isValidPeriod(settings.lookback) ? settings.lookback! : 250;
  const minStrength = typeof settings.minStrength === 'number' ? settings.minStrength : 50;
  const peakTolerance = typeof settings.peakTolerance === 'number' ? settings.peakTolerance : 0.05;
  if (!klines || klines.length === 0) return [];
  const start = Math.max(0, klines.length - lookback);
  let minPrice = Infinity;
  let maxPrice = -Infinity;
  for (let i = start; i < klines.length; i++) {
    const low = toNumber(klines[i]![3]);
    const high = toNumber(klines[i]![2]);
    if (low < minPrice) minPrice = low;
    if (high > maxPrice) maxPrice = high;
  }
  if (!Number.isFinite(minPrice) || !Number.isFinite(maxPrice) || minPrice >= maxPrice) return [];
  const binSize = (maxPrice - minPrice) / bins;
  const volumeByBin: number[] = new Array(bins).fill(0);
  const buyByBin: number[] = new Array(bins).fill(0);
  for (let i = start; i < klines.length; i++) {
    const kline = klines[i]!;
    const open = toNumber(kline[1]);
    const high = toNumber(kline[2]);
    const low = toNumber(kline[3]);
    const close = toNumber(kline[4]);
    const volume = toNumber(kline[5]);
    const buyVolume = toNumber(kline[9]);
    if (![open, high, low, close, volume].every(Number.isFinite)) continue;
    const firstBin = Math.floor((Math.min(open, close, low) - minPrice) / binSize);
    const lastBin = Math.floor((Math.max(open, close, high) - minPrice) / binSize);
    const spanned = Math.max(1, lastBin - firstBin + 1);
    for (let bin = Math.max(0, firstBin); bin <= Math.min(bins - 1, lastBin); bin++) {
      volumeByBin[bin] += volume / spanned;
      buyByBin[bin] += Number.isFinite(buyVolume) ? buyVolume / spanned : 0;
    }
  }
  const sorted = volumeByBin.slice().sort((a, b) => a - b);
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

/** True when a node lies within `tolerance` percent of `price`. */
function isNearHVN(price: number, hvnNodes: VolumeNode[], tolerance: number = 0.5): boolean {
  if (!hvnNodes || hvnNodes.length === 0 || !Number.isFinite(price)) return false;
  const allowed = price * (tolerance / 100);
  for (const node of hvnNodes) if (Math.abs(price - node.price) <= allowed) return true;
  return false;
}

/** The node nearest to `price`, optionally only 'above' or 'below' it; null if none. */
function getClosestHVN(price: number, hvnNodes: VolumeNode[], direction: 'above' | 'below' | 'both' = 'both'): VolumeNode | null {
  if (!hvnNodes || hvnNodes.length === 0 || !Number.isFinite(price)) return null;
  let closest: VolumeNode | null = null;
  let closestDistance = Infinity;
  for (const node of hvnNodes) {
    const distance = node.price - price;
    if (direction === 'above' && distance < 0) continue;
    if (direction === 'below' && distance > 0) continue;
    if (Math.abs(distance) < closestDistance) {
      closestDistance = Math.abs(distance);
      closest = node;
    }
  }
  return closest;
}

/** Number of nodes priced within [priceLow, priceHigh]. */
function countHVNInRange(priceLow: number, priceHigh: number, hvnNodes: VolumeNode[]): number {
  if (!hvnNodes || hvnNodes.length === 0 || !Number.isFinite(priceLow) || !Number.isFinite(priceHigh)) return 0;
  let count = 0;
  for (const node of hvnNodes) if (node.price >= priceLow && node.price <= priceHigh) count++;
  return count;
}

/** Kept for filters written against the web app, whose HVN cache it cleared; nothing to clear here. */
function clearHVNCache(_cacheKey?: string): void {}

/** Bollinger Bands per candle: SMA(period) ± stdDev × population standard deviation. */
function calculateBollingerBands(
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
function getLatestBollingerBands(
  klines: ArrayLike<Kline>,
  period: number = 20,
  stdDev: number = 2,
): { upper: number | null; middle: number | null; lower: number | null } {
  const bands = calculateBollingerBands(klines, period, stdDev);
  for (let i = bands.middle.length - 1; i >= 0; i--) {
    if (bands.upper[i] !== null && bands.middle[i] !== null && bands.lower[i] !== null) {
      return { upper: bands.upper[i]!, middle: bands.middle[i]!, lower: bands.lower[i]! };
    }
  }
  return { upper: null, middle: null, lower: null };
}

/** VWAP of all klines (typical price (H+L+C)/3 weighted by volume), or null without volume. */
function calculateVWAP(klines: ArrayLike<Kline>): number | null {
  return lastNonNull(calculateVWAPSeries(klines));
}

/** Cumulative VWAP per candle over the last `anchorPeriod` klines (all when omitted); null before. */
function calculateVWAPSeries(klines: ArrayLike<Kline>, anchorPeriod?: number): Series {
  if (!klines || klines.length === 0) return [];
  const out = nullSeries(klines.length);
  const start = anchorPeriod && anchorPeriod > 0 && anchorPeriod < klines.length ? klines.length - Math.floor(anchorPeriod) : 0;
  let priceVolume = 0;
  let volumeSum = 0;
  for (let i = start; i < klines.length; i++) {
    const high = toNumber(klines[i]![2]);
    const low = toNumber(klines[i]![3]);
    const close = toNumber(klines[i]![4]);
    const volume = toNumber(klines[i]![5]);
    if (![high, low, close, volume].every(Number.isFinite)) continue;
    priceVolume += ((high + low + close) / 3) * volume;
    volumeSum += volume;
    if (volumeSum > 0) out[i] = priceVolume / volumeSum;
  }
  return out;
}

/** The latest VWAP of calculateVWAPSeries, or null. */
function getLatestVWAP(klines: ArrayLike<Kline>, anchorPeriod?: number): number | null {
  return lastNonNull(calculateVWAPSeries(klines, anchorPeriod));
}

/**
 * VWAP per candle with bands at ± stdDevMultiplier × the (unweighted) standard deviation of the
 * typical prices from that candle's VWAP, over the anchored window so far.
 */
function calculateVWAPBands(
  klines: ArrayLike<Kline>,
  anchorPeriod?: number,
  stdDevMultiplier: number = 1,
): { vwap: Series; upperBand: Series; lowerBand: Series } {
  const length = klines ? klines.length : 0;
  const upperBand = nullSeries(length);
  const lowerBand = nullSeries(length);
  if (length === 0) return { vwap: nullSeries(0), upperBand, lowerBand };
  const vwap = calculateVWAPSeries(klines, anchorPeriod);
  const start = anchorPeriod && anchorPeriod > 0 && anchorPeriod < length ? length - Math.floor(anchorPeriod) : 0;
  const typical: Series = nullSeries(length);
  for (let i = start; i < length; i++) {
    const value = (toNumber(klines[i]![2]) + toNumber(klines[i]![3]) + toNumber(klines[i]![4])) / 3;
    typical[i] = Number.isFinite(value) ? value : null;
  }
  // Σ(t − v)² = Σt² − 2vΣt + n·v²: running sums make each candle O(1) instead of O(n).
  let count = 0;
  let sum = 0;
  let sumSquares = 0;
  for (let i = start; i < length; i++) {
    const price = typical[i];
    if (price !== null && price !== undefined) {
      count++;
      sum += price;
      sumSquares += price * price;
    }
    const center = vwap[i];
    if (center === null || center === undefined || count === 0) continue;
    const variance = Math.max(0, (sumSquares - 2 * center * sum + count * center * center) / count);
    const deviation = Math.sqrt(variance) * stdDevMultiplier;
    upperBand[i] = center + deviation;
    lowerBand[i] = center - deviation;
  }
  return { vwap, upperBand, lowerBand };
}

/** The latest { vwap, upperBand, lowerBand }; each null when not calculable. */
function getLatestVWAPBands(
  klines: ArrayLike<Kline>,
  anchorPeriod?: number,
  stdDevMultiplier: number = 1,
): { vwap: number | null; upperBand: number | null; lowerBand: number | null } {
  const bands = calculateVWAPBands(klines, anchorPeriod, stdDevMultiplier);
  for (let i = bands.vwap.length - 1; i >= 0; i--) {
    if (bands.vwap[i] !== null) return { vwap: bands.vwap[i]!, upperBand: bands.upperBand[i]!, lowerBand: bands.lowerBand[i]! };
  }
  return { vwap: null, upperBand: null, lowerBand: null };
}

/** Internal building blocks, present in the source but not on `helpers`. */
const INTERNAL_FUNCTIONS = [toNumber, isValidPeriod, closesOf, lastNonNull, nullSeries, emaOfSeries, smaOfSeries];

/** The public library, in the order documented in docs/helpers.md. */
export const HELPER_FUNCTIONS = {
  calculateMA,
  calculateMASeries,
  calculateSMA,
  calculateAvgVolume,
  calculateRSI,
  getLatestRSI,
  detectRSIDivergence,
  detectGenericDivergence,
  calculateStochRSI,
  getLatestStochRSI,
  calculateEMASeries,
  getLatestEMA,
  calculateEMA,
  calculateMACD,
  calculateMACDValues,
  getLatestMACD,
  calculateADX,
  calculateStochastic,
  getHighestHigh,
  getLowestLow,
  detectEngulfingPattern,
  calculatePVISeries,
  getLatestPVI,
  calculateHighVolumeNodes,
  isNearHVN,
  getClosestHVN,
  countHVNInRange,
  clearHVNCache,
  calculateBollingerBands,
  getLatestBollingerBands,
  calculateVWAP,
  calculateVWAPSeries,
  getLatestVWAP,
  calculateVWAPBands,
  getLatestVWAPBands,
};

export type HelperName = keyof typeof HELPER_FUNCTIONS;
export type Helpers = typeof HELPER_FUNCTIONS;

/** Helpers whose first argument is a kline array: the screener memoizes these per series and tick. */
export const KLINE_HELPERS: ReadonlySet<string> = new Set<HelperName>([
  'calculateMA',
  'calculateMASeries',
  'calculateAvgVolume',
  'calculateRSI',
  'getLatestRSI',
  'detectRSIDivergence',
  'calculateStochRSI',
  'getLatestStochRSI',
  'calculateEMASeries',
  'getLatestEMA',
  'calculateMACDValues',
  'getLatestMACD',
  'calculateADX',
  'calculateStochastic',
  'getHighestHigh',
  'getLowestLow',
  'detectEngulfingPattern',
  'calculatePVISeries',
  'getLatestPVI',
  'calculateHighVolumeNodes',
  'calculateBollingerBands',
  'getLatestBollingerBands',
  'calculateVWAP',
  'calculateVWAPSeries',
  'getLatestVWAP',
  'calculateVWAPBands',
  'getLatestVWAPBands',
]);

/**
 * The library as one script body that defines every function and returns the `helpers` object:
 * `new Function(helpersSource())()` in Node, or evaluated inside an isolate. `__name` is defined
 * because some transpilers insert it around nested functions to keep their names.
 */
export function helpersSource(): string {
  const functions = [...INTERNAL_FUNCTIONS, ...Object.values(HELPER_FUNCTIONS)].map((fn) => fn.toString());
  const names = Object.keys(HELPER_FUNCTIONS).join(', ');
  return `"use strict";\nvar __name = function (target) { return target; };\n${functions.join('\n')}\nreturn { ${names} };`;
}
