// Divergences and candle patterns. Same as the web app.
import { closesOf, toNumber } from './internal.ts';
import { calculateRSI } from './oscillators.ts';
import type { Kline } from './types.ts';

/**
 * Regular divergence between a price series and an indicator series over the last
 * `lookbackCandles`: price lower low with indicator higher low → 'bullish_regular'; price higher
 * high with indicator lower high → 'bearish_regular'; the most recent pair of extremes at least
 * `minPeakValleySeparation` candles apart wins, bullish checked first.
 */
export function detectGenericDivergence(
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
export function detectRSIDivergence(
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

/**
 * Engulfing pattern of the candle at length − 2 over the one at length − 3 (the web app's indexes:
 * it assumed a forming candle last; here the last candle is closed, and the indexes are kept so a
 * trader behaves the same in both places).
 */
export function detectEngulfingPattern(klines: ArrayLike<Kline>): 'bullish' | 'bearish' | null {
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
