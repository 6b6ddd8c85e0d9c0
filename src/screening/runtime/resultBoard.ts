// The isolate's reader of its thread's results board: helper results the host computed ahead, read from shared memory instead of a callback.
//
// Runs inside every trader's isolate (its source is injected by runtimeFunctionsSource, before any
// filter code): self-contained plain JavaScript that captures every builtin it uses when installed.
// The layout is resultBoard.ts's (the host side); the numbers below must stay equal to its constants.

/**
 * Asks the host for the board: [epoch, buffer, seriesCap, rows, columnCap, directoryJson] (see
 * BoardConnection), or undefined when the thread has none.
 */
export type ConnectBoard = () => unknown;

export interface BoardReader {
  /**
   * The host's result of `helper` (its other arguments encoded as `argsKey`) on `length` candles from
   * `offset` of a series, as a fresh value only this call's caller holds; undefined when the board
   * does not hold it (the caller then asks through the callback).
   */
  read(seriesId: number, offset: number, length: number, helper: string, argsKey: string): unknown;
}

export function installResultBoard(connect: ConnectBoard): BoardReader {
  'use strict';
  const apply = Reflect.apply;
  const defineProperty = Reflect.defineProperty;
  const parseJson = JSON.parse;
  const isArrayValue = Array.isArray;
  const ArrayCtor = Array;
  const Float64 = Float64Array;
  const MapCtor = Map;
  const ErrorCtor = Error;
  const mapGet = Map.prototype.get;
  const mapSet = Map.prototype.set;
  const HEADER = 2;
  // The shared view lives only in this closure and is read by integer index alone (never .length,
  // .buffer or a method, which a filter could redefine on a prototype to capture it); every value
  // handed out is built fresh from those reads, so no filter can reach the board, write to it, or
  // change what another call (or another trader's isolate) reads from it.
  let board: Float64Array | null = null;
  let epoch = -2;
  let seriesCap = 0;
  let rows = 0;
  let cells = 0;
  let directory: Map<string, number> = new MapCtor();
  let shapes: string[][] = [];
  /**
   * One object per shape with its fields defined (null), never handed out: a record is a spread copy
   * of it (own data properties, defined in one step; no setter or getter a filter put on a prototype
   * runs) whose fields are then written, which finds them as its own.
   */
  let templates: Array<Record<string, unknown>> = [];
  let words: string[] = [];
  /** Where the value being decoded continues (decode reads one value and moves it past). */
  let cursor = 0;
  /** The host has no board for this isolate: no more asking. */
  let absent = false;
  // Reused for every field of a record (never handed to a filter): defined, not assigned, like an object literal's fields.
  const fieldDescriptor = { __proto__: null, value: undefined as unknown, writable: true, enumerable: true, configurable: true } as PropertyDescriptor;

  /** Fetch the layout and directory after the host changed them (a new epoch); false when there is no board. */
  function refresh(): boolean {
    const connection = connect() as unknown[] | undefined;
    if (!isArrayValue(connection)) {
      absent = true;
      board = null;
      return false;
    }
    epoch = connection[0] as number;
    board = new Float64(connection[1] as SharedArrayBuffer);
    seriesCap = connection[2] as number;
    rows = connection[3] as number;
    cells = HEADER + 2 * seriesCap;
    const parsed = parseJson(connection[5] as string) as { keys: Array<[string, number]>; shapes: string[][]; words: string[] };
    const map: Map<string, number> = new MapCtor();
    const keys = parsed.keys;
    for (let i = 0; i < keys.length; i++) apply(mapSet, map, [keys[i]![0], keys[i]![1]]);
    directory = map;
    shapes = parsed.shapes;
    const made: Array<Record<string, unknown>> = [];
    for (let s = 0; s < shapes.length; s++) {
      const names = shapes[s]!;
      const template = {};
      for (let i = 0; i < names.length; i++) {
        fieldDescriptor.value = null;
        defineProperty(template, names[i]!, fieldDescriptor);
      }
      fieldDescriptor.value = undefined;
      made[s] = template;
    }
    templates = made;
    words = parsed.words;
    return true;
  }

  function read(seriesId: number, offset: number, length: number, helper: string, argsKey: string): unknown {
    if (absent) return undefined;
    if (board === null || board[0] !== epoch) {
      if (!refresh()) return undefined;
    }
    const b = board!;
    if (!(seriesId >= 0 && seriesId < seriesCap)) return undefined;
    const row = b[HEADER + 2 * seriesId]! | 0;
    if (row === 0) return undefined;
    const total = b[HEADER + 2 * seriesId + 1]!;
    const shape = offset === 0 && length === total ? 'w' : 'e' + (total - offset) + ':' + (total - offset - length);
    const column = apply(mapGet, directory, [helper + '|' + argsKey + '|' + shape]) as number | undefined;
    if (column === undefined) return undefined;
    const at = b[cells + column * rows + row - 1]!;
    if (at === 0) return undefined;
    cursor = at | 0;
    return decode(b);
  }

  /** The value at the cursor (the layout is resultBoard.ts's), built fresh; moves the cursor past it. */
  function decode(b: Float64Array): unknown {
    const tag = b[cursor];
    if (tag === 1) {
      cursor += 2;
      return b[cursor - 1];
    }
    if (tag === 2) {
      cursor += 1;
      return null;
    }
    if (tag === 4) {
      // Integers (the board holds them as doubles): an index V8 knows is a small integer keeps the loop on its fast path.
      const count = b[cursor + 1]! | 0;
      const from = (cursor + 2) | 0;
      const out = new ArrayCtor(count);
      for (let i = 0; i < count; i++) {
        const n = b[from + i]!;
        out[i] = n === n ? n : null;
      }
      cursor = from + count;
      return out;
    }
    if (tag === 3) {
      const shape = b[cursor + 1]! | 0;
      const names = shapes[shape]!;
      cursor += 2;
      const record: Record<string, unknown> = { ...templates[shape]! };
      for (let i = 0; i < names.length; i++) record[names[i]!] = decode(b);
      return record;
    }
    if (tag === 5) {
      const count = b[cursor + 1]! | 0;
      cursor += 2;
      const out = new ArrayCtor(count);
      for (let i = 0; i < count; i++) out[i] = decode(b);
      return out;
    }
    if (tag === 6) {
      cursor += 2;
      return words[b[cursor - 1]!];
    }
    throw new ErrorCtor('results board holds an unknown value');
  }

  return { read };
}
