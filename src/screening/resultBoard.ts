// A screening thread's results board: the helper results its traders asked for on earlier ticks, computed by the host before they run and read by the isolates from shared memory without a callback.
import type { HelpersVersion, Interval } from '../domain.ts';
import { packedSeriesOf, parseArgsKey, type TickMemo } from './memo.ts';
import { NOT_COVERED, seriesCovered } from './helpers/columnar.ts';
import { seriesKey, type SeriesRows, type SeriesTable } from './sharedSeries.ts';

/**
 * The board's layout in its Float64Array (all offsets in elements). The isolate's reader
 * (runtime/resultBoard.ts) follows the same layout; it learns the three sizes when it connects.
 *
 *   [0]                              epoch: changes whenever the layout or the directory does (-1: a retired buffer)
 *   [2 + 2·id], [3 + 2·id]           series table: 1 + the series' row in this batch (0: not on the board), its length
 *   [cells + column·rows + row]      where a result starts in the data region (0: not on the board)
 *   [data …]                         results, each a value:
 *       1 v          a number
 *       2            null
 *       3 s v…       a record of the directory's shape s (its field names), then each field's value
 *       4 n x…       a series of n numbers and nulls (NaN for null: helpers never return NaN in a series)
 *       5 n v…       a list of n values (node lists, arrays of records)
 *       6 w          the directory's word w (a helper's verdict such as 'bullish')
 */
export const BOARD_HEADER = 2;
const TAG_NUMBER = 1;
const TAG_NULL = 2;
const TAG_RECORD = 3;
const TAG_SERIES = 4;
const TAG_LIST = 5;
const TAG_WORD = 6;

/** Most columns (distinct helper calls) the board learns, and that one trader may add; calls beyond keep the callback. */
const MAX_COLUMNS = 1024;
const MAX_COLUMNS_PER_TRADER = 96;
/** Bounds of a value on the board (records of records of lists… are the callback's). */
const MAX_RECORD_FIELDS = 8;
const MAX_LIST_ITEMS = 1000;
const MAX_DEPTH = 3;
/** Most distinct record shapes and words the directory carries. */
const MAX_SHAPES = 64;
const MAX_WORDS = 64;
/** The data region never shrinks below this many elements (64 kB), nor grows past this many (32 MB). */
const MIN_DATA = 8192;
const MAX_DATA = 4 * 1024 * 1024;
/**
 * Ticks a board keeps the size whole ticks gave it once the thread is back to one batch at a time:
 * every isolate's memory limit makes room for the board, so a board that grows again rebuilds them
 * all (~40 ms each), which a process near its budget going back and forth would pay each time.
 */
const KEEP_WHOLE_TICK_SIZE_TICKS = 60;
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;
const WORD = /^[A-Za-z0-9_.-]{0,64}$/;

/** What an isolate needs to read the board: the epoch it is valid for, the buffer, the sizes, and its library's directory. */
export type BoardConnection = [epoch: number, buffer: SharedArrayBuffer, seriesCap: number, rows: number, columnCap: number, directoryJson: string];

/** One distinct helper call: a helper, its encoded arguments and a range shape, on some intervals, asked for by some traders. */
interface Column {
  index: number;
  library: HelpersVersion;
  helper: string;
  argsKey: string;
  /** `w` for the whole series, else `e<from end>:<end from end>` (see rangeShape). */
  shape: string;
  /** The shape's numbers (-1 for the whole series) and the parsed arguments, so a batch parses nothing. */
  fromEnd: number;
  endFromEnd: number;
  args: unknown[];
  /** The helper's answer is a series the memo can write straight into the board (seriesCovered). */
  series: boolean;
  /** The intervals it was asked on, each with the traders that asked. */
  intervals: Map<string, Set<string>>;
}

interface Layout {
  seriesCap: number;
  rows: number;
  columnCap: number;
  dataCap: number;
}

/**
 * Learns from the memo's callbacks which results each trader asks for, and computes those results
 * for every symbol of a batch before the traders run on it (through the memo, so they are the very
 * values a callback would return). Holds one batch at a time (the board is rewritten per batch), or
 * a whole tick's batches together when the thread runs its traders one after another (beginTick).
 *
 * Only the host writes the board; the isolates' runtime reads it by index on views it never hands
 * to a filter. A result the board does not hold (an unknown call, a full board, a result that is not
 * numbers) still comes through the callback, which teaches the board for the next tick.
 */
export class ResultBoard {
  private readonly columns = new Map<string, Column>();
  private readonly shapes: string[][] = [];
  private readonly shapeIndex = new Map<string, number>();
  /** The shape shapeOf found last (-1: none yet). */
  private lastShape = -1;
  private readonly words: string[] = [];
  private readonly wordIndex = new Map<string, number>();
  private readonly directories = new Map<HelpersVersion, string>();
  private layout: Layout = { seriesCap: 0, rows: 0, columnCap: 0, dataCap: 0 };
  private board: Float64Array;
  private epoch = 1;
  /** The directory changed since the last batch (a column learned or dropped, a record shape seen). */
  private changed = false;
  /** This tick's columns by interval (those a trader of the tick asked for), with the traders of the tick that pay for them. */
  private active = new Map<string, Array<{ column: Column; payers: string[]; ms: number }>>();
  /** Columns each trader asked for (bounded by MAX_COLUMNS_PER_TRADER). */
  private readonly perTrader = new Map<string, number>();
  /** Series ids whose table entries the last batch wrote (cleared by the next, or by the next tick when the board holds a whole tick). */
  private written: number[] = [];
  /** Data elements the largest batch of this tick needed (the next tick's size). */
  private needed = 0;
  private rowsNeeded = 0;
  /** Data elements all of this tick's batches needed together (the next tick's size when it holds a whole tick). */
  private tickNeeded = 0;
  /** This tick's batches stay on the board together (see beginTick), each after the last. */
  private wholeTick = false;
  /** Ticks left during which the board keeps the size whole ticks gave it (KEEP_WHOLE_TICK_SIZE_TICKS). */
  private keepSize = 0;
  /** The series of the interval fill is at, with their rows (reused from batch to batch). */
  private readonly batch: Array<{ series: SeriesRows; row: number }> = [];
  /** Where the next batch writes: its first row, and its first data element (-1: start afresh). */
  private nextRow = 0;
  private nextAt = -1;

  constructor() {
    this.board = this.allocate({ seriesCap: 0, rows: 0, columnCap: 0, dataCap: MIN_DATA });
  }

  /** Bytes of the board's buffer: every isolate holds a view on it, which counts against its memory limit. */
  get bytes(): number {
    return this.board.byteLength;
  }

  /** Columns known (for tests and stats). */
  get size(): number {
    return this.columns.size;
  }

  /**
   * A callback that the board did not answer returned `result` (already encoded by the memo) for
   * `traderId`: from the next batch on, this call is computed ahead for every symbol. Results the
   * board cannot hold (see sizeOf) are not learned.
   */
  learn(traderId: string, library: HelpersVersion, table: SeriesTable, seriesId: unknown, helper: string, argsKey: string, offset: unknown, length: unknown, result: unknown): void {
    if (typeof seriesId !== 'number' || this.sizeOf(result, 0) === 0) return;
    const rows = table.rows(seriesId);
    if (!rows) return;
    const shape = rangeShape(rows.length, offset, length);
    if (shape === null) return;
    const key = `${library}|${helper}|${argsKey}|${shape}`;
    let column = this.columns.get(key);
    let askers = column?.intervals.get(rows.interval);
    if (askers?.has(traderId)) return;
    // Every column costs the host work for every symbol (charged to the traders that asked, see fill): a trader adds a bounded number.
    const asked = this.perTrader.get(traderId) ?? 0;
    if (asked >= MAX_COLUMNS_PER_TRADER) return;
    if (!column) {
      if (this.columns.size >= MAX_COLUMNS) return;
      const args = parseArgsKey(argsKey, helper === 'calculateHighVolumeNodes');
      if (args === null) return;
      const [fromEnd, endFromEnd] = shape === 'w' ? [-1, -1] : (shape.slice(1).split(':').map(Number) as [number, number]);
      column = { index: this.columns.size, library, helper, argsKey, shape, fromEnd, endFromEnd, args, series: seriesCovered(library, helper), intervals: new Map() };
      this.columns.set(key, column);
      this.directories.delete(library);
      this.changed = true;
    }
    if (!askers) column.intervals.set(rows.interval, (askers = new Set()));
    askers.add(traderId);
    this.perTrader.set(traderId, asked + 1);
  }

  /** A trader left the thread or changed its code: what it asked for is no longer computed for it. */
  forget(traderId: string): void {
    this.perTrader.delete(traderId);
    let dropped = false;
    for (const column of this.columns.values()) {
      for (const [interval, askers] of column.intervals) {
        askers.delete(traderId);
        if (askers.size === 0) column.intervals.delete(interval);
      }
      if (column.intervals.size === 0) dropped = true;
    }
    if (!dropped) return;
    // Renumbered so the index region stays dense; the new epoch makes every isolate fetch the new directory.
    const kept = [...this.columns].filter(([, column]) => column.intervals.size > 0);
    this.columns.clear();
    kept.forEach(([key, column], index) => this.columns.set(key, { ...column, index }));
    this.directories.clear();
    this.changed = true;
  }

  /**
   * Before the tick's first batch (no isolate reads the board between ticks): the columns the tick's
   * traders asked for, and a layout large enough for the tick's series and the last tick's results.
   *
   * `wholeTick`: every batch of the tick is filled before any trader runs, and the board keeps them
   * all (one row per series of the tick, the data of every batch one after another), so the thread
   * can run its traders one after another over all symbols (the memory-saving order, see
   * ThreadScreener.tick). Sized from the last tick's batches together: larger than one batch by about
   * the number of batches, and still bounded by MAX_DATA (results beyond it keep the callback).
   */
  beginTick(traderIds: readonly string[], seriesIds: Iterable<number>, intervals: number, wholeTick = false): void {
    const running = new Set(traderIds);
    this.active = new Map();
    for (const column of this.columns.values()) {
      for (const [interval, askers] of column.intervals) {
        const payers = [...askers].filter((id) => running.has(id));
        if (payers.length === 0) continue;
        let list = this.active.get(interval);
        if (!list) this.active.set(interval, (list = []));
        list.push({ column, payers, ms: 0 });
      }
    }
    let maxId = -1;
    let series = 0;
    for (const id of seriesIds) {
      series++;
      if (id > maxId) maxId = id;
    }
    const wanted: Layout = {
      seriesCap: maxId + 1,
      rows: wholeTick ? series : Math.max(this.rowsNeeded, intervals * 16),
      columnCap: this.columns.size,
      dataCap: Math.min(MAX_DATA, Math.max(MIN_DATA, wholeTick ? this.tickNeeded : this.needed)),
    };
    const { layout } = this;
    const grow = wanted.seriesCap > layout.seriesCap || wanted.rows > layout.rows || wanted.columnCap > layout.columnCap || wanted.dataCap > layout.dataCap;
    // Back to one batch at a time after whole ticks: a fresh buffer of the same size drops the pages the
    // whole tick wrote, and the size stays a while, so going back to whole ticks rebuilds no isolate.
    const leaving = this.wholeTick && !wholeTick;
    if (wholeTick) this.keepSize = KEEP_WHOLE_TICK_SIZE_TICKS;
    else if (this.keepSize > 0) this.keepSize--;
    const shrink = wanted.dataCap * 4 < layout.dataCap && this.keepSize === 0;
    if (grow || shrink || leaving) {
      this.board[0] = -1;
      // Room to grow without a new buffer (each one rebuilds the isolates whose memory limit it outgrows).
      const next: Layout = {
        seriesCap: Math.ceil((wanted.seriesCap * 1.25 + 16) / 64) * 64,
        rows: wanted.rows,
        columnCap: Math.ceil((wanted.columnCap * 1.5 + 8) / 8) * 8,
        dataCap: Math.min(MAX_DATA, Math.ceil(wanted.dataCap * 1.5)),
      };
      const keep = this.keepSize > 0;
      this.board = this.allocate(
        keep && !grow
          ? { ...layout }
          : keep
            ? { seriesCap: Math.max(next.seriesCap, layout.seriesCap), rows: Math.max(next.rows, layout.rows), columnCap: Math.max(next.columnCap, layout.columnCap), dataCap: Math.max(next.dataCap, layout.dataCap) }
            : next,
      );
      this.epoch++;
      this.changed = false;
      // The directory lists only the columns that fit the layout.
      this.directories.clear();
    }
    this.needed = 0;
    this.tickNeeded = 0;
    this.wholeTick = wholeTick;
    this.nextAt = -1;
    this.board[0] = this.epoch;
  }

  /**
   * Compute the results of the batch's symbols into the board (through `memo`, which keeps them for
   * callbacks too). Runs before any isolate evaluates the batch. The time each result took is
   * charged, through `charge`, to the traders of the tick that asked for it, shared equally: work
   * done ahead for a trader counts against its tick budget as its callbacks did.
   */
  fill(memo: TickMemo, table: SeriesTable, symbols: readonly string[], charge: (traderId: string, ms: number) => void): void {
    const board = this.board;
    const { seriesCap, rows, columnCap, dataCap } = this.layout;
    const cells = BOARD_HEADER + 2 * seriesCap;
    const dataStart = cells + columnCap * rows;
    const dataEnd = dataStart + dataCap;
    // One batch at a time: the last batch's entries go. A whole tick: only its first batch starts afresh.
    if (!this.wholeTick || this.nextAt < 0) {
      for (const id of this.written) {
        board[BOARD_HEADER + 2 * id] = 0;
        board[BOARD_HEADER + 2 * id + 1] = 0;
      }
      this.written = [];
      board.fill(0, cells, dataStart);
      this.nextRow = 0;
      this.nextAt = dataStart;
    }
    let row = this.nextRow;
    let at = this.nextAt;
    let needed = 0;
    let rowsNeeded = 0;
    const batch = this.batch;
    for (const [interval, columns] of this.active) {
      // The batch's series of this interval, each with its row; then one column at a time over them, so a
      // column's time (charged to its payers) is read once per batch rather than once per symbol.
      batch.length = 0;
      for (const symbol of symbols) {
        const series = table.rows(table.slot(seriesKey(symbol, interval as Interval))?.[0] ?? -1);
        if (!series) continue;
        rowsNeeded++;
        if (series.id >= seriesCap || row >= rows) continue;
        board[BOARD_HEADER + 2 * series.id] = row + 1;
        board[BOARD_HEADER + 2 * series.id + 1] = series.length;
        this.written.push(series.id);
        batch.push({ series, row });
        row++;
      }
      if (batch.length === 0) continue;
      for (const entry of columns) {
        const { column } = entry;
        const fits = column.index < columnCap;
        const cellBase = cells + column.index * rows;
        const started = performance.now();
        for (const { series, row: seriesRow } of batch) {
          const offset = column.fromEnd < 0 ? 0 : series.length - column.fromEnd;
          const length = column.fromEnd < 0 ? series.length : column.fromEnd - column.endFromEnd;
          if (offset < 0 || length < 0) continue;
          const cell = cellBase + seriesRow;
          // A series column is written by the arithmetic straight into the board when it fits (no array in between).
          if (column.series && fits && at + 2 + length <= dataEnd && length > 0) {
            const written = memo.seriesInto(column.library, series.id, column.helper, column.args, offset, length, board.subarray(at + 2, at + 2 + length));
            if (written !== NOT_COVERED) {
              needed += written === null ? 1 : 2 + written.length;
              board[cell] = at;
              if (written === null) board[at++] = TAG_NULL;
              else {
                board[at] = TAG_SERIES;
                board[at + 1] = written.length;
                at += 2 + written.length;
              }
              continue;
            }
          }
          const whole = offset === 0 && length === series.length;
          const result = memo.memoParsed(column.library, series.id, column.helper, column.argsKey, column.args, whole ? undefined : offset, whole ? undefined : length);
          const size = this.sizeOf(result, 0);
          if (size === 0) continue;
          needed += size;
          if (fits && at + size <= dataEnd) {
            board[cell] = at;
            at = this.write(board, at, result);
          } else memo.remember(column.library, series.id, column.helper, column.argsKey, whole ? undefined : offset, whole ? undefined : length, result);
        }
        entry.ms += performance.now() - started;
      }
    }
    batch.length = 0;
    for (const columns of this.active.values()) {
      for (const entry of columns) {
        if (entry.ms === 0) continue;
        const share = entry.ms / entry.payers.length;
        for (const payer of entry.payers) charge(payer, share);
        entry.ms = 0;
      }
    }
    // Columns learned, shapes or words first seen: isolates fetch the new directory before they read this batch.
    if (this.changed) {
      this.changed = false;
      this.epoch++;
      board[0] = this.epoch;
    }
    if (needed > this.needed) this.needed = needed;
    if (rowsNeeded > this.rowsNeeded) this.rowsNeeded = rowsNeeded;
    this.tickNeeded += needed;
    this.nextRow = row;
    this.nextAt = at;
  }

  /** After the tick's last batch: nothing on the board answers until the next tick's first batch. */
  endTick(): void {
    for (const id of this.written) {
      this.board[BOARD_HEADER + 2 * id] = 0;
      this.board[BOARD_HEADER + 2 * id + 1] = 0;
    }
    this.written = [];
    this.nextAt = -1;
  }

  /** What an isolate of `library` needs to read the board (see BoardConnection). */
  connect(library: HelpersVersion): BoardConnection {
    let directory = this.directories.get(library);
    if (directory === undefined) {
      const keys: Array<[string, number]> = [];
      for (const column of this.columns.values()) if (column.library === library && column.index < this.layout.columnCap) keys.push([`${column.helper}|${column.argsKey}|${column.shape}`, column.index]);
      directory = JSON.stringify({ keys, shapes: this.shapes, words: this.words });
      this.directories.set(library, directory);
    }
    const { seriesCap, rows, columnCap } = this.layout;
    return [this.epoch, this.board.buffer as SharedArrayBuffer, seriesCap, rows, columnCap, directory];
  }

  private allocate(layout: Layout): Float64Array {
    this.layout = layout;
    const elements = BOARD_HEADER + 2 * layout.seriesCap + layout.columnCap * layout.rows + layout.dataCap;
    return new Float64Array(new SharedArrayBuffer(elements * 8));
  }

  /**
   * Board elements a result (as the memo encoded it) takes, 0 when the board cannot hold it: numbers,
   * null, series of numbers and nulls, plain records of at most MAX_RECORD_FIELDS plainly named fields,
   * lists of at most MAX_LIST_ITEMS, plain words, nested at most MAX_DEPTH deep. Record shapes and
   * words seen here join the directory.
   */
  private sizeOf(value: unknown, depth: number): number {
    if (typeof value === 'number') return 2;
    if (value === null) return 1;
    if (typeof value === 'string') return this.wordOf(value) === undefined ? 0 : 2;
    if (typeof value !== 'object' || depth > MAX_DEPTH) return 0;
    const series = seriesOf(value);
    if (series !== null) return 2 + series.length;
    if (Array.isArray(value)) {
      if (value.length > MAX_LIST_ITEMS) return 0;
      let size = 2;
      for (const item of value) {
        const itemSize = this.sizeOf(item, depth + 1);
        if (itemSize === 0) return 0;
        size += itemSize;
      }
      return size;
    }
    if (Object.getPrototypeOf(value) !== Object.prototype || this.shapeOf(value) === undefined) return 0;
    let size = 2;
    // A plain record's own fields (its prototype holds none), in Object.keys order, without an array of them.
    for (const name in value) {
      const fieldSize = this.sizeOf((value as Record<string, unknown>)[name], depth + 1);
      if (fieldSize === 0) return 0;
      size += fieldSize;
    }
    return size;
  }

  /** Writes a result sizeOf accepted at `at`; returns where the next one starts. */
  private write(board: Float64Array, at: number, value: unknown): number {
    if (typeof value === 'number') {
      board[at] = TAG_NUMBER;
      board[at + 1] = value;
      return at + 2;
    }
    if (value === null) {
      board[at] = TAG_NULL;
      return at + 1;
    }
    if (typeof value === 'string') {
      board[at] = TAG_WORD;
      board[at + 1] = this.wordOf(value)!;
      return at + 2;
    }
    const series = seriesOf(value);
    if (series !== null) {
      board[at] = TAG_SERIES;
      board[at + 1] = series.length;
      if (series instanceof Float64Array) board.set(series, at + 2);
      else for (let i = 0; i < series.length; i++) board[at + 2 + i] = series[i] === null ? NaN : (series[i] as number);
      return at + 2 + series.length;
    }
    if (Array.isArray(value)) {
      board[at] = TAG_LIST;
      board[at + 1] = value.length;
      let next = at + 2;
      for (const item of value) next = this.write(board, next, item);
      return next;
    }
    board[at] = TAG_RECORD;
    board[at + 1] = this.shapeOf(value as object)!;
    let next = at + 2;
    for (const name in value as object) next = this.write(board, next, (value as Record<string, unknown>)[name]);
    return next;
  }

  /** The directory's index of a record's field names (learned on first sight), or undefined when they are not plain or too many. */
  private shapeOf(record: object): number | undefined {
    // Records mostly come in runs of one shape (a column's results): the last one is checked field by field, no key built.
    const last = this.lastShape;
    if (last >= 0 && hasFields(record, this.shapes[last]!)) return last;
    const names = Object.keys(record);
    const key = names.join(',');
    let shape = this.shapeIndex.get(key);
    if (shape !== undefined) return (this.lastShape = shape);
    if (names.length === 0 || names.length > MAX_RECORD_FIELDS || this.shapes.length >= MAX_SHAPES) return undefined;
    for (const name of names) if (!FIELD_NAME.test(name) || name === '__proto__') return undefined;
    shape = this.shapes.length;
    this.shapes.push(names);
    this.shapeIndex.set(key, shape);
    this.directories.clear();
    this.changed = true;
    return (this.lastShape = shape);
  }

  /** The directory's index of a word (learned on first sight), or undefined when it is not a plain word. */
  private wordOf(text: string): number | undefined {
    let word = this.wordIndex.get(text);
    if (word !== undefined) return word;
    if (this.words.length >= MAX_WORDS || !WORD.test(text)) return undefined;
    word = this.words.length;
    this.words.push(text);
    this.wordIndex.set(text, word);
    this.directories.clear();
    this.changed = true;
    return word;
  }
}

/**
 * Where a range lies relative to its series, so that one learned call applies to every symbol:
 * `w` for the whole series, else `e<start from the end>:<end from the end>` (`k.slice(-50)` is
 * `e50:0` whatever the length). Null when the range is not one the memo would accept.
 */
export function rangeShape(seriesLength: number, offset: unknown, length: unknown): string | null {
  if (offset === undefined && length === undefined) return 'w';
  if (!Number.isInteger(offset) || !Number.isInteger(length)) return null;
  const from = offset as number;
  const count = length as number;
  if (from < 0 || count < 0 || from + count > seriesLength) return null;
  if (from === 0 && count === seriesLength) return 'w';
  return `e${seriesLength - from}:${seriesLength - from - count}`;
}

/** True when `record`'s enumerable fields are exactly `names`, in that order (as Object.keys would list them). */
function hasFields(record: object, names: readonly string[]): boolean {
  let i = 0;
  for (const name in record) {
    if (name !== names[i]) return false;
    i++;
  }
  return i === names.length;
}

/** An encoded series (the memo's `{ $series }`, or a short array) of numbers and nulls, or null when the value is not one. */
function seriesOf(value: unknown): Float64Array | Array<number | null> | null {
  if (Array.isArray(value)) {
    // NaN would read back as null: such a short series keeps the callback, which carries it as is.
    for (const item of value) if (item !== null && (typeof item !== 'number' || Number.isNaN(item))) return null;
    return value as Array<number | null>;
  }
  return packedSeriesOf(value);
}
