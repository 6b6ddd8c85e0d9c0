// The compute floor of a tick: the bench filters' arithmetic as plain functions over Float64Array columns, nothing else.
//
// Issue #14 asks what a tick would cost if it paid only for the indicator arithmetic: no kline
// views, no memo, no isolation, one thread. Each function here is one of bench/support/filters.ts's
// filter kinds written by hand the way a careful engineer would write it over column arrays:
// the same operations in the same order as the helpers (so the verdicts agree to the last bit),
// but only what the verdict needs (the tail of a series instead of all of it, the high-volume
// nodes only for a match) and nothing shared between traders. It assumes finite candles, as the
// synthetic market gives; the helpers' guards for unreadable fields have no counterpart here.
import { CANDLE_ROW_FIELDS, type Interval, type Trader } from '../../src/domain.ts';
import type { MarketView, ScreenerRun, TraderTickOutcome } from '../../src/ports.ts';

/** One series as columns, oldest candle first. */
export interface Columns {
  length: number;
  open: Float64Array;
  high: Float64Array;
  low: Float64Array;
  close: Float64Array;
  volume: Float64Array;
  takerBuyBase: Float64Array;
}

/** What a floor filter reads: the refresh series `k` (1m), the trader's higher timeframe `h`, and the ticker's numbers. */
export interface FloorInput {
  k: Columns;
  h: Columns;
  lastPrice: number;
  quoteVolume: number;
}

/** The conditions of a match, or null for no match. */
export type FloorFilter = (input: FloorInput) => string[] | null;

/** Columns of one series read from the market's rows (the store's shared buffer when it offers one). */
export function columnsOf(market: MarketView, symbol: string, interval: Interval): Columns | null {
  const view = market.series(symbol, interval);
  if (!view || view.length === 0) return null;
  const length = view.length;
  const columns: Columns = {
    length,
    open: new Float64Array(length),
    high: new Float64Array(length),
    low: new Float64Array(length),
    close: new Float64Array(length),
    volume: new Float64Array(length),
    takerBuyBase: new Float64Array(length),
  };
  const shared = view.sharedRows?.();
  if (shared) {
    const rows = new Float64Array(shared.buffer);
    for (let i = 0; i < length; i++) {
      const o = (shared.start + i) * CANDLE_ROW_FIELDS;
      columns.open[i] = rows[o + 1]!;
      columns.high[i] = rows[o + 2]!;
      columns.low[i] = rows[o + 3]!;
      columns.close[i] = rows[o + 4]!;
      columns.volume[i] = rows[o + 5]!;
      columns.takerBuyBase[i] = rows[o + 9]!;
    }
  } else {
    for (let i = 0; i < length; i++) {
      const candle = view.get(i);
      columns.open[i] = candle.open;
      columns.high[i] = candle.high;
      columns.low[i] = candle.low;
      columns.close[i] = candle.close;
      columns.volume[i] = candle.volume;
      columns.takerBuyBase[i] = candle.takerBuyBaseVolume;
    }
  }
  return columns;
}

/**
 * Wilder's RSI of the first `length` closes (calculateRSI's arithmetic): the latest value, and every value from index
 * `period` on written into `out` when one is given. Needs at least period + 1 closes.
 */
function wilderRsi(close: Float64Array, length: number, period: number, out: Float64Array | null): number {
  let gains = 0;
  let losses = 0;
  for (let i = 1; i <= period; i++) {
    const change = close[i]! - close[i - 1]!;
    if (change > 0) gains += change;
    else losses -= change;
  }
  let avgGain = gains / period;
  let avgLoss = losses / period;
  if (out !== null) out[period] = avgLoss === 0 ? (avgGain > 0 ? 100 : 50) : 100 - 100 / (1 + avgGain / avgLoss);
  for (let i = period + 1; i < length; i++) {
    const change = close[i]! - close[i - 1]!;
    avgGain = (avgGain * (period - 1) + (change > 0 ? change : 0)) / period;
    avgLoss = (avgLoss * (period - 1) + (change < 0 ? -change : 0)) / period;
    if (out !== null) out[i] = avgLoss === 0 ? (avgGain > 0 ? 100 : 50) : 100 - 100 / (1 + avgGain / avgLoss);
  }
  return avgLoss === 0 ? (avgGain > 0 ? 100 : 50) : 100 - 100 / (1 + avgGain / avgLoss);
}

/** Wilder's RSI at the last candle, or null with fewer than period + 1 closes. */
export function latestRSI(close: Float64Array, length: number, period: number): number | null {
  return length < period + 1 ? null : wilderRsi(close, length, period, null);
}

/** RSI at every candle from `period` on into `out`; false when too short. */
function rsiSeries(close: Float64Array, length: number, period: number, out: Float64Array): boolean {
  if (length < period + 1) return false;
  wilderRsi(close, length, period, out);
  return true;
}

/** EMA of closes seeded with the SMA of the first `period` (emaOfSeries's arithmetic), into `out` from period − 1 on. */
function emaSeries(values: Float64Array, length: number, period: number, out: Float64Array): boolean {
  if (length < period) return false;
  let sum = 0;
  for (let i = 0; i < period; i++) sum += values[i]!;
  const k = 2 / (period + 1);
  let ema = sum / period;
  out[period - 1] = ema;
  for (let i = period; i < length; i++) {
    ema = values[i]! * k + ema * (1 - k);
    out[i] = ema;
  }
  return true;
}

/** The EMA of closes at the last candle, or null. */
function latestEMA(close: Float64Array, length: number, period: number): number | null {
  if (length < period) return null;
  let sum = 0;
  for (let i = 0; i < period; i++) sum += close[i]!;
  const k = 2 / (period + 1);
  let ema = sum / period;
  for (let i = period; i < length; i++) ema = close[i]! * k + ema * (1 - k);
  return ema;
}

function meanOfLast(values: Float64Array, end: number, period: number): number | null {
  if (end < period) return null;
  let sum = 0;
  for (let i = end - period; i < end; i++) sum += values[i]!;
  return sum / period;
}

/** Scratch series reused across evaluations: the floor allocates nothing per evaluation but its verdict. */
class Scratch {
  private arrays: Float64Array[] = [];
  get(index: number, length: number): Float64Array {
    let array = this.arrays[index];
    if (!array || array.length < length) this.arrays[index] = array = new Float64Array(length);
    return array;
  }
}
const scratch = new Scratch();

export function rsiFloor(period: number, below: number, higherInterval: Interval): FloorFilter {
  return ({ k, h }) => {
    const rsi = latestRSI(k.close, k.length, period);
    const higher = latestRSI(h.close, h.length, 14);
    if (rsi === null || higher === null || !(rsi < below && higher < 60)) return null;
    return [`RSI(${period}) ${rsi.toFixed(1)}`, `${higherInterval} RSI ${higher.toFixed(1)}`];
  };
}

export function emaCrossFloor(fastPeriod: number, slowPeriod: number): FloorFilter {
  return ({ k, h }) => {
    const n = k.length - 1;
    const fast = scratch.get(0, k.length);
    const slow = scratch.get(1, k.length);
    if (!emaSeries(k.close, k.length, fastPeriod, fast) || !emaSeries(k.close, k.length, slowPeriod, slow)) return null;
    const trend = latestEMA(h.close, h.length, 50);
    if (trend === null) return null;
    // fast[n − 3] exists when n − 3 ≥ fastPeriod − 1, as the helper's null says.
    const crossed = fast[n]! > slow[n]! && n - 3 >= fastPeriod - 1 && (n - 3 < slowPeriod - 1 ? false : fast[n - 3]! <= slow[n - 3]!);
    if (!(crossed && k.close[n]! > trend)) return null;
    return [`EMA ${fastPeriod} crossed above EMA ${slowPeriod}`];
  };
}

export function volumeSpikeFloor(factor: number): FloorFilter {
  return ({ k, h, quoteVolume }) => {
    const average = meanOfLast(k.volume, k.length - 1, 20);
    const sma = meanOfLast(h.close, h.length, 20);
    if (average === null || sma === null) return null;
    const ratio = k.volume[k.length - 1]! / average;
    if (!(ratio > factor && h.close[h.length - 1]! > sma && quoteVolume > 0)) return null;
    return [`volume ${ratio.toFixed(2)}x average`];
  };
}

export function bollingerFloor(maxWidth: number): FloorFilter {
  return ({ k, h }) => {
    const period = 20;
    const n = k.length;
    if (n < period) return null;
    let sum = 0;
    for (let j = n - period; j < n; j++) sum += k.close[j]!;
    const mean = sum / period;
    let squares = 0;
    for (let j = n - period; j < n; j++) squares += (k.close[j]! - mean) * (k.close[j]! - mean);
    const deviation = Math.sqrt(squares / period);
    const upper = mean + 2 * deviation;
    const lower = mean - 2 * deviation;
    if (!mean) return null;
    const width = (upper - lower) / mean;
    if (!(width < maxWidth)) return null;
    return [`BB width ${width.toFixed(4)}`, `ADX ${volatilityADX(h, 14).toFixed(1)}`];
  };
}

/** The web app's "ADX" (calculateADX): mean true range over mean close of the last `period` candles, × 1000, clamped. */
function volatilityADX(h: Columns, period: number): number {
  if (h.length < 2 * period) return 0;
  let trSum = 0;
  let closeSum = 0;
  for (let i = h.length - period; i < h.length; i++) {
    const high = h.high[i]!;
    const low = h.low[i]!;
    const previousClose = h.close[i - 1]!;
    trSum += Math.max(high - low, Math.abs(high - previousClose), Math.abs(low - previousClose));
    closeSum += h.close[i]!;
  }
  const value = (trSum / period / (closeSum / period)) * 1000;
  return Number.isNaN(value) ? 0 : Math.min(100, Math.max(0, value));
}

/** getLatestMACD(k) with 12/26/9: the histogram at the last candle, or null. */
function latestMACDHistogram(close: Float64Array, length: number): number | null {
  if (length < 26) return null;
  const short = scratch.get(2, length);
  const long = scratch.get(3, length);
  emaSeries(close, length, 12, short);
  emaSeries(close, length, 26, long);
  // The MACD line starts at 25; its signal is the EMA(9) of it seeded with the SMA of its first 9 values.
  if (length < 25 + 9) return null;
  let sum = 0;
  for (let i = 25; i < 34; i++) sum += short[i]! - long[i]!;
  const k = 2 / 10;
  let signal = sum / 9;
  for (let i = 34; i < length; i++) signal = (short[i]! - long[i]!) * k + signal * (1 - k);
  return short[length - 1]! - long[length - 1]! - signal;
}

/**
 * getLatestStochRSI(k) with 14/14/3/3 (the web app's): raw StochRSI over the last 14 RSIs, %K its
 * SMA(3), %D the SMA(3) of %K; the latest entry whose k or d is non-zero.
 */
function latestStochRSI(close: Float64Array, length: number): { k: number; d: number } | null {
  const rsi = scratch.get(4, length);
  if (!rsiSeries(close, length, 14, rsi)) return null;
  // RSI exists from 14 on; raw from 14 + 13, %K from raw's third, %D from %K's third.
  const firstRaw = 27;
  if (length - 14 < 14 || length < 14 + 3 - 1) return null;
  const raw = (i: number): number | null => {
    if (i < firstRaw) return null;
    let highest = -Infinity;
    let lowest = Infinity;
    for (let m = i - 13; m <= i; m++) {
      const value = rsi[m]!;
      if (value > highest) highest = value;
      if (value < lowest) lowest = value;
    }
    return highest === lowest ? 50 : ((rsi[i]! - lowest) / (highest - lowest)) * 100;
  };
  const kAt = (i: number): number | null => {
    if (i < firstRaw + 2) return null;
    let sum = 0;
    for (let j = i - 2; j <= i; j++) sum += raw(j)!;
    return sum / 3;
  };
  for (let i = length - 1; i >= firstRaw + 4; i--) {
    const k = kAt(i)!;
    let sum = 0;
    for (let j = i - 2; j <= i; j++) sum += kAt(j)!;
    const d = sum / 3;
    if (k !== 0 || d !== 0) return { k, d };
  }
  return null;
}

function latestVWAP(h: Columns): number | null {
  let priceVolume = 0;
  let volumeSum = 0;
  for (let i = 0; i < h.length; i++) {
    priceVolume += ((h.high[i]! + h.low[i]! + h.close[i]!) / 3) * h.volume[i]!;
    volumeSum += h.volume[i]!;
  }
  return volumeSum > 0 ? priceVolume / volumeSum : null;
}

/** isNearHVN(price, calculateHighVolumeNodes(last 100 candles), tolerance): any node within tolerance %. */
function nearHighVolumeNode(k: Columns, price: number, tolerance: number): boolean {
  const bins = 30;
  const start = Math.max(0, k.length - 100);
  let minPrice = Infinity;
  let maxPrice = -Infinity;
  for (let i = start; i < k.length; i++) {
    if (k.low[i]! < minPrice) minPrice = k.low[i]!;
    if (k.high[i]! > maxPrice) maxPrice = k.high[i]!;
  }
  if (!(minPrice < maxPrice)) return false;
  const binSize = (maxPrice - minPrice) / bins;
  const volumeByBin = scratch.get(5, bins).fill(0, 0, bins);
  for (let i = start; i < k.length; i++) {
    const open = k.open[i]!;
    const close = k.close[i]!;
    const firstBin = Math.floor((Math.min(open, close, k.low[i]!) - minPrice) / binSize);
    const lastBin = Math.floor((Math.max(open, close, k.high[i]!) - minPrice) / binSize);
    const spanned = Math.max(1, lastBin - firstBin + 1);
    for (let bin = Math.max(0, firstBin); bin <= Math.min(bins - 1, lastBin); bin++) volumeByBin[bin] += k.volume[i]! / spanned;
  }
  const sorted = volumeByBin.slice(0, bins).sort();
  const threshold = sorted[Math.floor(0.7 * bins)] || 0;
  let maxVolume = 0;
  for (let bin = 0; bin < bins; bin++) if (volumeByBin[bin]! > maxVolume) maxVolume = volumeByBin[bin]!;
  const allowed = price * (tolerance / 100);
  for (let bin = 0; bin < bins; bin++) {
    const volume = volumeByBin[bin]!;
    if (volume < threshold || volume <= 0) continue;
    const previous = bin > 0 ? volumeByBin[bin - 1]! : 0;
    const next = bin < bins - 1 ? volumeByBin[bin + 1]! : 0;
    if (!(volume > previous * 1.05 && volume > next * 1.05)) continue;
    if ((volume / maxVolume) * 100 < 50) continue;
    const low = minPrice + bin * binSize;
    if (Math.abs(price - (low + low + binSize) / 2) <= allowed) return true;
  }
  return false;
}

export function macdStochFloor(stochAbove: number): FloorFilter {
  return ({ k, h, lastPrice }) => {
    const histogram = latestMACDHistogram(k.close, k.length);
    const stoch = latestStochRSI(k.close, k.length);
    const vwap = latestVWAP(h);
    if (histogram === null || stoch === null || vwap === null) return null;
    if (!(histogram > 0 && stoch.k > stochAbove && stoch.k < stochAbove + 15)) return null;
    return [`MACD hist ${histogram.toFixed(5)}`, `near HVN ${nearHighVolumeNode(k, lastPrice, 2)}`, `vs VWAP ${(lastPrice / vwap).toFixed(3)}`];
  };
}

/**
 * The tick on the floor: columns read once per series (a column store would keep them), then every
 * trader's floor filter over its symbols, one thread. Results ordered like Screener.run's.
 */
export function evaluateFloor(traders: ReadonlyArray<{ trader: Trader; floor: FloorFilter; higher: Interval }>, tick: ScreenerRun): TraderTickOutcome[] {
  const symbols = [...new Set(tick.symbols)].sort();
  const columns = new Map<string, Columns | null>();
  const columnsFor = (symbol: string, interval: Interval): Columns | null => {
    const key = `${symbol}|${interval}`;
    let found = columns.get(key);
    if (found === undefined) columns.set(key, (found = columnsOf(tick.market, symbol, interval)));
    return found;
  };
  const wanted = new Set(tick.traderIds);
  const results: TraderTickOutcome[] = [];
  for (const { trader, floor, higher } of [...traders].filter((t) => wanted.has(t.trader.id)).sort((a, b) => (a.trader.id < b.trader.id ? -1 : 1))) {
    const started = performance.now();
    const result: TraderTickOutcome = { traderId: trader.id, evaluatedSymbols: [], matches: [], errors: [], warnings: [], evaluationMs: 0, disabled: null };
    for (const symbol of symbols) {
      const k = columnsFor(symbol, '1m');
      const h = columnsFor(symbol, higher);
      if (!k || !h) continue;
      const ticker = tick.market.ticker(symbol);
      const conditions = floor({ k, h, lastPrice: ticker?.lastPrice ?? k.close[k.length - 1]!, quoteVolume: ticker?.quoteVolume ?? NaN });
      result.evaluatedSymbols.push(symbol);
      if (conditions !== null) result.matches.push({ symbol, conditions, price: k.close[k.length - 1]! });
    }
    result.evaluationMs = performance.now() - started;
    results.push(result);
  }
  return results;
}
