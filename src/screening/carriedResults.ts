// Helper results a screening thread keeps from one tick to the next for series whose rows did not change, so a higher timeframe's results are computed once per candle of that timeframe instead of once per tick.
import { CANDLE_ROW_FIELDS as ROW_FIELDS } from '../domain.ts';
import type { SeriesRows } from './sharedSeries.ts';

/** The default bound on what is carried (see CarriedResults). */
export const DEFAULT_CARRIED_BYTES = 8 * 1024 * 1024;
/**
 * What a stored result costs beyond its numbers (map entry, record, key), counted against the bound:
 * with it the count comes within ~10 % of the heap measured (3,200 results, mostly numbers: +1.0 MB).
 */
const ENTRY_OVERHEAD = 200;
/**
 * A series whose rows changed on this many ticks in a row is one the ticks follow (1m under 1m
 * ticks): its results would be thrown away at the next tick, so they are not kept (no copy, no memory).
 */
const CHANGING_TICKS = 2;

/** What get() answers when nothing is carried for the key. */
export const NOT_CARRIED: unique symbol = Symbol('not carried');

interface Carried {
  value: unknown;
  bytes: number;
  /** For a result kept under its parsed arguments' identity (getParsed): the rest of what names the call. */
  call?: { library: string; helper: string; offset: number; length: number };
  /** The last tick that read or stored it: results no tick read (a forgotten column, a trader gone) are dropped. */
  usedTick: number;
}

interface SeriesCarry {
  /** What proves the rows are the ones the results were computed from (see sameRows). */
  generation: number;
  start: number;
  length: number;
  firstOpenTime: number;
  lastOpenTime: number;
  /** Ticks in a row on which the rows differed from the tick before (0: unchanged). */
  changedRun: number;
  seenTick: number;
  /** Results read or stored on `seenTick`, each counted once: when all of them were, beginTick has nothing to drop here. */
  usedCount: number;
  /** By key string, or by the parsed argument list itself (see getParsed). */
  results: Map<string | readonly unknown[], Carried>;
}

/**
 * Results kept across ticks, per series, valid while its rows are the same. Verdicts rest on closed
 * candles only, so a trader on 1m reading 5m, 15m or 1h sees those series unchanged on 4 of 5, 14
 * of 15, 59 of 60 ticks; TickMemo (one per tick) asks here before computing.
 *
 * The rows are the same when the buffer id, its generation, the first row and the length are: the
 * market store never rewrites a row once handed out (anything but an append moves the rows to a
 * new buffer, a new generation), and SharedSeriesStore's own copy takes a new generation whenever it
 * rewrites rows in place. Its appends write past the rows handed out, or move them to the front of
 * the buffer, which changes the first and last open times; those are checked too, so neither path
 * can hand back a result of other rows at an equal slot.
 *
 * Values are kept as the memo encoded them and are never handed out as they are: the results board
 * copies them into its buffer, and a callback's answer is copied into the isolate. Bounded by
 * `maxBytes` (results beyond it are computed each tick, as before); results of a series that moved
 * on go at the first tick that sees it, results no tick read at the next tick.
 */
export class CarriedResults {
  private readonly series = new Map<number, SeriesCarry>();
  private tick = 0;
  private total = 0;
  private readonly maxBytes: number;
  hits = 0;

  constructor(maxBytes = DEFAULT_CARRIED_BYTES) {
    this.maxBytes = maxBytes;
  }

  /** Bytes of the results carried (with ENTRY_OVERHEAD per result). */
  get bytes(): number {
    return this.total;
  }

  /** Results carried (for tests and stats). */
  get size(): number {
    let count = 0;
    for (const carry of this.series.values()) count += carry.results.size;
    return count;
  }

  /** A new tick: results the last tick did not read go, and series it did not see with them. */
  beginTick(): void {
    const last = this.tick;
    this.tick++;
    for (const [id, carry] of this.series) {
      if (carry.seenTick < last) {
        this.dropResults(carry);
        this.series.delete(id);
        continue;
      }
      // Every result was read or stored last tick (the usual case): no scan.
      if (carry.seenTick === last && carry.usedCount === carry.results.size) continue;
      for (const [key, carried] of carry.results) {
        if (carried.usedTick >= last) continue;
        carry.results.delete(key);
        this.total -= carried.bytes;
      }
    }
  }

  /**
   * Whether results of `entry` are worth keeping this tick (its rows were unchanged on one of the
   * last ticks: see CHANGING_TICKS); checks the rows first, so a series that moved on loses what
   * it carried. Call before get() and put() for the series.
   */
  keeps(entry: SeriesRows): boolean {
    let carry = this.series.get(entry.id);
    if (carry === undefined) {
      carry = { generation: 0, start: 0, length: 0, firstOpenTime: 0, lastOpenTime: 0, changedRun: 0, seenTick: -1, usedCount: 0, results: new Map() };
      this.series.set(entry.id, carry);
      this.take(carry, entry);
      carry.changedRun = 1;
    } else if (carry.seenTick !== this.tick) {
      if (sameRows(carry, entry)) carry.changedRun = 0;
      else {
        this.dropResults(carry);
        this.take(carry, entry);
        carry.changedRun = carry.seenTick === this.tick - 1 ? carry.changedRun + 1 : 1;
      }
    }
    if (carry.seenTick !== this.tick) carry.usedCount = 0;
    carry.seenTick = this.tick;
    return carry.changedRun < CHANGING_TICKS;
  }

  /** The result carried for `key` on `entry` (which keeps() has checked this tick), or NOT_CARRIED. */
  get(entry: SeriesRows, key: string): unknown {
    const carry = this.series.get(entry.id);
    const carried = carry?.results.get(key);
    if (carried === undefined) return NOT_CARRIED;
    this.use(carry!, carried);
    this.hits++;
    return carried.value;
  }

  /** Keep `value` (which nobody else holds or changes) for `key` on `entry`, unless the bound is reached. */
  put(entry: SeriesRows, key: string, value: unknown): void {
    this.keep(entry, key, value, ENTRY_OVERHEAD + key.length * 2, undefined);
  }

  /**
   * get() for the results board's calls, by the identity of their parsed argument list (each of
   * its columns keeps one for good): no key to build per symbol. The library, helper and range are
   * checked too, so an argument list used for another call answers nothing.
   */
  getParsed(entry: SeriesRows, args: readonly unknown[], library: string, helper: string, offset = -1, length = -1): unknown {
    const carry = this.series.get(entry.id);
    const carried = carry?.results.get(args);
    const call = carried?.call;
    if (call === undefined || call.library !== library || call.helper !== helper || call.offset !== offset || call.length !== length) return NOT_CARRIED;
    this.use(carry!, carried!);
    this.hits++;
    return carried!.value;
  }

  /** put() for getParsed. */
  putParsed(entry: SeriesRows, args: readonly unknown[], library: string, helper: string, offset: number | undefined, length: number | undefined, value: unknown): void {
    this.keep(entry, args, value, ENTRY_OVERHEAD + 48, { library, helper, offset: offset ?? -1, length: length ?? -1 });
  }

  private keep(entry: SeriesRows, key: string | readonly unknown[], value: unknown, overhead: number, call: Carried['call']): void {
    const carry = this.series.get(entry.id);
    if (carry === undefined || carry.seenTick !== this.tick || carry.results.has(key)) return;
    const bytes = overhead + sizeOf(value, 0);
    if (this.total + bytes > this.maxBytes) return;
    carry.results.set(key, { value, bytes, usedTick: this.tick, call });
    carry.usedCount++;
    this.total += bytes;
  }

  /** `carried` (of `carry`, seen this tick) is read on this tick. */
  private use(carry: SeriesCarry, carried: Carried): void {
    if (carried.usedTick === this.tick) return;
    carried.usedTick = this.tick;
    if (carry.seenTick === this.tick) carry.usedCount++;
  }

  private take(carry: SeriesCarry, entry: SeriesRows): void {
    carry.generation = entry.generation;
    carry.start = entry.start;
    carry.length = entry.length;
    carry.firstOpenTime = openTimeAt(entry, 0);
    carry.lastOpenTime = openTimeAt(entry, entry.length - 1);
  }

  private dropResults(carry: SeriesCarry): void {
    for (const carried of carry.results.values()) this.total -= carried.bytes;
    carry.results.clear();
  }
}

function openTimeAt(entry: SeriesRows, index: number): number {
  return index < 0 ? -1 : entry.rows[(entry.start + index) * ROW_FIELDS]!;
}

function sameRows(carry: SeriesCarry, entry: SeriesRows): boolean {
  return (
    carry.generation === entry.generation &&
    carry.start === entry.start &&
    carry.length === entry.length &&
    carry.firstOpenTime === openTimeAt(entry, 0) &&
    carry.lastOpenTime === openTimeAt(entry, entry.length - 1)
  );
}

/** Bytes an encoded result holds, roughly (a number 16 as V8 boxes it, a packed series its buffer, 32 per object or array beside). */
function sizeOf(value: unknown, depth: number): number {
  if (value === null || typeof value !== 'object') return 16;
  if (ArrayBuffer.isView(value)) return value.byteLength;
  if (depth > 8) return 32;
  let bytes = 32;
  for (const field of Object.values(value)) bytes += 8 + sizeOf(field, depth + 1);
  return bytes;
}
