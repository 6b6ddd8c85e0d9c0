// Helpers inside an isolate: the library's functions, with those called on a tick's own kline arrays answered by the thread's shared memo.
//
// Runs inside every trader's isolate (its source is injected by runtimeFunctionsSource, before any
// filter code): self-contained plain JavaScript that captures every builtin it uses when installed.
import type { MemoHandle } from './klineViews.ts';
import { type ConnectBoard, installResultBoard } from './resultBoard.ts';

/**
 * A helper's result on `length` candles from `offset` of a series (the whole series when both are
 * omitted), or undefined. `argsKey` encodes the helper's other arguments (see encodeArgs): the only
 * thing of the filter's that reaches the host is that one short string.
 */
export type Memo = (seriesId: number, helper: string, argsKey: string, offset?: number, length?: number) => unknown;

/** The longest memo key the host accepts; longer argument lists are computed in the isolate. */
export const MAX_ARGS_KEY_CHARS = 512;

export interface HelperBridge {
  /** The frozen `helpers` object filters receive. */
  helpers: Record<string, unknown>;
  /** The browser's hvnNodes of a symbol, whose hvnNodes timeframe is the series `seriesId` of `length` candles (see hvnNodesOf). */
  hvnNodesOf(seriesId: number, length: number): unknown;
}

export function installHelperBridge(memo: Memo, connectBoard: ConnectBoard, library: Record<string, (...args: unknown[]) => unknown>, klineHelperNames: string[], handleOf: (value: unknown) => MemoHandle | undefined): HelperBridge {
  'use strict';
  const apply = Reflect.apply;
  const ownKeys = Reflect.ownKeys;
  const isArrayValue = Array.isArray;
  const getPrototypeOf = Object.getPrototypeOf;
  const objectPrototype = Object.prototype;
  const charCodeAt = String.prototype.charCodeAt;
  const freeze = Object.freeze;
  const board = installResultBoard(connectBoard);

  /** Undo the host's encodeResult: `{ $series: Float64Array }` back to an array with null for NaN. Runs under the filter's time limit. */
  function decodeResult(value: unknown): unknown {
    if (value === null || typeof value !== 'object') return value;
    if (isArrayValue(value)) {
      const list = value as unknown[];
      for (let i = 0; i < list.length; i++) list[i] = decodeResult(list[i]);
      return list;
    }
    const packed = (value as { $series?: Float64Array }).$series;
    if (packed !== undefined) {
      const count = packed.length;
      const out = new Array(count);
      for (let i = 0; i < count; i++) {
        const n = packed[i]!;
        out[i] = n === n ? n : null;
      }
      return out;
    }
    const record = value as Record<string, unknown>;
    const keys = ownKeys(record) as string[];
    for (let i = 0; i < keys.length; i++) record[keys[i]!] = decodeResult(record[keys[i]!]);
    return record;
  }

  /** Strings the memo key may carry verbatim: short, and of characters that cannot break the key's grammar. */
  function isPlainWord(text: string): boolean {
    if (text.length > 64) return false;
    for (let i = 0; i < text.length; i++) {
      const c = apply(charCodeAt, text, [i]) as number;
      const ok = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45 || c === 46;
      if (!ok) return false;
    }
    return true;
  }

  const HVN_OPTIONS = ['bins', 'threshold', 'lookback', 'minStrength', 'peakTolerance'];

  /**
   * The helper's arguments after the klines as the memo key the host decodes (TickMemo's parseArgsKey),
   * built from primitives only: `u`, `n`, `t`, `f`, `#<number>`, `s<word>`, and for the high-volume
   * nodes' options `{name=<number>;…}`, joined by `|`. Null when an argument is anything else: the
   * helper then runs here, on what the filter passed, inside its own limits.
   */
  function encodeArgs(args: unknown[], from: number, allowOptions: boolean): string | null {
    const count = args.length;
    if (count - from > 6) return null;
    let key = '';
    for (let i = from; i < count; i++) {
      const arg = args[i];
      let part: string;
      if (arg === undefined) part = 'u';
      else if (arg === null) part = 'n';
      else if (arg === true) part = 't';
      else if (arg === false) part = 'f';
      else if (typeof arg === 'number') part = '#' + arg;
      else if (typeof arg === 'string') {
        if (!isPlainWord(arg)) return null;
        part = 's' + arg;
      } else if (allowOptions && typeof arg === 'object' && getPrototypeOf(arg) === objectPrototype) {
        part = '{';
        for (let o = 0; o < HVN_OPTIONS.length; o++) {
          const value = (arg as Record<string, unknown>)[HVN_OPTIONS[o]!];
          if (value === undefined) continue;
          if (typeof value !== 'number') return null;
          part += (part.length > 1 ? ';' : '') + HVN_OPTIONS[o] + '=' + value;
        }
        part += '}';
      } else return null;
      key += (i > from ? '|' : '') + part;
    }
    return key;
  }

  // Helpers called on a tick's own series (or a slice of it the filter has not written to) are
  // computed once per thread and symbol by the host, read from the thread's results board when it
  // holds them (no callback), else asked for through the memo callback; anything else (copies,
  // numbers, odd arguments) runs here on what the filter passed.
  const helpers: Record<string, unknown> = {};
  const libraryNames = ownKeys(library) as string[];
  for (let i = 0; i < libraryNames.length; i++) helpers[libraryNames[i]!] = library[libraryNames[i]!];
  for (let i = 0; i < klineHelperNames.length; i++) {
    const name = klineHelperNames[i]!;
    const local = library[name]!;
    const allowOptions = name === 'calculateHighVolumeNodes';
    helpers[name] = function (...args: unknown[]) {
      const handle = handleOf(args[0]);
      if (handle !== undefined && !handle.dirty) {
        const key = encodeArgs(args, 1, allowOptions);
        if (key !== null) {
          const boarded = board.read(handle.seriesId, handle.offset, handle.length, name, key);
          if (boarded !== undefined) return boarded;
          const result = memo(handle.seriesId, name, key, handle.offset, handle.length);
          if (result !== undefined) return decodeResult(result);
        }
      }
      return apply(local, undefined, args);
    };
  }
  freeze(helpers);

  /** The browser's hvnNodes: the high-volume nodes of the chosen timeframe's series over its last min(length, 100) candles. */
  function hvnNodesOf(seriesId: number, length: number): unknown {
    const lookback = length < 100 ? length : 100;
    if (lookback < 1) return [];
    const key = '{lookback=' + lookback + '}';
    const boarded = board.read(seriesId, 0, length, 'calculateHighVolumeNodes', key);
    if (boarded !== undefined) return boarded;
    const nodes = memo(seriesId, 'calculateHighVolumeNodes', key);
    return nodes === undefined ? [] : decodeResult(nodes);
  }

  return { helpers, hvnNodesOf };
}
