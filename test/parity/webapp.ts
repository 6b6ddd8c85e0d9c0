// The web app's behaviour for the helpers where the worker used to differ, restated as plainly as
// ../shared/WEBAPP-PARITY.md states it (slices and sums, no shortcuts): the oracle the conformance
// vectors take their expected values from. Never imported by src/.

type Row = ArrayLike<number | string>;
const num = (value: number | string): number => parseFloat(String(value));
const mean = (values: number[]): number => values.reduce((sum, value) => sum + value, 0) / values.length;

export function sma(values: number[] | undefined, period: number): number {
  if (!values || values.length < period || period <= 0) return 0;
  return mean(values.slice(-period).map(num));
}

export function ema(values: number[] | undefined, period: number): number {
  if (!values || values.length < period || period <= 0) return 0;
  const k = 2 / (period + 1);
  let value = num(values[0]!);
  for (let i = 1; i < values.length; i++) value = num(values[i]!) * k + value * (1 - k);
  return value;
}

export function macd(closes: number[], short = 12, long = 26, signal = 9): { MACD: number; signal: number; histogram: number } {
  if (closes.length < long) return { MACD: 0, signal: 0, histogram: 0 };
  const line: number[] = [];
  for (let i = long - 1; i < closes.length; i++) line.push(ema(closes.slice(0, i + 1), short) - ema(closes.slice(0, i + 1), long));
  const last = line[line.length - 1]!;
  const signalValue = ema(line, signal);
  return { MACD: last, signal: signalValue, histogram: last - signalValue };
}

const typical = (k: Row): number => (num(k[2]!) + num(k[3]!) + num(k[4]!)) / 3;

export function vwap(klines: Row[]): number {
  const volume = klines.reduce((sum, k) => sum + num(k[5]!), 0);
  if (klines.length === 0 || volume === 0) return 0;
  return klines.reduce((sum, k) => sum + typical(k) * num(k[5]!), 0) / volume;
}

/** Bands at ± multiplier × the deviation of the typical prices so far from each candle's VWAP, summed directly. */
export function vwapBands(klines: Row[], anchor?: number, multiplier = 1): { vwap: Array<number | null>; upperBand: Array<number | null>; lowerBand: Array<number | null> } {
  const start = anchor && anchor > 0 && anchor < klines.length ? klines.length - anchor : 0;
  const out = { vwap: [] as Array<number | null>, upperBand: [] as Array<number | null>, lowerBand: [] as Array<number | null> };
  for (let i = 0; i < klines.length; i++) {
    const window = i < start ? [] : klines.slice(start, i + 1);
    const volume = window.reduce((sum, k) => sum + num(k[5]!), 0);
    if (volume <= 0) {
      out.vwap.push(null);
      out.upperBand.push(null);
      out.lowerBand.push(null);
      continue;
    }
    const center = window.reduce((sum, k) => sum + typical(k) * num(k[5]!), 0) / volume;
    const deviation = Math.sqrt(window.reduce((sum, k) => sum + (typical(k) - center) ** 2, 0) / window.length) * multiplier;
    out.vwap.push(center);
    out.upperBand.push(center + deviation);
    out.lowerBand.push(center - deviation);
  }
  return out;
}

export function latestVwapBands(klines: Row[], anchor?: number, multiplier = 1): { vwap: number | null; upperBand: number | null; lowerBand: number | null } {
  const bands = vwapBands(klines, anchor, multiplier);
  for (let i = bands.vwap.length - 1; i >= 0; i--) {
    if (bands.vwap[i] !== null) return { vwap: bands.vwap[i]!, upperBand: bands.upperBand[i]!, lowerBand: bands.lowerBand[i]! };
  }
  return { vwap: null, upperBand: null, lowerBand: null };
}

export function adx(klines: Row[], period = 14): number {
  if (klines.length < 2 * period) return 0;
  const trueRanges: number[] = [];
  for (let i = 1; i < klines.length; i++) {
    const high = num(klines[i]![2]!);
    const low = num(klines[i]![3]!);
    const previousClose = num(klines[i - 1]![4]!);
    trueRanges.push(Math.max(high - low, Math.abs(high - previousClose), Math.abs(low - previousClose)));
  }
  const atr = mean(trueRanges.slice(-period));
  const avgClose = mean(klines.slice(-period).map((k) => num(k[4]!)));
  return Math.min(100, Math.max(0, (atr / avgClose) * 1000));
}

export function stochastic(klines: Row[], kPeriod = 14): { k: number; d: number } {
  if (klines.length < kPeriod) return { k: 0, d: 0 };
  const window = klines.slice(-kPeriod);
  const highest = Math.max(...window.map((k) => num(k[2]!)));
  const lowest = Math.min(...window.map((k) => num(k[3]!)));
  const close = num(klines[klines.length - 1]![4]!);
  const k = highest === lowest ? 50 : ((close - lowest) / (highest - lowest)) * 100;
  return { k, d: 0.9 * k };
}

/** Wilder's RSI per candle, null for the first `period` (the worker and the web app agree on it). */
export function rsi(klines: Row[], period = 14): Array<number | null> | null {
  if (klines.length < period + 1) return null;
  const closes = klines.map((k) => num(k[4]!));
  const out: Array<number | null> = closes.map(() => null);
  const value = (gain: number, loss: number) => (loss === 0 ? (gain > 0 ? 100 : 50) : 100 - 100 / (1 + gain / loss));
  let gain = 0;
  let loss = 0;
  for (let i = 1; i <= period; i++) {
    const change = closes[i]! - closes[i - 1]!;
    gain += Math.max(change, 0);
    loss += Math.max(-change, 0);
  }
  gain /= period;
  loss /= period;
  out[period] = value(gain, loss);
  for (let i = period + 1; i < closes.length; i++) {
    const change = closes[i]! - closes[i - 1]!;
    gain = (gain * (period - 1) + Math.max(change, 0)) / period;
    loss = (loss * (period - 1) + Math.max(-change, 0)) / period;
    out[i] = value(gain, loss);
  }
  return out;
}

export function stochRsi(klines: Row[], rsiPeriod = 14, stochPeriod = 14, kPeriod = 3, dPeriod = 3): Array<{ k: number; d: number }> | null {
  const series = rsi(klines, rsiPeriod);
  if (!series || series.length < stochPeriod + kPeriod - 1) return null;
  const present = series.flatMap((value, index) => (value === null ? [] : [{ index, value }]));
  if (present.length < stochPeriod) return null;
  const raw = new Map<number, number>();
  for (let n = stochPeriod - 1; n < present.length; n++) {
    const window = present.slice(n - stochPeriod + 1, n + 1).map((entry) => entry.value);
    const max = Math.max(...window);
    const min = Math.min(...window);
    raw.set(present[n]!.index, max === min ? 50 : ((present[n]!.value - min) / (max - min)) * 100);
  }
  const averageOf = (source: Map<number, number>, index: number, period: number): number | null => {
    const values: number[] = [];
    for (let j = index - period + 1; j <= index; j++) if (source.has(j)) values.push(source.get(j)!);
    return values.length === period ? mean(values) : null;
  };
  const k = new Map<number, number>();
  series.forEach((_, index) => {
    const value = averageOf(raw, index, kPeriod);
    if (value !== null) k.set(index, value);
  });
  return series.map((_, index) => {
    const d = averageOf(k, index, dPeriod);
    return k.has(index) && d !== null ? { k: k.get(index)!, d } : { k: 0, d: 0 };
  });
}

export function latestStochRsi(klines: Row[], rsiPeriod = 14, stochPeriod = 14, kPeriod = 3, dPeriod = 3): { k: number; d: number } | null {
  const series = stochRsi(klines, rsiPeriod, stochPeriod, kPeriod, dPeriod);
  if (!series || series.length === 0) return null;
  return [...series].reverse().find((entry) => entry.k !== 0 || entry.d !== 0) ?? null;
}

export function countInRange(low: number, high: number, nodes: Array<{ price: number }> | undefined): number {
  if (!nodes || nodes.length === 0) return 0;
  return nodes.filter((node) => node.price >= low && node.price <= high).length;
}
