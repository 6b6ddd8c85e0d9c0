// The trusted code that runs first inside every trader's isolate: compiles the filter, builds its inputs lazily, reads its verdict.
//
// `installRuntime` is never called in Node: the sandbox injects its source, with the functions it
// composes (createJudge, installLazyArrays, installKlineViews, installHelperBridge, guardAllocations: ./runtime/), into a
// fresh isolate (types are stripped by then), so all of them must stay self-contained plain JavaScript
// that only touch their parameters and the isolate's own builtins. A filter may replace any prototype
// method or global of its isolate, so every builtin the runtime uses is captured before any filter
// runs, and the runtime reads arrays with indexed loops (never `for…of`, spread or a method call on a
// value a filter could have touched). Everything it hands the host is built from primitives here:
// a number, a boolean, or one bounded string; the host checks it again anyway.

import { unqualified } from './helpers/library.ts';
import { guardAllocations } from './runtime/allocationGuard.ts';
import { installHelperBridge, type Memo } from './runtime/helperBridge.ts';
import { createJudge, type JudgeLimits } from './runtime/judge.ts';
import { type Attach, installKlineViews } from './runtime/klineViews.ts';
import { installLazyArrays } from './runtime/lazyArrays.ts';
import { type ConnectBoard, installResultBoard } from './runtime/resultBoard.ts';

// What the sandbox reads of the runtime's bounds and verdicts, kept at this path for its importers (the code is in ./runtime/).
export { decodeVerdict, hostJudge, JUDGE_LIMITS, MAX_MESSAGE_CHARS } from './runtime/judge.ts';
export { MAX_ARGS_KEY_CHARS } from './runtime/helperBridge.ts';

/** Asks the host for its spec board: [epoch, buffer] (SpecBoardConnection), or undefined when it has none. */
export type ConnectSpecs = () => unknown;

export interface IsolateRuntime {
  /**
   * Compile the filter body; null on success, else the error message. `wantsTicker` and
   * `wantsHvnNodes`: whether the filter can read those arguments at all (the host's namesTicker and
   * namesHvnNodes); when it cannot, it gets an empty object and an empty list, and the host sends no tickers.
   */
  compile(code: string, wantsTicker: boolean, wantsHvnNodes: boolean): string | null;
  /**
   * Take this tick's tickers as JSON (Array<Record<string, string>>: one string per trader and tick
   * is the cheapest way across the isolate boundary) and where its symbol specs are on the spec
   * board (`count` symbols of `stride` cells from cell `offset`, in the board of epoch `epoch`:
   * TickSpecs). False when the board is not there (the host has none, or another epoch).
   */
  beginTick(tickersJson: string, epoch: number, offset: number, stride: number, count: number): boolean;
  /** Run the filter for the tick's symbol number `symbol`: a boolean, or an encoded verdict (see decodeVerdict). */
  evaluate(symbol: number): boolean | string;
  /**
   * evaluate() for each of `symbols` in one call: their answers joined by BATCH_SEPARATOR, `t` and `f`
   * standing for true and false (one crossing of the isolate boundary instead of one per symbol).
   */
  evaluateBatch(symbols: number[]): string;
}

/** Separates the answers of evaluateBatch: a control character, which no sanitized text of a verdict holds. */
export const BATCH_SEPARATOR = '\u0001';

/**
 * The runtime of one isolate: the judge, the kline views and the helper bridge, each capturing its
 * builtins now (before any filter code), and the three entry points the sandbox calls.
 */
export function installRuntime(
  attach: Attach,
  memo: Memo,
  connectBoard: ConnectBoard,
  connectSpecs: ConnectSpecs,
  library: Record<string, (...args: unknown[]) => unknown>,
  klineHelperNames: string[],
  rowFields: number,
  judgeLimits: JudgeLimits,
  intervalNames: string[],
): IsolateRuntime {
  'use strict';
  const defineProperty = Reflect.defineProperty;
  const FunctionCtor = Function;
  const parseJson = JSON.parse;
  const isArrayValue = Array.isArray;
  const Float64 = Float64Array;
  const judge = createJudge({ apply: Reflect.apply, isArray: Array.isArray, charCodeAt: String.prototype.charCodeAt, fromCharCode: String.fromCharCode, defineProperty, ownKeys: Reflect.ownKeys }, judgeLimits);
  const views = installKlineViews(attach, rowFields);
  const bridge = installHelperBridge(memo, connectBoard, library, klineHelperNames, views.handleOf);
  // Reused for the timeframes past the fourth (never handed to a filter): a fresh `{ __proto__: null, … }`
  // descriptor per definition cost more than the rest of the setup.
  const entryDescriptor = { __proto__: null, value: undefined as unknown, writable: true, enumerable: true, configurable: true } as PropertyDescriptor;
  let filter: ((...args: unknown[]) => unknown) | null = null;
  let wantsHvnNodes = true;
  let wantsTicker = true;
  // This tick's tickers: the host's JSON, parsed on the first evaluation that hands a ticker over.
  let tickersJson = '[]';
  let tickTickers: Array<Record<string, string>> | null = null;
  // The thread's spec board (specBoard.ts): read by integer index only, like the board of results, and
  // never handed out. This tick's specs are `tickCount` symbols of `tickStride` cells from `tickOffset`.
  let specCells: Float64Array | null = null;
  let specEpoch = -1;
  let tickOffset = 0;
  let tickStride = 1;
  let tickCount = 0;

  /** The interval name of the timeframe whose cells start at `at`. */
  function intervalAt(cells: Float64Array, at: number): string {
    return intervalNames[cells[at]! | 0]!;
  }

  /** The kline array of the timeframe whose cells start at `at`. */
  function timeframeAt(cells: Float64Array, at: number): unknown[] {
    return views.timeframe(cells[at + 1]!, cells[at + 2]!, cells[at + 3]!, cells[at + 4]!);
  }

  /**
   * The `timeframes` object of the spec at cell `base`, with its intervals as keys in order. An object
   * literal defines its properties (a setter a filter put on Object.prototype never runs) and, for up
   * to four timeframes, builds the object in one step: defining each property cost more than the kline arrays.
   */
  function timeframesOf(cells: Float64Array, base: number): Record<string, unknown> {
    const count = (tickStride - 1) / 5;
    if (count === 1) return { [intervalAt(cells, base + 1)]: timeframeAt(cells, base + 1) };
    if (count === 2) return { [intervalAt(cells, base + 1)]: timeframeAt(cells, base + 1), [intervalAt(cells, base + 6)]: timeframeAt(cells, base + 6) };
    if (count === 3) return { [intervalAt(cells, base + 1)]: timeframeAt(cells, base + 1), [intervalAt(cells, base + 6)]: timeframeAt(cells, base + 6), [intervalAt(cells, base + 11)]: timeframeAt(cells, base + 11) };
    if (count === 4) {
      return { [intervalAt(cells, base + 1)]: timeframeAt(cells, base + 1), [intervalAt(cells, base + 6)]: timeframeAt(cells, base + 6), [intervalAt(cells, base + 11)]: timeframeAt(cells, base + 11), [intervalAt(cells, base + 16)]: timeframeAt(cells, base + 16) };
    }
    const timeframes: Record<string, unknown> = {};
    for (let at = base + 1; at + 4 < base + tickStride; at += 5) {
      entryDescriptor.value = timeframeAt(cells, at);
      defineProperty(timeframes, intervalAt(cells, at), entryDescriptor);
      entryDescriptor.value = undefined;
    }
    return timeframes;
  }

  /** The browser's hvnNodes for the spec at cell `base`: of its chosen timeframe, or none. */
  function hvnNodesAt(cells: Float64Array, base: number): unknown {
    const position = cells[base]! | 0;
    if (position < 0) return [];
    const at = base + 1 + position * 5;
    return bridge.hvnNodesOf(cells[at + 1]!, cells[at + 4]!);
  }

  function evaluate(symbol: number): boolean | string {
    if (filter === null) return judge.encodeError('filter is not compiled');
    const cells = specCells;
    if (cells === null || !(symbol >= 0 && symbol < tickCount)) return judge.encodeError('no such symbol this tick');
    const base = tickOffset + (symbol | 0) * tickStride;
    let ticker: Record<string, string> = {};
    if (wantsTicker) {
      if (tickTickers === null) tickTickers = parseJson(tickersJson) as Array<Record<string, string>>;
      // A spread copies own data properties by definition (no setter, getter or iterator a filter could have planted runs), and V8 clones the shape in one step.
      ticker = { ...tickTickers[symbol]! };
    }
    const timeframes = timeframesOf(cells, base);
    try {
      const hvnNodes = wantsHvnNodes ? hvnNodesAt(cells, base) : [];
      return judge.encodeResult(filter(ticker, timeframes, bridge.helpers, hvnNodes));
    } catch (error) {
      return judge.encodeError(judge.describeError(error));
    } finally {
      // This evaluation's kline arrays are no longer the helpers' to memoize, nor kept alive for them.
      views.endEvaluation();
    }
  }

  return {
    evaluate,
    compile(code: string, ticker: boolean, hvnNodes: boolean): string | null {
      try {
        filter = new FunctionCtor('ticker', 'timeframes', 'helpers', 'hvnNodes', code) as (...args: unknown[]) => unknown;
        wantsTicker = ticker === true;
        wantsHvnNodes = hvnNodes === true;
        return null;
      } catch (error) {
        filter = null;
        return judge.describeError(error);
      }
    },
    beginTick(tickers: string, epoch: number, offset: number, stride: number, count: number): boolean {
      tickersJson = tickers;
      tickTickers = null;
      // A buffer of a later epoch holds everything written to earlier ones this tick (the board copies
      // it when it grows), so only an older one is asked for again: a few times in a thread's life.
      if (specCells === null || specEpoch < epoch) {
        const connection = connectSpecs() as unknown[] | undefined;
        if (!isArrayValue(connection) || !((connection[0] as number) >= epoch)) {
          specCells = null;
          specEpoch = -1;
          return false;
        }
        specCells = new Float64(connection[1] as SharedArrayBuffer);
        specEpoch = connection[0] as number;
      }
      tickOffset = offset;
      tickStride = stride;
      tickCount = count;
      // Attach every series now, so the isolate's memory accounting does not move during the tick.
      const cells = specCells;
      for (let base = offset, s = 0; s < count; s++, base += stride) {
        // A symbol that lacks a timeframe (MISSING_SPEC) is never evaluated.
        if (cells[base]! < -1) continue;
        for (let at = base + 1; at + 4 < base + stride; at += 5) views.attachRows(cells[at + 1]!, cells[at + 2]!);
      }
      return true;
    },
    evaluateBatch(symbols: number[]): string {
      // String concatenation only: no array method or index write a filter could have hooked on a prototype.
      let out = '';
      for (let i = 0; i < symbols.length; i++) {
        const answer = evaluate(symbols[i]!);
        out += (i > 0 ? '\u0001' : '') + (answer === true ? 't' : answer === false ? 'f' : answer);
      }
      return out;
    },
  };
}

/** Source of everything the isolate needs besides the helpers, to evaluate before calling installRuntime. */
export function runtimeFunctionsSource(): string {
  return [createJudge, guardAllocations, installLazyArrays, installKlineViews, installResultBoard, installHelperBridge, installRuntime].map((fn) => unqualified(fn.toString())).join('\n');
}
