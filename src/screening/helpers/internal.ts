// Building blocks the helpers share: present in the library's source, never on `helpers`.
//
// Like every function of the library, each one is self-contained plain JavaScript once types are
// stripped, calling only other library functions by their own names (see library.ts).
import type { Kline, Series } from './types.ts';

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

/** True when every value is a number (no NaN: closeColumn's stand-in for null). */
export function allReadable(values: Float64Array): boolean {
  for (let i = 0; i < values.length; i++) if (values[i] !== values[i]) return false;
  return true;
}

export const INTERNAL_FUNCTIONS = [toNumber, isValidPeriod, closesOf, lastNonNull, nullSeries, emaOfSeries, smaOfSeries, closeColumn, wilderRsi, allReadable];
