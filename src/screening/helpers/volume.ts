// PVI and VWAP. Functions named `…Textbook` are the opt-in 'textbook' definitions (see library.ts).
import { anchorStart, lastNonNull, nullSeries, toNumber } from './internal.ts';
import type { Kline, Series } from './types.ts';

/** Positive Volume Index per candle: moves by the close's % change only when volume rose. */
export function calculatePVISeries(klines: ArrayLike<Kline>, initialPVI: number = 1000): Series {
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
export function getLatestPVI(klines: ArrayLike<Kline>, initialPVI: number = 1000): number | null {
  return lastNonNull(calculatePVISeries(klines, initialPVI));
}

/** Web app: VWAP of all klines (typical price (H+L+C)/3 weighted by volume); 0 for no klines or no volume. */
export function calculateVWAP(klines: ArrayLike<Kline>): number {
  const vwap = lastNonNull(calculateVWAPSeries(klines));
  return vwap === null ? 0 : vwap;
}

/** Textbook: the same VWAP, or null for no klines or no volume. */
export function calculateVWAPTextbook(klines: ArrayLike<Kline>): number | null {
  return lastNonNull(calculateVWAPSeries(klines));
}

/** Cumulative VWAP per candle over the last `anchorPeriod` klines (all when omitted); null before. */
export function calculateVWAPSeries(klines: ArrayLike<Kline>, anchorPeriod?: number): Series {
  if (!klines || klines.length === 0) return [];
  const out = nullSeries(klines.length);
  const start = anchorStart(anchorPeriod, klines.length);
  let priceVolume = 0;
  let volumeSum = 0;
  for (let i = start; i < klines.length; i++) {
    const high = toNumber(klines[i]![2]);
    const low = toNumber(klines[i]![3]);
    const close = toNumber(klines[i]![4]);
    const volume = toNumber(klines[i]![5]);
    // Guard: the web app lets an unreadable candle turn every later value into NaN; here it is skipped.
    if (![high, low, close, volume].every(Number.isFinite)) continue;
    priceVolume += ((high + low + close) / 3) * volume;
    volumeSum += volume;
    if (volumeSum > 0) out[i] = priceVolume / volumeSum;
  }
  return out;
}

/** The latest VWAP of calculateVWAPSeries, or null. */
export function getLatestVWAP(klines: ArrayLike<Kline>, anchorPeriod?: number): number | null {
  // calculateVWAPSeries's last value by its arithmetic, without its array.
  if (!klines || klines.length === 0) return null;
  const start = anchorStart(anchorPeriod, klines.length);
  let priceVolume = 0;
  let volumeSum = 0;
  let latest: number | null = null;
  for (let i = start; i < klines.length; i++) {
    const high = toNumber(klines[i]![2]);
    const low = toNumber(klines[i]![3]);
    const close = toNumber(klines[i]![4]);
    const volume = toNumber(klines[i]![5]);
    if (!Number.isFinite(high) || !Number.isFinite(low) || !Number.isFinite(close) || !Number.isFinite(volume)) continue;
    priceVolume += ((high + low + close) / 3) * volume;
    volumeSum += volume;
    if (volumeSum > 0) latest = priceVolume / volumeSum;
  }
  return latest;
}

/**
 * VWAP per candle with bands at ± stdDevMultiplier × the (unweighted) standard deviation of the
 * typical prices from that candle's VWAP, over the anchored window so far. Same as the web app.
 */
export function calculateVWAPBands(
  klines: ArrayLike<Kline>,
  anchorPeriod?: number,
  stdDevMultiplier: number = 1,
): { vwap: Series; upperBand: Series; lowerBand: Series } {
  const length = klines ? klines.length : 0;
  const upperBand = nullSeries(length);
  const lowerBand = nullSeries(length);
  if (length === 0) return { vwap: nullSeries(0), upperBand, lowerBand };
  const vwap = calculateVWAPSeries(klines, anchorPeriod);
  const start = anchorStart(anchorPeriod, length);
  // Σ(t − v)² / n = M2 / n + (mean − v)², with the mean and M2 = Σ(t − mean)² kept by Welford's
  // update: O(1) per candle like running sums, without their cancellation (Σt² − 2vΣt + n·v² left
  // about 1e-7 of band width on a flat series, where the web app's direct sum gives exactly 0).
  let count = 0;
  let mean = 0;
  let m2 = 0;
  for (let i = start; i < length; i++) {
    const price = (toNumber(klines[i]![2]) + toNumber(klines[i]![3]) + toNumber(klines[i]![4])) / 3;
    if (Number.isFinite(price)) {
      count++;
      const delta = price - mean;
      mean += delta / count;
      m2 += delta * (price - mean);
    }
    const center = vwap[i];
    if (center === null || center === undefined || count === 0) continue;
    const offset = mean - center;
    const deviation = Math.sqrt(Math.max(0, m2 / count + offset * offset)) * stdDevMultiplier;
    upperBand[i] = center + deviation;
    lowerBand[i] = center - deviation;
  }
  return { vwap, upperBand, lowerBand };
}

/** The latest { vwap, upperBand, lowerBand }; each null when not calculable. */
export function getLatestVWAPBands(
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
