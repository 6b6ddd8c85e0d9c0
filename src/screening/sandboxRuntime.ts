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

/**
 * One timeframe of one symbol as the runtime needs it: [interval, seriesId, generation, start, length]
 * (`length` rows from row `start` of the series' shared buffer). A symbol's spec is
 * [position of the hvnNodes timeframe among them or -1, ...timeframes flattened].
 */
export type SymbolSpec = Array<string | number>;

export interface IsolateRuntime {
  /** Compile the filter body; null on success, else the error message. */
  compile(code: string): string | null;
  /**
   * Take this tick's tickers and symbol specs as JSON (Array<Record<string, string>> and
   * SymbolSpec[]): one string per trader and tick is the cheapest way across the isolate boundary.
   */
  beginTick(tickersJson: string, specsJson: string): void;
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
export function installRuntime(attach: Attach, memo: Memo, connectBoard: ConnectBoard, library: Record<string, (...args: unknown[]) => unknown>, klineHelperNames: string[], rowFields: number, judgeLimits: JudgeLimits): IsolateRuntime {
  'use strict';
  const defineProperty = Reflect.defineProperty;
  const FunctionCtor = Function;
  const parseJson = JSON.parse;
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
  let tickSpecs: SymbolSpec[] = [];

  /** The kline array of the spec's `n`th timeframe. */
  function timeframeAt(spec: SymbolSpec, n: number): unknown[] {
    const at = 1 + n * 5;
    return views.timeframe(spec[at + 1] as number, spec[at + 2] as number, spec[at + 3] as number, spec[at + 4] as number);
  }

  /**
   * The `timeframes` object of a spec, with its intervals as keys in order. An object literal defines
   * its properties (a setter a filter put on Object.prototype never runs) and, for up to four
   * timeframes, builds the object in one step: defining each property cost more than the kline arrays.
   */
  function timeframesOf(spec: SymbolSpec): Record<string, unknown> {
    const count = (spec.length - 1) / 5;
    if (count === 1) return { [spec[1] as string]: timeframeAt(spec, 0) };
    if (count === 2) return { [spec[1] as string]: timeframeAt(spec, 0), [spec[6] as string]: timeframeAt(spec, 1) };
    if (count === 3) return { [spec[1] as string]: timeframeAt(spec, 0), [spec[6] as string]: timeframeAt(spec, 1), [spec[11] as string]: timeframeAt(spec, 2) };
    if (count === 4) return { [spec[1] as string]: timeframeAt(spec, 0), [spec[6] as string]: timeframeAt(spec, 1), [spec[11] as string]: timeframeAt(spec, 2), [spec[16] as string]: timeframeAt(spec, 3) };
    const timeframes: Record<string, unknown> = {};
    for (let i = 1; i + 4 < spec.length; i += 5) {
      entryDescriptor.value = timeframeAt(spec, (i - 1) / 5);
      defineProperty(timeframes, spec[i] as string, entryDescriptor);
      entryDescriptor.value = undefined;
    }
    return timeframes;
  }

  function evaluate(symbol: number): boolean | string {
    if (filter === null) return judge.encodeError('filter is not compiled');
    const spec = tickSpecs[symbol]!;
    let ticker: Record<string, string> = {};
    if (wantsTicker) {
      if (tickTickers === null) tickTickers = parseJson(tickersJson) as Array<Record<string, string>>;
      // A spread copies own data properties by definition (no setter, getter or iterator a filter could have planted runs), and V8 clones the shape in one step.
      ticker = { ...tickTickers[symbol]! };
    }
    const timeframes = timeframesOf(spec);
    try {
      const hvnNodes = wantsHvnNodes ? bridge.hvnNodesOf(spec) : [];
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
    compile(code: string): string | null {
      try {
        filter = new FunctionCtor('ticker', 'timeframes', 'helpers', 'hvnNodes', code) as (...args: unknown[]) => unknown;
        // The nodes cost a host round trip per symbol, the tickers a parse per tick: a filter that never
        // names them (nor `arguments`, nor `eval`, which could name them) cannot tell.
        wantsHvnNodes = /\bhvnNodes\b|\barguments\b|\beval\b/.test(code);
        wantsTicker = /\bticker\b|\barguments\b|\beval\b/.test(code);
        return null;
      } catch (error) {
        filter = null;
        return judge.describeError(error);
      }
    },
    beginTick(tickers: string, specsJson: string): void {
      // JSON.parse builds its arrays and objects with own data properties only, and the loops below
      // read them by index: nothing here consults a prototype or iterator a filter could have replaced.
      tickersJson = tickers;
      tickTickers = null;
      tickSpecs = parseJson(specsJson);
      // Attach every series now, so the isolate's memory accounting does not move during the tick.
      for (let s = 0; s < tickSpecs.length; s++) {
        const spec = tickSpecs[s]!;
        for (let i = 1; i + 4 < spec.length; i += 5) views.rowsOf(spec[i + 1] as number, spec[i + 2] as number);
      }
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
