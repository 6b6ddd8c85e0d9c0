// The hot kline helpers answered on the host straight from a series' shared rows, by the library's own arithmetic over columns.
//
// The memo used to copy every row into a kline array and call the library on it; these functions
// read the rows where they lie (CANDLE_ROW_FIELDS numbers per candle, laid out like a kline's first
// eleven fields) and run the same building blocks as the library (./internal.ts) in the same order,
// so every answer is bit for bit the library's on the equivalent klines: same numbers, nulls, object
// shapes and key order. A call they cannot vouch for (another helper, a version that answers the
// name differently, arguments off their path) is NOT_COVERED, and the caller asks the library.
// Host-only: nothing here is part of the library rebuilt inside the isolates.
import { CANDLE_ROW_FIELDS, type HelpersVersion } from '../../domain.ts';
import {
  allReadable,
  anchorStart,
  emaInto,
  emaOfSeries,
  hvnSettings,
  isValidPeriod,
  latestBollingerBands,
  latestEma,
  latestStochRSI,
  macdOfEmas,
  nullSeries,
  smaOfSeries,
  spreadVolume,
  trueRange,
  volatilityIndex,
  volumeNodes,
  wilderRsi,
} from './internal.ts';
import { calculateHighVolumeNodes } from './hvn.ts';
import { helperFunctions, HELPERS_VERSIONS, type HelperFunction } from './library.ts';
import { calculateAvgVolume, calculateEMASeries, calculateMA, calculateMACDValues, calculateMASeries, getLatestEMA, getLatestMACD } from './moving.ts';
import { calculateRSI, getLatestRSI, getLatestStochRSI } from './oscillators.ts';
import { calculateADX, getHighestHigh, getLatestBollingerBands, getLowestLow } from './trend.ts';
import { calculateVWAP, calculateVWAPTextbook, getLatestVWAP } from './volume.ts';
import type { HVNOptions, Series, VolumeNode } from './types.ts';

/** The answer of computeOnRows when it does not cover a call: ask the library instead. */
export const NOT_COVERED: unique symbol = Symbol('not covered by the columnar helpers');

const F = CANDLE_ROW_FIELDS;
const OPEN = 1;
const HIGH = 2;
const LOW = 3;
const CLOSE = 4;
const VOLUME = 5;
const TAKER_BUY_VOLUME = 9;
/**
 * Closes beyond this magnitude could overflow a seed sum (up to 100,000 values, the memo's largest
 * period) or a change to Infinity, and then to NaN, which NaN-marked columns cannot tell from a
 * null. Within it every EMA, MACD and RSI value is finite. No market comes near it.
 */
const MAX_MAGNITUDE = 1e300;

/** True when no value of the column lies beyond MAX_MAGNITUDE (NaN, an unreadable value, does not). */
function withinMagnitude(column: Float64Array): boolean {
  for (let i = 0; i < column.length; i++) if (Math.abs(column[i]!) > MAX_MAGNITUDE) return false;
  return true;
}

/**
 * Scratch columns reused from call to call (a fresh Float64Array per call cost more than the
 * arithmetic). Safe because nothing returned is a column: results are numbers, fresh objects and
 * fresh series.
 */
const scratch: Float64Array[] = [];

function scratchColumn(slot: number, length: number): Float64Array {
  let column = scratch[slot];
  if (!column || column.length < length) scratch[slot] = column = new Float64Array(Math.max(length, 1024));
  return column.subarray(0, length);
}

/** Field `field` of as many candles as `column` holds, from row `start`, as closeColumn reads a kline field: NaN where the value is not finite. */
function readField(rows: Float64Array, start: number, field: number, column: Float64Array): Float64Array {
  // Without a branch: a finite value times exactly 1 is itself (-0 too); an infinity or NaN gives
  // value - value = NaN, so NaN. About 3x faster than a Number.isFinite test per value.
  for (let i = 0, o = start * F + field; i < column.length; i++, o += F) {
    const value = rows[o]!;
    column[i] = value * (value - value + 1);
  }
  return column;
}

/**
 * Close columns extracted once per series and range and shared by every helper call until
 * release(). The owner must release it before any of the rows it has read may change: the memo
 * does at each batch of symbols, within a tick, whose rows stay as they are. The columns are read
 * only (every building block reads its input and writes only what it returns).
 */
export class CloseColumns {
  private readonly bySeries = new Map<Float64Array, Array<{ start: number; length: number; column: Float64Array }>>();
  /** What was found of a column's values (READABLE_KNOWN | READABLE | WITHIN_KNOWN | WITHIN), so each scan runs once per column. */
  private readonly facts = new Map<Float64Array, number>();
  /**
   * wilderRsi's series by close column and period: the RSI getLatestStochRSI runs its arithmetic
   * on, and whose last entry getLatestRSI answers (wilderRsi returns the value it writes last, by
   * the same expression), so the two helpers share one pass over the closes instead of two.
   */
  private readonly rsiByColumn = new Map<Float64Array, Map<number, Float64Array>>();
  /**
   * The RSI periods StochRSI asked for in this batch and the last: getLatestRSI keeps its series
   * only for those (for any other period the series would be written for nothing).
   */
  private stochPeriods = new Set<number>();
  private lastStochPeriods = new Set<number>();
  /**
   * The other periods getLatestRSI asked for in this batch and the last, and the latest values
   * computed ahead for them by column: on a column's first ask, a period is computed together with
   * one of those (wilderRsiPair: two independent chains in one loop, each the same arithmetic).
   */
  private rsiPeriods = new Set<number>();
  private lastRsiPeriods = new Set<number>();
  private readonly latestByColumn = new Map<Float64Array, Map<number, number>>();
  /** RSI series computed for sharing so far (for tests: a second helper on the same closes computes none). */
  rsiSeriesComputed = 0;
  /** Latest RSI values computed in pairs so far (for tests). */
  rsiPairsComputed = 0;
  private readonly pool: Float64Array[] = [];
  private used = 0;

  of(rows: Float64Array, start: number, length: number): Float64Array {
    let ranges = this.bySeries.get(rows);
    if (ranges === undefined) this.bySeries.set(rows, (ranges = []));
    for (const range of ranges) if (range.start === start && range.length === length) return range.column;
    const column = readField(rows, start, CLOSE, this.take(length));
    ranges.push({ start, length, column });
    return column;
  }

  /**
   * getLatestRSI's answer on `closes` (a column of(), all readable, at least period + 1 long, for a
   * valid period): the last entry of the series kept for StochRSI when it asks for this period.
   */
  latestRsi(closes: Float64Array, period: number): number {
    const kept = this.rsiByColumn.get(closes)?.get(period);
    if (kept !== undefined) return kept[kept.length - 1]!;
    if (this.forStoch(period)) return this.rsiOf(closes, period)[closes.length - 1]!;
    this.rsiPeriods.add(period);
    let latest = this.latestByColumn.get(closes);
    const ahead = latest?.get(period);
    if (ahead !== undefined) return ahead;
    for (const other of this.lastRsiPeriods) {
      if (other === period || this.forStoch(other) || closes.length < other + 1 || latest?.has(other) === true) continue;
      // `other` passed the same checks (a valid period, on readable closes) on the batch before; this column is long enough for it.
      const pair = wilderRsiPair(closes, period, other);
      if (latest === undefined) this.latestByColumn.set(closes, (latest = new Map()));
      latest.set(other, pair[1]);
      this.rsiPairsComputed++;
      return pair[0];
    }
    return wilderRsi(closes, period, null);
  }

  /** StochRSI asked for this RSI period in this batch or the last: its series is kept. */
  private forStoch(period: number): boolean {
    return this.stochPeriods.has(period) || this.lastStochPeriods.has(period);
  }

  /** StochRSI's RSI series of `closes`, a column of() (as for latestRsi): entries from `period` on, NaN below. Read only. */
  readonly stochRsiOf = (closes: ArrayLike<number>, period: number): Float64Array => {
    const column = closes as Float64Array;
    this.stochPeriods.add(period);
    return this.rsiByColumn.get(column)?.get(period) ?? this.rsiOf(column, period);
  };

  /** allReadable of a column of(), scanned once. */
  readable(column: Float64Array): boolean {
    return this.fact(column, READABLE_KNOWN, READABLE, allReadable);
  }

  /** withinMagnitude of a column of(), scanned once. */
  within(column: Float64Array): boolean {
    return this.fact(column, WITHIN_KNOWN, WITHIN, withinMagnitude);
  }

  /** What `scan` says of a column, kept under the bits `known` (asked) and `holds` (its answer). */
  private fact(column: Float64Array, known: number, holds: number, scan: (values: Float64Array) => boolean): boolean {
    const facts = this.facts.get(column) ?? 0;
    if ((facts & known) !== 0) return (facts & holds) !== 0;
    const answer = scan(column);
    this.facts.set(column, facts | known | (answer ? holds : 0));
    return answer;
  }

  /** Forget every column (their buffers are reused): the rows read so far may change from now on. */
  release(): void {
    this.bySeries.clear();
    this.facts.clear();
    this.rsiByColumn.clear();
    this.used = 0;
    [this.lastStochPeriods, this.stochPeriods] = [this.stochPeriods, this.lastStochPeriods];
    this.stochPeriods.clear();
    this.latestByColumn.clear();
    [this.lastRsiPeriods, this.rsiPeriods] = [this.rsiPeriods, this.lastRsiPeriods];
    this.rsiPeriods.clear();
  }

  private rsiOf(closes: Float64Array, period: number): Float64Array {
    let byPeriod = this.rsiByColumn.get(closes);
    if (byPeriod === undefined) this.rsiByColumn.set(closes, (byPeriod = new Map()));
    // Entries below `period` are never read: marked NaN all the same, so a stale value cannot pass for one.
    const rsi = this.take(closes.length).fill(NaN, 0, period);
    wilderRsi(closes, period, rsi);
    this.rsiSeriesComputed++;
    byPeriod.set(period, rsi);
    return rsi;
  }

  private take(length: number): Float64Array {
    let buffer = this.pool[this.used];
    if (buffer === undefined || buffer.length < length) this.pool[this.used] = buffer = new Float64Array(Math.max(length, 1024));
    this.used++;
    return buffer.subarray(0, length);
  }
}

/**
 * wilderRsi(closes, p, null) and wilderRsi(closes, q, null) at once, for closes at least
 * max(p, q) + 1 long (readable, valid periods): each chain runs exactly wilderRsi's operations in
 * its order, so each value is wilderRsi's to the bit; in one loop the two chains of divisions
 * overlap instead of waiting on each other (about twice as fast as two passes).
 */
export function wilderRsiPair(closes: ArrayLike<number>, p: number, q: number): [number, number] {
  const low = Math.min(p, q);
  const high = Math.max(p, q);
  let lowGains = 0;
  let lowLosses = 0;
  for (let i = 1; i <= low; i++) {
    const change = closes[i]! - closes[i - 1]!;
    if (change > 0) lowGains += change;
    else lowLosses -= change;
  }
  let highGains = 0;
  let highLosses = 0;
  for (let i = 1; i <= high; i++) {
    const change = closes[i]! - closes[i - 1]!;
    if (change > 0) highGains += change;
    else highLosses -= change;
  }
  let lowGain = lowGains / low;
  let lowLoss = lowLosses / low;
  let highGain = highGains / high;
  let highLoss = highLosses / high;
  for (let i = low + 1; i <= high && i < closes.length; i++) {
    const change = closes[i]! - closes[i - 1]!;
    lowGain = (lowGain * (low - 1) + (change > 0 ? change : 0)) / low;
    lowLoss = (lowLoss * (low - 1) + (change < 0 ? -change : 0)) / low;
  }
  for (let i = high + 1; i < closes.length; i++) {
    const change = closes[i]! - closes[i - 1]!;
    const up = change > 0 ? change : 0;
    const down = change < 0 ? -change : 0;
    lowGain = (lowGain * (low - 1) + up) / low;
    lowLoss = (lowLoss * (low - 1) + down) / low;
    highGain = (highGain * (high - 1) + up) / high;
    highLoss = (highLoss * (high - 1) + down) / high;
  }
  const lowRsi = lowLoss === 0 ? (lowGain > 0 ? 100 : 50) : 100 - 100 / (1 + lowGain / lowLoss);
  const highRsi = highLoss === 0 ? (highGain > 0 ? 100 : 50) : 100 - 100 / (1 + highGain / highLoss);
  return p <= q ? [lowRsi, highRsi] : [highRsi, lowRsi];
}

const READABLE_KNOWN = 1;
const READABLE = 2;
const WITHIN_KNOWN = 4;
const WITHIN = 8;

/** The columns of the call in progress, when its caller shares some (computeOnRows and seriesOnRows set it for one synchronous call). */
let shared: CloseColumns | undefined;

function closes(rows: Float64Array, start: number, length: number): Float64Array {
  return shared !== undefined ? shared.of(rows, start, length) : readField(rows, start, CLOSE, scratchColumn(0, length));
}

/** allReadable of a column closes() gave, once per shared column. */
function readableCloses(column: Float64Array): boolean {
  return shared !== undefined ? shared.readable(column) : allReadable(column);
}

/** withinMagnitude of a column closes() gave, once per shared column. */
function closesWithin(column: Float64Array): boolean {
  return shared !== undefined ? shared.within(column) : withinMagnitude(column);
}

function latestRSIOnRows(rows: Float64Array, start: number, length: number, period: number = 14): number | null {
  if (!isValidPeriod(period) || length < period + 1) return null;
  const column = closes(rows, start, length);
  if (!readableCloses(column)) return null;
  return shared !== undefined ? shared.latestRsi(column, period) : wilderRsi(column, period, null);
}

function rsiOnRows(rows: Float64Array, start: number, length: number, period: number = 14): Series | null {
  if (!isValidPeriod(period) || length < period + 1) return null;
  const column = closes(rows, start, length);
  if (!readableCloses(column)) return null;
  const out = nullSeries(length);
  wilderRsi(column, period, out);
  return out;
}

function emaSeriesOnRows(rows: Float64Array, start: number, length: number, period: number): Series {
  return emaOfSeries(closes(rows, start, length), period);
}

function latestEMAOnRows(rows: Float64Array, start: number, length: number, period: number): number | null {
  return latestEma(closes(rows, start, length), period);
}

/** calculateMASeries: closesOf's series (null where a close is unreadable) and its SMA per position. */
function maSeriesOnRows(rows: Float64Array, start: number, length: number, period: number): Series {
  if (!isValidPeriod(period) || length < period) return nullSeries(length);
  const series: Series = new Array(length);
  for (let i = 0, o = start * F + CLOSE; i < length; i++, o += F) {
    const close = rows[o]!;
    series[i] = Number.isFinite(close) ? close : null;
  }
  return smaOfSeries(series, period);
}

function macdValuesOnRows(
  rows: Float64Array,
  start: number,
  length: number,
  shortPeriod: number = 12,
  longPeriod: number = 26,
  signalPeriod: number = 9,
): { macdLine: Series; signalLine: Series; histogram: Series } {
  const macdLine = nullSeries(length);
  const histogram = nullSeries(length);
  if (length < Math.max(shortPeriod, longPeriod, signalPeriod)) return { macdLine, signalLine: nullSeries(length), histogram };
  const column = closes(rows, start, length);
  return macdOfEmas(emaOfSeries(column, shortPeriod), emaOfSeries(column, longPeriod), signalPeriod, macdLine, histogram);
}

/** calculateMA's and calculateAvgVolume's mean of one field over the last `period` candles; null when short or unreadable. */
function meanOfLast(rows: Float64Array, start: number, length: number, field: number, period: number): number | null {
  if (!isValidPeriod(period) || length < period) return null;
  let sum = 0;
  for (let i = length - period, o = (start + i) * F + field; i < length; i++, o += F) {
    const value = rows[o]!;
    if (!Number.isFinite(value)) return null;
    sum += value;
  }
  return sum / period;
}

/** getHighestHigh's and getLowestLow's extreme of one field over the last `period` candles; null when short or unreadable. */
function extremeOfLast(rows: Float64Array, start: number, length: number, field: number, period: number, highest: boolean): number | null {
  if (!isValidPeriod(period) || length < period) return null;
  let extreme = highest ? -Infinity : Infinity;
  for (let i = length - period, o = (start + i) * F + field; i < length; i++, o += F) {
    const value = rows[o]!;
    if (!Number.isFinite(value)) return null;
    if (highest ? value > extreme : value < extreme) extreme = value;
  }
  return extreme;
}

function bollingerOnRows(
  rows: Float64Array,
  start: number,
  length: number,
  period: number = 20,
  stdDev: number = 2,
): { upper: number | null; middle: number | null; lower: number | null } {
  if (!isValidPeriod(period) || length < period) return { upper: null, middle: null, lower: null };
  return latestBollingerBands(closes(rows, start, length), period, stdDev);
}

/** The web app's calculateADX: true ranges and closes of the last `period` candles. */
function volatilityADXOnRows(rows: Float64Array, start: number, length: number, period: number = 14): number {
  if (!isValidPeriod(period) || length < 2 * period) return 0;
  let trSum = 0;
  let closeSum = 0;
  for (let i = length - period, o = (start + i) * F; i < length; i++, o += F) {
    const high = rows[o + HIGH]!;
    const low = rows[o + LOW]!;
    const close = rows[o + CLOSE]!;
    const previousClose = rows[o - F + CLOSE]!;
    if (!Number.isFinite(high) || !Number.isFinite(low) || !Number.isFinite(close) || !Number.isFinite(previousClose)) return 0;
    trSum += trueRange(high, low, previousClose);
    closeSum += close;
  }
  return volatilityIndex(trSum, closeSum, period);
}

/** getLatestVWAP: calculateVWAPSeries's last value by its arithmetic, skipping unreadable candles. */
function latestVWAPOnRows(rows: Float64Array, start: number, length: number, anchorPeriod?: number): number | null {
  if (length === 0) return null;
  let priceVolume = 0;
  let volumeSum = 0;
  let latest: number | null = null;
  for (let i = anchorStart(anchorPeriod, length), o = (start + i) * F; i < length; i++, o += F) {
    const high = rows[o + HIGH]!;
    const low = rows[o + LOW]!;
    const close = rows[o + CLOSE]!;
    const volume = rows[o + VOLUME]!;
    if (!Number.isFinite(high) || !Number.isFinite(low) || !Number.isFinite(close) || !Number.isFinite(volume)) continue;
    priceVolume += ((high + low + close) / 3) * volume;
    volumeSum += volume;
    if (volumeSum > 0) latest = priceVolume / volumeSum;
  }
  return latest;
}

/**
 * getLatestMACD: calculateMACDValues's three series by its arithmetic (emaOfSeries of the closes,
 * their difference, emaOfSeries of that), held in NaN-marked scratch columns instead of null
 * series, and their latest values. Periods other than positive integers are left to the library.
 */
function latestMACDOnRows(
  rows: Float64Array,
  start: number,
  length: number,
  shortPeriod: number = 12,
  longPeriod: number = 26,
  signalPeriod: number = 9,
): { macd: number | null; signal: number | null; histogram: number | null } | typeof NOT_COVERED {
  if (!isValidPeriod(shortPeriod) || !isValidPeriod(longPeriod) || !isValidPeriod(signalPeriod)) return NOT_COVERED;
  if (length < Math.max(shortPeriod, longPeriod, signalPeriod)) return { macd: null, signal: null, histogram: null };
  const column = closes(rows, start, length);
  if (!closesWithin(column)) return NOT_COVERED;
  const short = scratchColumn(1, length).fill(NaN);
  const long = scratchColumn(2, length).fill(NaN);
  const macdLine = scratchColumn(3, length).fill(NaN);
  const signalLine = scratchColumn(4, length).fill(NaN);
  emaInto(column, shortPeriod, short);
  emaInto(column, longPeriod, long);
  for (let i = 0; i < length; i++) if (short[i] === short[i] && long[i] === long[i]) macdLine[i] = short[i]! - long[i]!;
  emaInto(macdLine, signalPeriod, signalLine);
  let macd: number | null = null;
  let signal: number | null = null;
  let histogram: number | null = null;
  for (let i = length - 1; i >= 0 && (macd === null || signal === null || histogram === null); i--) {
    const m = macdLine[i]!;
    const s = signalLine[i]!;
    if (macd === null && m === m) macd = m;
    if (signal === null && s === s) signal = s;
    if (histogram === null && m === m && s === s) histogram = m - s;
  }
  return { macd, signal, histogram };
}

function latestStochRSIOnRows(
  rows: Float64Array,
  start: number,
  length: number,
  rsiPeriod: number = 14,
  stochPeriod: number = 14,
  kPeriod: number = 3,
  dPeriod: number = 3,
): { k: number; d: number } | null {
  if (!isValidPeriod(stochPeriod) || !isValidPeriod(kPeriod) || !isValidPeriod(dPeriod)) return null;
  if (!isValidPeriod(rsiPeriod) || length < rsiPeriod + 1) return null;
  const column = closes(rows, start, length);
  // With shared columns, on the RSI series getLatestRSI of the same closes shares.
  return latestStochRSI(column, rsiPeriod, stochPeriod, kPeriod, dPeriod, shared?.stochRsiOf);
}

/** calculateHighVolumeNodes: the price range and the volume spread of the last `lookback` candles, then the library's node picking. */
function volumeNodesOnRows(rows: Float64Array, start: number, length: number, options: HVNOptions = {}): VolumeNode[] {
  const { bins, threshold, lookback, minStrength, peakTolerance } = hvnSettings(options);
  if (length === 0) return [];
  const first = Math.max(0, length - lookback);
  let minPrice = Infinity;
  let maxPrice = -Infinity;
  for (let i = first, o = (start + i) * F; i < length; i++, o += F) {
    if (rows[o + LOW]! < minPrice) minPrice = rows[o + LOW]!;
    if (rows[o + HIGH]! > maxPrice) maxPrice = rows[o + HIGH]!;
  }
  if (!Number.isFinite(minPrice) || !Number.isFinite(maxPrice) || minPrice >= maxPrice) return [];
  const binSize = (maxPrice - minPrice) / bins;
  const volumeByBin: number[] = new Array(bins).fill(0);
  const buyByBin: number[] = new Array(bins).fill(0);
  for (let i = first, o = (start + i) * F; i < length; i++, o += F) {
    const open = rows[o + OPEN]!;
    const high = rows[o + HIGH]!;
    const low = rows[o + LOW]!;
    const close = rows[o + CLOSE]!;
    const volume = rows[o + VOLUME]!;
    if (!Number.isFinite(open) || !Number.isFinite(high) || !Number.isFinite(low) || !Number.isFinite(close) || !Number.isFinite(volume)) continue;
    spreadVolume(volumeByBin, buyByBin, minPrice, binSize, open, high, low, close, volume, rows[o + TAKER_BUY_VOLUME]!);
  }
  return volumeNodes(volumeByBin, buyByBin, minPrice, binSize, threshold, minStrength, peakTolerance);
}

type OnRows = (rows: Float64Array, start: number, length: number, ...args: never[]) => unknown;

/** Each library function covered, with its counterpart on rows: a version is covered for a name exactly when it answers it with that function. */
const ON_ROWS = new Map<HelperFunction, OnRows>([
  [getLatestRSI, latestRSIOnRows],
  [calculateRSI, rsiOnRows],
  [calculateEMASeries, emaSeriesOnRows],
  [calculateMASeries, maSeriesOnRows],
  [calculateMACDValues, macdValuesOnRows],
  [getLatestEMA, latestEMAOnRows],
  [calculateMA, (rows, start, length, period: number) => meanOfLast(rows, start, length, CLOSE, period)],
  [calculateAvgVolume, (rows, start, length, period: number) => meanOfLast(rows, start, length, VOLUME, period)],
  [getHighestHigh, (rows, start, length, period: number) => extremeOfLast(rows, start, length, HIGH, period, true)],
  [getLowestLow, (rows, start, length, period: number) => extremeOfLast(rows, start, length, LOW, period, false)],
  [getLatestBollingerBands, bollingerOnRows],
  [calculateADX, volatilityADXOnRows],
  [getLatestVWAP, latestVWAPOnRows],
  // calculateVWAP reads no argument after the klines; both versions take lastNonNull of the whole series.
  [calculateVWAP, (rows, start, length) => latestVWAPOnRows(rows, start, length) ?? 0],
  [calculateVWAPTextbook, (rows, start, length) => latestVWAPOnRows(rows, start, length)],
  [getLatestMACD, latestMACDOnRows],
  [getLatestStochRSI, latestStochRSIOnRows],
  [calculateHighVolumeNodes, volumeNodesOnRows],
]);

/** By version, the names it answers with one of `counterparts`' library functions, and that function's counterpart. */
function coverage<T>(counterparts: ReadonlyMap<HelperFunction, T>): Map<HelpersVersion, Map<string, T>> {
  return new Map(
    HELPERS_VERSIONS.map((version) => {
      const covered = new Map<string, T>();
      for (const [name, fn] of Object.entries(helperFunctions(version))) {
        const counterpart = counterparts.get(fn);
        if (counterpart !== undefined) covered.set(name, counterpart);
      }
      return [version, covered];
    }),
  );
}

const COVERED = coverage(ON_ROWS);

/**
 * `helper` of `library` on the `length` candles from row `start` of `rows` with the arguments the
 * memo parsed: exactly what the library function returns on the equivalent kline array, or
 * NOT_COVERED when this module does not answer that call. With `columns`, the closes are read from
 * (and left in) that cache instead of being extracted again.
 */
export function computeOnRows(
  library: HelpersVersion,
  helper: string,
  rows: Float64Array,
  start: number,
  length: number,
  args: readonly unknown[],
  columns?: CloseColumns,
): unknown {
  const onRows = COVERED.get(library)?.get(helper);
  if (onRows === undefined) return NOT_COVERED;
  shared = columns;
  try {
    return onRows(rows, start, length, ...(args as never[]));
  } finally {
    shared = undefined;
  }
}

type SeriesOnRows = (into: Float64Array | undefined, rows: Float64Array, start: number, length: number, ...args: never[]) => Float64Array | null | typeof NOT_COVERED;

/**
 * A column as long as the series, every entry NaN (a null): the first `length` entries of `into`, or
 * a fresh array. `nulls`: only the entries below it are filled, for a caller that writes every
 * entry from there on.
 */
function nullColumn(length: number, into: Float64Array | undefined, nulls = length): Float64Array {
  return (into === undefined ? new Float64Array(length) : into.length === length ? into : into.subarray(0, length)).fill(NaN, 0, nulls);
}

function emaSeriesColumn(into: Float64Array | undefined, rows: Float64Array, start: number, length: number, period: number): Float64Array | typeof NOT_COVERED {
  if (!isValidPeriod(period) || length < period) return nullColumn(length, into);
  const column = closes(rows, start, length);
  if (!closesWithin(column)) return NOT_COVERED;
  // Every close readable: emaInto seeds on the first `period` and writes every entry from period - 1 on.
  const out = nullColumn(length, into, readableCloses(column) ? period - 1 : length);
  emaInto(column, period, out);
  return out;
}

function rsiSeriesColumn(
  into: Float64Array | undefined,
  rows: Float64Array,
  start: number,
  length: number,
  period: number = 14,
): Float64Array | null | typeof NOT_COVERED {
  if (!isValidPeriod(period) || length < period + 1) return null;
  const column = closes(rows, start, length);
  if (!readableCloses(column)) return null;
  if (!closesWithin(column)) return NOT_COVERED;
  // wilderRsi writes every entry from `period` on.
  const out = nullColumn(length, into, period);
  wilderRsi(column, period, out);
  return out;
}

const SERIES_ON_ROWS = new Map<HelperFunction, SeriesOnRows>([
  [calculateEMASeries, emaSeriesColumn],
  [calculateRSI, rsiSeriesColumn],
]);

const SERIES_COVERED = coverage(SERIES_ON_ROWS);

/** Whether seriesOnRows answers `helper` of `library` at all (else it is NOT_COVERED whatever the arguments). */
export function seriesCovered(library: HelpersVersion, helper: string): boolean {
  return SERIES_COVERED.get(library)?.has(helper) === true;
}

/**
 * A series helper's answer as a column instead of an array of numbers and nulls: a Float64Array as
 * long as the library's array with NaN where it holds null, null where the library returns null,
 * or NOT_COVERED. For a consumer that keeps series as NaN-marked columns anyway (the memo's packed
 * series, a results board), it saves boxing every number of the series and then unboxing it again.
 * The column is fresh, or the first `length` entries of `into` when given (at least that long), so
 * a board can have it written in place; after NOT_COVERED, `into` may hold anything. `columns`:
 * as for computeOnRows. Covers calculateEMASeries and calculateRSI.
 */
export function seriesOnRows(
  library: HelpersVersion,
  helper: string,
  rows: Float64Array,
  start: number,
  length: number,
  args: readonly unknown[],
  into?: Float64Array,
  columns?: CloseColumns,
): Float64Array | null | typeof NOT_COVERED {
  const onRows = SERIES_COVERED.get(library)?.get(helper);
  if (onRows === undefined) return NOT_COVERED;
  if (into !== undefined && into.length < length) throw new RangeError(`seriesOnRows: ${length} entries do not fit into ${into.length}`);
  shared = columns;
  try {
    return onRows(into, rows, start, length, ...(args as never[]));
  } finally {
    shared = undefined;
  }
}
