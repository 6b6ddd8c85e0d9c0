// One trader's isolate: no Node, no network, no env, a CPU budget per evaluation and a memory budget per trader.
import ivm from 'isolated-vm';
import type { TraderErrorCode } from '../errors.ts';
import { helpersSource, KLINE_HELPERS } from './helpers.ts';
import { runtimeFunctionsSource, type RuntimeOutcome } from './sandboxRuntime.ts';

export type EvaluationOutcome =
  | { kind: 'ok'; match: boolean; conditions: string[] }
  /** `fatal`: the isolate is gone or unreliable; stop using it this tick and rebuild it. */
  | { kind: 'error'; code: TraderErrorCode; message: string; fatal: boolean };

/** What the isolate may ask of its thread: candle rows of this tick's series and memoized helper results. */
export interface SandboxHost {
  /** The shared buffer of a series' rows (the isolate reads it without a copy), or undefined. */
  attach(seriesId: number): SharedArrayBuffer | undefined;
  /** A helper's result on `length` candles from `offset` of the series (all of it when omitted). */
  memo(seriesId: number, helper: string, args: unknown[], offset?: number, length?: number): unknown;
}

export interface SandboxOptions {
  traderId: string;
  code: string;
  timeoutMs: number;
  memoryMb: number;
  host: SandboxHost;
  /** Called when V8 loses control of the isolate; the thread must end. */
  onCatastrophicError: (message: string) => void;
}

/** Setup (runtime install, compile) gets a looser budget than one evaluation: it parses the whole library. */
const SETUP_TIMEOUT_MS = 2000;

let runtimeScript: string | null = null;

/** The script that installs the runtime and the helpers in a fresh context, built once per thread. */
function runtimeSource(): string {
  runtimeScript ??= [
    '"use strict";',
    // WebAssembly memory lives outside the V8 heap and escapes the isolate's memory limit: one
    // `new WebAssembly.Memory({ initial: 4096 })` commits 256 MB of the worker's RSS. Filters have
    // no use for it, and the namespace object is the only way to its constructors.
    'delete globalThis.WebAssembly;',
    'globalThis.__runtime = (function () {',
    `  const library = (function () { ${helpersSource()} })();`,
    runtimeFunctionsSource(),
    `  const runtime = installRuntime(globalThis.__attach, globalThis.__memo, library, ${JSON.stringify([...KLINE_HELPERS])});`,
    '  delete globalThis.__attach;',
    '  delete globalThis.__memo;',
    '  return runtime;',
    '})();',
  ].join('\n');
  return runtimeScript;
}

export class TraderSandbox {
  readonly traderId: string;
  private readonly options: SandboxOptions;
  private isolate: ivm.Isolate | null = null;
  private context: ivm.Context | null = null;
  private evaluateRef: ivm.Reference<IsolateFunction> | null = null;
  private beginTickRef: ivm.Reference<IsolateFunction> | null = null;
  private compileError: string | null = null;
  /** Shared market bytes the current isolate's limit makes room for (see beginTick). */
  private sharedAllowance = 0;
  /** The shared bytes the isolate was last built for. */
  private sharedBytes = 0;
  /** Heap in use after the isolate's first tick; null until then. */
  private baselineHeapBytes: number | null = null;

  constructor(options: SandboxOptions) {
    this.traderId = options.traderId;
    this.options = options;
  }

  /** Kept as a field: asking the isolate (isDisposed) costs a native call on the hot path. */
  get ready(): boolean {
    return this.evaluateRef !== null;
  }

  /**
   * Build the isolate and compile the filter, with room for `sharedBytes` of shared market rows.
   * Returns null, or why the filter cannot run.
   */
  prepare(sharedBytes = 0): { code: TraderErrorCode; message: string } | null {
    if (this.ready && sharedBytes <= this.sharedAllowance) return null;
    if (this.compileError !== null) return { code: 'TRADER_COMPILE', message: this.compileError };
    this.dispose();
    // isolated-vm charges every SharedArrayBuffer an isolate holds against its limit, although the
    // memory is the thread's and shared by all. The runtime attaches all of its series up front, so
    // a limit of own budget + shared rows still leaves the filter exactly its own budget.
    this.sharedBytes = sharedBytes;
    this.baselineHeapBytes = null;
    this.sharedAllowance = Math.ceil(sharedBytes * 1.25);
    const isolate = new ivm.Isolate({
      memoryLimit: Math.max(8, this.options.memoryMb) + Math.ceil(this.sharedAllowance / 1048576),
      onCatastrophicError: (message) => this.options.onCatastrophicError(message),
    });
    this.isolate = isolate;
    try {
      const context = isolate.createContextSync();
      this.context = context;
      const host = this.options.host;
      context.global.setSync('__attach', new ivm.Callback((seriesId: number) => host.attach(seriesId)));
      context.global.setSync('__memo', new ivm.Callback((seriesId: number, helper: string, args: unknown[], offset?: number, length?: number) => host.memo(seriesId, helper, args, offset, length)));
      context.evalSync(runtimeSource(), { timeout: SETUP_TIMEOUT_MS, filename: 'file:///screener/runtime.js' });
      const runtime = context.global.getSync('__runtime', { reference: true }) as ivm.Reference<Record<string, IsolateFunction>>;
      context.global.deleteSync('__runtime');
      const compile = runtime.getSync('compile', { reference: true }) as ivm.Reference<IsolateFunction>;
      const error = compile.applySync(undefined, [this.options.code], { timeout: SETUP_TIMEOUT_MS }) as string | null;
      compile.release();
      if (error !== null) {
        this.compileError = error;
        runtime.release();
        this.dispose();
        return { code: 'TRADER_COMPILE', message: error };
      }
      this.evaluateRef = runtime.getSync('evaluate', { reference: true }) as ivm.Reference<IsolateFunction>;
      this.beginTickRef = runtime.getSync('beginTick', { reference: true }) as ivm.Reference<IsolateFunction>;
      runtime.release();
      return null;
    } catch (error) {
      const outcome = this.failure(error);
      this.dispose();
      return { code: outcome.code === 'TRADER_RUNTIME' ? 'TRADER_COMPILE' : outcome.code, message: outcome.message };
    }
  }

  /** Hand the isolate this tick's tickers and symbol specs; returns why the trader cannot run, or null. */
  beginTick(tickersJson: string, specsJson: string, sharedBytes: number): { code: TraderErrorCode; message: string } | null {
    const setupError = this.prepare(sharedBytes);
    if (setupError) return setupError;
    try {
      this.beginTickRef!.applySync(undefined, [tickersJson, specsJson], { timeout: SETUP_TIMEOUT_MS });
      return null;
    } catch (error) {
      const failure = this.failure(error);
      this.dispose();
      return failure;
    }
  }

  /** Run the filter for the tick's symbol number `symbol` (after beginTick); never throws. */
  evaluate(symbol: number): EvaluationOutcome {
    if (!this.ready) return { kind: 'error', code: 'TRADER_RUNTIME', message: 'sandbox is not ready', fatal: true };
    try {
      const outcome = this.evaluateRef!.applySync(undefined, [symbol], { timeout: this.options.timeoutMs }) as unknown;
      if (outcome === true || outcome === false) return { kind: 'ok', match: outcome, conditions: [] };
      return checkOutcome(outcome);
    } catch (error) {
      const failure = this.failure(error);
      // After a timeout or an exhausted heap the filter's state is unknown: start from a fresh isolate.
      this.dispose();
      return { kind: 'error', ...failure, fatal: true };
    }
  }

  dispose(): void {
    this.evaluateRef?.release();
    this.evaluateRef = null;
    this.beginTickRef?.release();
    this.beginTickRef = null;
    this.context?.release();
    this.context = null;
    if (this.isolate && !this.isolate.isDisposed) this.isolate.dispose();
    this.isolate = null;
  }

  /**
   * Rebuild the isolate when its heap has grown by more than `growthBytes` since the end of its
   * first tick; true when it did. V8 sizes an isolate's old generation from its limit (tens of MB)
   * and rarely runs a full collection in these short bursts, so garbage promoted tick after tick
   * (each tick's tickers and specs live through the whole tick) grows every trader's heap by about
   * 25 kB a tick towards that limit, times 20 traders. A fresh isolate costs a few ms, off the
   * tick's path. Filters keep no state between evaluations by contract (an error rebuilds the
   * isolate the same way). Measured from the first tick so a filter with a large working set is
   * not rebuilt every tick.
   */
  recycleAfterGrowth(growthBytes: number): boolean {
    if (!this.ready || !this.isolate || this.isolate.isDisposed) return false;
    const used = this.isolate.getHeapStatisticsSync().used_heap_size;
    if (this.baselineHeapBytes === null) {
      this.baselineHeapBytes = used;
      return false;
    }
    if (used <= this.baselineHeapBytes + growthBytes) return false;
    const sharedBytes = this.sharedBytes;
    this.dispose();
    this.prepare(sharedBytes);
    return true;
  }

  /** Heap in use by this trader's isolate, in bytes (0 when it is not built). */
  heapBytes(): number {
    if (!this.isolate || this.isolate.isDisposed) return 0;
    const stats = this.isolate.getHeapStatisticsSync();
    return stats.used_heap_size + stats.externally_allocated_size;
  }

  private failure(error: unknown): { code: TraderErrorCode; message: string } {
    const message = error instanceof Error ? error.message : String(error);
    if (this.isolate?.isDisposed || /memory limit/i.test(message)) {
      return { code: 'TRADER_MEMORY', message: `filter exceeded the ${this.options.memoryMb} MB memory limit` };
    }
    if (/timed out/i.test(message)) return { code: 'TRADER_TIMEOUT', message: `filter exceeded the ${this.options.timeoutMs} ms time limit` };
    return { code: 'TRADER_RUNTIME', message: message.slice(0, 500) };
  }
}

type IsolateFunction = (...args: unknown[]) => unknown;

/** The isolate's answer is data from an untrusted heap: check its shape before believing it. */
function checkOutcome(json: unknown): EvaluationOutcome {
  let outcome: unknown;
  try {
    outcome = typeof json === 'string' && json.length < 100_000 ? JSON.parse(json) : undefined;
  } catch {
    outcome = undefined;
  }
  if (!Array.isArray(outcome)) return { kind: 'error', code: 'TRADER_CONTRACT', message: 'filter broke its sandbox runtime', fatal: true };
  const [status, first, second] = outcome as RuntimeOutcome;
  if (status === 'ok' && typeof first === 'boolean' && Array.isArray(second) && second.every((c) => typeof c === 'string')) {
    return { kind: 'ok', match: first, conditions: second as string[] };
  }
  if ((status === 'runtime' || status === 'contract') && typeof first === 'string') {
    return { kind: 'error', code: status === 'runtime' ? 'TRADER_RUNTIME' : 'TRADER_CONTRACT', message: first.slice(0, 500), fatal: false };
  }
  return { kind: 'error', code: 'TRADER_CONTRACT', message: 'filter broke its sandbox runtime', fatal: true };
}
