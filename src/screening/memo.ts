// One tick's shared work on a thread: the series table the isolates index into, and helper results computed once for every trader.
import type { HelpersVersion } from '../domain.ts';
import { helperFunctions, HELPERS_VERSIONS, KLINE_HELPERS, type Kline } from './helpers.ts';
import { CloseColumns, computeOnRows, NOT_COVERED, seriesCovered, seriesOnRows } from './helpers/columnar.ts';
import type { SeriesRows, SeriesTable } from './sharedSeries.ts';
import { CANDLE_ROW_FIELDS as ROW_FIELDS } from '../domain.ts';
import type { SandboxHost } from './sandbox.ts';
import { NOT_CARRIED, type CarriedResults } from './carriedResults.ts';

/** Numbers beyond this are not memoized (a huge period or bin count could make the host, which has no memory limit, work hard). */
const MAX_NUMERIC_ARGUMENT = 100_000;
const MAX_HVN_BINS = 1000;
const MAX_ENTRIES = 200_000;

/**
 * Serves the isolates of one thread during one tick, a few symbols at a time. Filters reach it only through the runtime's two
 * callbacks, with arguments copied out of an untrusted heap, so every argument is checked here; a
 * result is computed by the trusted library from the thread's own copy of the data and handed back
 * as a copy, so no trader can poison what another one sees.
 */
export class TickMemo implements SandboxHost {
  private readonly table: SeriesTable;
  private readonly scratch: KlineScratch;
  /** This symbol's klines by series id, and by `id@offset:length` for ranges of a series. */
  private readonly klines = new Map<string, Kline[]>();
  private readonly results = new Map<string, unknown>();
  /** The close columns the columnar helpers extracted for these symbols, shared by their calls. */
  private readonly columns = new CloseColumns();
  /** Results kept from earlier ticks for series whose rows did not change (the thread's, across its memos). */
  private readonly carried: CarriedResults | undefined;
  hits = 0;
  misses = 0;

  /** One memo per tick; `carried`, when given, is the thread's and this memo's tick begins for it here. */
  constructor(table: SeriesTable, scratch: KlineScratch, carried?: CarriedResults) {
    this.table = table;
    this.scratch = scratch;
    this.carried = carried;
    carried?.beginTick();
  }

  /** The thread moves on to the next symbols (a batch of them): what was built for the previous ones is no longer needed. */
  nextSymbol(): void {
    this.klines.clear();
    this.scratch.release();
    this.columns.release();
    this.results.clear();
  }

  attach(seriesId: unknown): SharedArrayBuffer | undefined {
    return this.entry(seriesId)?.rows.buffer as SharedArrayBuffer | undefined;
  }

  memo(library: HelpersVersion, seriesId: unknown, helper: unknown, argsKey: unknown, offset?: unknown, length?: unknown): unknown {
    return this.answer(library, seriesId, helper, argsKey, offset, length);
  }

  /**
   * memo() for the results board, with the arguments of a key this memo accepted before already
   * parsed (no parse per symbol). The board asks each call once per batch (its columns are distinct
   * calls), before any trader runs on the batch, so its answers are not looked up or kept under a
   * key string here: no key is built per symbol. The board hands back through remember() the
   * results it could not write, for the callbacks that will ask for them.
   */
  memoParsed(library: HelpersVersion, seriesId: number, helper: string, argsKey: string, args: unknown[], offset?: number, length?: number): unknown {
    const entry = this.entry(seriesId);
    if (!entry || !KLINE_HELPERS.has(helper) || !HELPERS_VERSIONS.includes(library)) return undefined;
    const range = rangeOf(entry, offset, length);
    if (range === null) return undefined;
    // Kept from an earlier tick: found by the column's own argument list.
    const carried = this.carried;
    const carries = carried !== undefined && carried.keeps(entry);
    if (carries) {
      const kept = carried!.getParsed(entry, args, library, helper, offset, length);
      if (kept !== NOT_CARRIED) {
        this.hits++;
        return kept;
      }
    }
    this.misses++;
    let result: unknown;
    try {
      result = this.compute(library, entry, helper, args, range.offset, range.length, range.whole);
    } catch {
      return undefined;
    }
    if (carries) carried!.putParsed(entry, args, library, helper, offset, length, result);
    return result;
  }

  /**
   * A result memoParsed answered that the board could not hold on this batch (no room, a value it
   * cannot encode): kept for the callbacks that will ask for it, as memo() keeps what it computes.
   */
  remember(library: HelpersVersion, seriesId: number, helper: string, argsKey: string, offset: number | undefined, length: number | undefined, result: unknown): void {
    const entry = this.entry(seriesId);
    if (!entry || result === undefined) return;
    const range = rangeOf(entry, offset, length);
    if (range === null || this.results.size >= MAX_ENTRIES) return;
    this.results.set(`${library}|${range.whole ? String(entry.id) : `${entry.id}@${range.offset}:${range.length}`}|${helper}|${argsKey}`, result);
  }

  private answer(library: HelpersVersion, seriesId: unknown, helper: unknown, argsKey: unknown, offset?: unknown, length?: unknown): unknown {
    const entry = this.entry(seriesId);
    if (!entry || !HELPERS_VERSIONS.includes(library) || typeof helper !== 'string' || !KLINE_HELPERS.has(helper) || typeof argsKey !== 'string') return undefined;
    const range = rangeOf(entry, offset, length);
    if (range === null) return undefined;
    const seriesKey = range.whole ? String(entry.id) : `${entry.id}@${range.offset}:${range.length}`;
    const key = `${library}|${seriesKey}|${helper}|${argsKey}`;
    // Only keys that parsed are ever stored, so a hit needs no second parse (most calls are hits: every trader after the first).
    const stored = this.results.get(key);
    if (stored !== undefined || this.results.has(key)) {
      this.hits++;
      return stored;
    }
    // Kept from an earlier tick (only keys that parsed are kept, too).
    const carries = this.carried !== undefined && this.carried.keeps(entry);
    if (carries) {
      const carried = this.carried!.get(entry, key);
      if (carried !== NOT_CARRIED) {
        this.hits++;
        if (this.results.size < MAX_ENTRIES) this.results.set(key, carried);
        return carried;
      }
    }
    const args = parseArgsKey(argsKey, helper === 'calculateHighVolumeNodes');
    if (args === null) return undefined;
    this.misses++;
    let result: unknown;
    try {
      result = this.compute(library, entry, helper, args, range.offset, range.length, range.whole);
    } catch {
      return undefined;
    }
    if (this.results.size < MAX_ENTRIES) this.results.set(key, result);
    if (carries) this.carried!.put(entry, key, result);
    return result;
  }

  /** A helper's result on `length` candles from `offset` of `entry`, encoded (see encodeResult); throws what the helper throws. */
  private compute(library: HelpersVersion, entry: SeriesRows, helper: string, args: unknown[], offset: number, length: number, whole: boolean): unknown {
    // Series the memo keeps packed anyway come as NaN-marked columns (no boxed numbers on the way).
    if (length >= PACKED_SERIES_MIN && seriesCovered(library, helper)) {
      const column = seriesOnRows(library, helper, entry.rows, entry.start + offset, length, args, undefined, this.columns);
      if (column !== NOT_COVERED) return column === null ? null : { $series: column };
    }
    // Most calls are answered from the rows in place (fresh values: encoded in place); the klines are built only for the others.
    const columnar = computeOnRows(library, helper, entry.rows, entry.start + offset, length, args, this.columns);
    if (columnar !== NOT_COVERED) return encodeFresh(columnar);
    const fn = helperFunctions(library)[helper as keyof ReturnType<typeof helperFunctions>] as (klines: Kline[], ...rest: unknown[]) => unknown;
    return encodeResult(fn(this.klinesOf(entry, { offset, length, whole }, whole ? String(entry.id) : `${entry.id}@${offset}:${length}`), ...args));
  }

  /**
   * For the results board: a series helper's answer on `length` candles from `offset` of a series
   * written as a NaN-marked column into `into` (see seriesOnRows), sharing this batch's close
   * columns; null when the library answers null, NOT_COVERED when the call is not a covered series
   * (or its arguments are off the grammar), then `into` may hold anything. `args` come parsed from a
   * key this memo accepted before.
   */
  seriesInto(library: HelpersVersion, seriesId: number, helper: string, args: readonly unknown[], offset: number, length: number, into: Float64Array): Float64Array | null | typeof NOT_COVERED {
    const entry = this.entry(seriesId);
    if (!entry || offset < 0 || length <= 0 || offset + length > entry.length || !seriesCovered(library, helper)) return NOT_COVERED;
    // Kept from an earlier tick (found by the column's own argument list, as memoParsed finds its results, and kept as
    // the memo encodes a series): its copy into `into` is all this call costs (and all the caller charges).
    const carried = this.carried;
    const carries = carried !== undefined && carried.keeps(entry);
    if (carries) {
      const kept = carried!.getParsed(entry, args, library, helper, offset, length);
      if (kept === null) return null;
      const column = packedSeriesOf(kept);
      if (column !== null && column.length <= into.length) {
        into.set(column);
        return column.length === into.length ? into : into.subarray(0, column.length);
      }
    }
    let written: Float64Array | null | typeof NOT_COVERED;
    try {
      written = seriesOnRows(library, helper, entry.rows, entry.start + offset, length, args, into, this.columns);
    } catch {
      return NOT_COVERED;
    }
    if (carries && written !== NOT_COVERED) carried!.putParsed(entry, args, library, helper, offset, length, written === null ? null : { $series: written.slice() });
    return written;
  }

  /** The series (or a range of it) as klines, filled once per symbol and shared by every helper and trader of the thread. */
  private klinesOf(entry: SeriesRows, range: CandleRange, seriesKey: string): Kline[] {
    let whole = this.klines.get(String(entry.id));
    if (!whole) {
      whole = this.scratch.fill(entry);
      this.klines.set(String(entry.id), whole);
    }
    if (range.whole) return whole;
    let part = this.klines.get(seriesKey);
    if (!part) {
      part = whole.slice(range.offset, range.offset + range.length);
      this.klines.set(seriesKey, part);
    }
    return part;
  }

  private entry(seriesId: unknown): SeriesRows | undefined {
    if (typeof seriesId !== 'number' || !Number.isInteger(seriesId) || seriesId < 0) return undefined;
    return this.table.rows(seriesId);
  }
}

/**
 * Kline arrays reused from symbol to symbol: building 500 fresh arrays per series and symbol made
 * most of a thread's garbage, and it lived just long enough (every trader of the symbol) to reach
 * the old generation. Safe to reuse because the trusted helpers never keep or return their input,
 * and encodeResult copies whatever they return.
 */
export class KlineScratch {
  private readonly sets: number[][][] = [];
  private used = 0;

  /** Klines of `entry` in the next free set, valid until release(). */
  fill(entry: SeriesRows): Kline[] {
    let klines = this.sets[this.used];
    if (!klines) this.sets.push((klines = []));
    this.used++;
    const { rows, start, length } = entry;
    if (klines.length > length) klines.length = length;
    while (klines.length < length) klines.push(new Array<number>(12).fill(0));
    for (let i = 0; i < length; i++) {
      const o = (start + i) * ROW_FIELDS;
      const k = klines[i]!;
      k[0] = rows[o]!;
      k[1] = rows[o + 1]!;
      k[2] = rows[o + 2]!;
      k[3] = rows[o + 3]!;
      k[4] = rows[o + 4]!;
      k[5] = rows[o + 5]!;
      k[6] = rows[o + 6]!;
      k[7] = rows[o + 7]!;
      k[8] = rows[o + 8]!;
      k[9] = rows[o + 9]!;
      k[10] = rows[o + 10]!;
    }
    return klines;
  }

  /** Every set is free again (the next symbol). */
  release(): void {
    this.used = 0;
  }
}

interface CandleRange {
  offset: number;
  length: number;
  whole: boolean;
}

/** The candles a call names: the whole series when both are omitted, else a range that must lie inside it. */
function rangeOf(entry: SeriesRows, offset: unknown, length: unknown): CandleRange | null {
  if (offset === undefined && length === undefined) return { offset: 0, length: entry.length, whole: true };
  if (!Number.isInteger(offset) || !Number.isInteger(length)) return null;
  const from = offset as number;
  const count = length as number;
  if (from < 0 || count < 0 || from + count > entry.length) return null;
  return { offset: from, length: count, whole: from === 0 && count === entry.length };
}

const HVN_OPTIONS = new Set(['bins', 'threshold', 'lookback', 'minStrength', 'peakTolerance']);
const WORD = /^[A-Za-z0-9_.-]{0,64}$/;

/**
 * The helper arguments the runtime encoded (installRuntime's encodeArgs), or null when the key is
 * off its grammar or names values the host should not compute with (it has no memory limit): the
 * runtime then runs the helper inside the isolate instead. The key itself is the memo key, so equal
 * arguments always share a result.
 */
export function parseArgsKey(argsKey: string, allowOptions: boolean): unknown[] | null {
  if (argsKey === '') return [];
  const parts = argsKey.split('|');
  if (parts.length > 6) return null;
  const args: unknown[] = [];
  for (const part of parts) {
    if (part === 'u') args.push(undefined);
    else if (part === 'n') args.push(null);
    else if (part === 't') args.push(true);
    else if (part === 'f') args.push(false);
    else if (part.startsWith('#')) {
      const value = numberArgument(part.slice(1));
      if (value === null) return null;
      args.push(value);
    } else if (part.startsWith('s') && WORD.test(part.slice(1))) args.push(part.slice(1));
    else if (allowOptions && part.startsWith('{') && part.endsWith('}')) {
      const options: Record<string, number> = {};
      const body = part.slice(1, -1);
      for (const field of body === '' ? [] : body.split(';')) {
        const [name, text, extra] = field.split('=');
        if (name === undefined || text === undefined || extra !== undefined || !HVN_OPTIONS.has(name) || name in options) return null;
        const value = numberArgument(text);
        if (value === null || (name === 'bins' && value > MAX_HVN_BINS)) return null;
        options[name] = value;
      }
      args.push(options);
    } else return null;
  }
  return args;
}

function numberArgument(text: string): number | null {
  if (text === '' || text.length > 32) return null;
  const value = Number(text);
  return Number.isFinite(value) && Math.abs(value) <= MAX_NUMERIC_ARGUMENT ? value : null;
}

/** Series at least this long cross the isolate boundary as a Float64Array: a memcpy instead of a per-element clone. */
const PACKED_SERIES_MIN = 16;

/** The column of a series the memo encoded packed (`{ $series }`), or null when `value` is not one. */
export function packedSeriesOf(value: unknown): Float64Array | null {
  if (value === null || typeof value !== 'object' || !('$series' in value)) return null;
  const packed = (value as { $series: unknown }).$series;
  return packed instanceof Float64Array ? packed : null;
}

/**
 * encodeResult for a value nothing else holds (the columnar helpers build each answer afresh):
 * the same encoded value, but its records and lists are encoded in place instead of copied.
 */
export function encodeFresh(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    if (value.length >= PACKED_SERIES_MIN && value.every((v) => v === null || typeof v === 'number')) return encodeResult(value);
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (item !== null && typeof item === 'object') value[i] = encodeFresh(item);
    }
    return value;
  }
  const record = value as Record<string, unknown>;
  for (const key in record) {
    const field = record[key];
    if (field !== null && typeof field === 'object') record[key] = encodeFresh(field);
  }
  return record;
}

/**
 * A helper result in the form the runtime's `decodeResult` turns back into the original: long
 * arrays of numbers and nulls become `{ $series: Float64Array }` with NaN for null. That mapping is
 * lossless because helpers never return NaN.
 */
export function encodeResult(value: unknown): unknown {
  if (Array.isArray(value)) {
    if (value.length >= PACKED_SERIES_MIN && value.every((v) => v === null || typeof v === 'number')) {
      const packed = new Float64Array(value.length);
      for (let i = 0; i < value.length; i++) packed[i] = value[i] === null ? NaN : (value[i] as number);
      return { $series: packed };
    }
    return value.map(encodeResult);
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value)) out[key] = encodeResult(field);
    return out;
  }
  return value;
}
