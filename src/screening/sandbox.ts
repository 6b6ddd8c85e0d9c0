// One trader's isolate: no Node, no network, no env, a CPU budget per evaluation and a memory budget per trader.
import ivm from 'isolated-vm';
import { CANDLE_ROW_FIELDS, type HelpersVersion, INTERVALS } from '../domain.ts';
import type { TraderErrorCode } from '../errors.ts';
import { helpersSource, KLINE_HELPERS } from './helpers.ts';
import { ThreadCpuLedger } from './threadCpu.ts';
import type { BoardConnection } from './resultBoard.ts';
import type { SpecBoardConnection, TickSpecs } from './specBoard.ts';
import { ISOLATE_COLLECTOR_SOURCE, withGcExposed } from '../heap.ts';
import { BATCH_SEPARATOR, decodeVerdict, hostJudge, JUDGE_LIMITS, MAX_ARGS_KEY_CHARS, MAX_MESSAGE_CHARS, runtimeFunctionsSource } from './sandboxRuntime.ts';

export type EvaluationOutcome =
  | { kind: 'ok'; match: boolean; conditions: string[]; warning: string | null; values?: Record<string, number> }
  /** `fatal`: the isolate is gone or unreliable; stop using it this tick and rebuild it. */
  | { kind: 'error'; code: TraderErrorCode; message: string; fatal: boolean };

/** What the isolate may ask of its thread: candle rows of this tick's series and memoized helper results. */
export interface SandboxHost {
  /** The shared buffer of a series' rows (the isolate reads it without a copy), or undefined. */
  attach(seriesId: unknown): SharedArrayBuffer | undefined;
  /**
   * A helper's result on `length` candles from `offset` of the series (all of it when omitted), its
   * other arguments encoded as `argsKey` by the runtime. Every argument comes from an untrusted heap.
   */
  memo(library: HelpersVersion, seriesId: unknown, helper: unknown, argsKey: unknown, offset?: unknown, length?: unknown): unknown;
  /** The thread's results board for an isolate of `library` (see ResultBoard.connect); absent or undefined: helpers use memo() alone. */
  board?(library: HelpersVersion): BoardConnection | undefined;
  /** The thread's spec board (SymbolSpecBoard.connection), where beginTick's TickSpecs point; without one no symbol can be evaluated. */
  specs?(): SpecBoardConnection | undefined;
}

export interface SandboxOptions {
  traderId: string;
  code: string;
  /** The helper library the filter runs against, in the isolate and in the host's memo. */
  helpers: HelpersVersion;
  /** CPU time one evaluation may use. */
  timeoutMs: number;
  memoryMb: number;
  host: SandboxHost;
  /** Called when V8 loses control of the isolate; the thread must end. */
  onCatastrophicError: (message: string) => void;
}

/** Setup (runtime install, compile) gets a looser budget than one evaluation: it parses the whole library. */
const SETUP_TIMEOUT_MS = 2000;

/**
 * Limits are judged on the CPU time the screening thread spent in the trader's calls (the isolate
 * runs synchronously on this thread; isolated-vm's own `cpuTime` is wall time in its prebuilt
 * binaries, so it cannot be used), so a machine short of
 * CPU (a shared vCPU, a busy neighbour) does not turn healthy evaluations into timeouts. Wall time
 * still stops an evaluation at this multiple of its CPU limit: a filter blocked outside the CPU
 * (Atomics.wait) or a starved machine cannot hold its thread for ever. Ten, so that an honest
 * evaluation survives a machine giving the thread a tenth of a core (seen under test load).
 */
export const WALL_BACKSTOP_FACTOR = 10;

/** Most symbols one call into an isolate evaluates (evaluateBatch): one isolate switch and crossing per this many evaluations. */
export const MAX_BATCH_SYMBOLS = 16;

/**
 * A batch is sized so its evaluations are expected to use at most this share of one evaluation's CPU
 * limit together: then a batch whose CPU stays within the limit vouches for every evaluation in it.
 */
const BATCH_SHARE_OF_LIMIT = 0.25;

/**
 * A batch is stopped at this multiple of one evaluation's CPU limit in wall time (an honest batch is
 * sized to a quarter of the limit: room for a machine giving the thread a twelfth of a core), so a
 * runaway in a batch costs this much before its symbol is run alone under the usual limits: its
 * usual wall backstop plus 30 %, once (the trader is evaluated one symbol at a time from then on).
 */
const BATCH_WALL_FACTOR = 3;

/** How stale the CPU mark may get before a call (see ThreadCpuLedger): the slack of the CPU limit. */
const CPU_MARK_REFRESH_MS = 10;
/** One per screening thread (module state is per thread): its isolates share the thread's clock. */
const cpuLedger = new ThreadCpuLedger(CPU_MARK_REFRESH_MS);

const runtimeScripts = new Map<string, string>();

/**
 * The script that installs the runtime and a helper library in a fresh context, built once per thread,
 * library and memory limit. Builtins that allocate in one piece are capped at the trader's own memory
 * limit (guardAllocations): elements of 8 bytes, characters of up to 2.
 */
function runtimeSource(version: HelpersVersion, memoryMb: number): string {
  const key = `${version}|${memoryMb}`;
  let script = runtimeScripts.get(key);
  if (script !== undefined) return script;
  const bytes = Math.max(8, memoryMb) * 1024 * 1024;
  script = [
    '"use strict";',
    // WebAssembly memory lives outside the V8 heap and escapes the isolate's memory limit: one
    // `new WebAssembly.Memory({ initial: 4096 })` commits 256 MB of the worker's RSS. Filters have
    // no use for it, and the namespace object is the only way to its constructors.
    'delete globalThis.WebAssembly;',
    'globalThis.__runtime = (function () {',
    `  const library = (function () { ${helpersSource(version)} })();`,
    runtimeFunctionsSource(),
    `  const runtime = installRuntime(globalThis.__attach, globalThis.__memo, globalThis.__board, globalThis.__specs, library, ${JSON.stringify([...KLINE_HELPERS])}, ${CANDLE_ROW_FIELDS}, ${JSON.stringify(JUDGE_LIMITS)}, ${JSON.stringify(INTERVALS)});`,
    `  guardAllocations(${Math.floor(bytes / 8)}, ${Math.floor(bytes / 2)});`,
    '  delete globalThis.__attach;',
    '  delete globalThis.__memo;',
    '  delete globalThis.__board;',
    '  delete globalThis.__specs;',
    '  return runtime;',
    '})();',
  ].join('\n');
  runtimeScripts.set(key, script);
  return script;
}

/**
 * Whether a filter's code can read its `ticker` or `hvnNodes` argument: it names it, or `arguments` or
 * `eval`, which could reach it. The nodes cost a host round trip per symbol, the tickers a copy into
 * the isolate and a parse per trader and tick (~0.1 ms each): a filter that names neither cannot tell
 * it got an empty object and an empty list instead.
 */
export function namesTicker(code: string): boolean {
  return /\bticker\b|\barguments\b|\beval\b/.test(code);
}
export function namesHvnNodes(code: string): boolean {
  return /\bhvnNodes\b|\barguments\b|\beval\b/.test(code);
}

export class TraderSandbox {
  readonly traderId: string;
  private readonly options: SandboxOptions;
  /** The filter can read its ticker (namesTicker): else the tickers stay on the host. */
  private readonly wantsTicker: boolean;
  /** The filter can read its hvnNodes (namesHvnNodes): else the isolate hands it an empty list without asking. */
  private readonly wantsHvnNodes: boolean;
  private isolate: ivm.Isolate | null = null;
  private context: ivm.Context | null = null;
  private evaluateRef: ivm.Reference<IsolateFunction> | null = null;
  private beginTickRef: ivm.Reference<IsolateFunction> | null = null;
  private evaluateBatchRef: ivm.Reference<IsolateFunction> | null = null;
  /** This tick's beginTick arguments, to rebuild the isolate after a failed batch. */
  private tick: { tickersJson: string; specs: TickSpecs; sharedBytes: number } | null = null;
  /**
   * Symbols per call (evaluateBatch), sized from the trader's own time per evaluation; 1 for the rest
   * of the tick once a batch could not vouch for its evaluations, and for good once one of its
   * evaluations failed a limit on its own (a runaway pays for a failed batch once).
   */
  batchSize = MAX_BATCH_SYMBOLS;
  /** Wall ms per evaluation lately (batches and single calls): what the next tick's batches are sized from. */
  private paceMs = 0;
  /** One of this filter's evaluations broke a limit (time, memory) on its own: no more batches for it. */
  private brokeLimit = false;
  /** Collects this isolate (ISOLATE_COLLECTOR_SOURCE: low-memory, see collectGarbage, or ordinary, see collectMajor); null when its context got no `gc`. */
  private collectRef: ivm.Reference<IsolateFunction> | null = null;
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
    this.wantsTicker = namesTicker(options.code);
    this.wantsHvnNodes = namesHvnNodes(options.code);
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
      // Created with V8's gc extension, taken away from the global before the runtime or the filter runs (heap.ts).
      const context = withGcExposed(() => isolate.createContextSync());
      this.context = context;
      const collector = context.evalSync(ISOLATE_COLLECTOR_SOURCE, { reference: true, timeout: SETUP_TIMEOUT_MS }) as ivm.Reference<IsolateFunction>;
      if (collector.typeof === 'function') this.collectRef = collector;
      else collector.release();
      const { host, helpers } = this.options;
      context.global.setSync('__attach', new ivm.Callback((seriesId: unknown) => host.attach(seriesId)));
      // The runtime passes primitives only; anything else (or an oversized key) is refused before the host looks at it.
      context.global.setSync(
        '__memo',
        new ivm.Callback((seriesId: unknown, helper: unknown, argsKey: unknown, offset?: unknown, length?: unknown) =>
          typeof argsKey === 'string' && argsKey.length <= MAX_ARGS_KEY_CHARS ? host.memo(helpers, seriesId, helper, argsKey, offset, length) : undefined,
        ),
      );
      // Called when the board's epoch moved (a new layout or directory): a few times per trader and tick at most.
      context.global.setSync('__board', new ivm.Callback(() => host.board?.(helpers)));
      // Called when the spec board's buffer was replaced (it grew): a few times in the thread's life.
      context.global.setSync('__specs', new ivm.Callback(() => host.specs?.()));
      context.evalSync(runtimeSource(helpers, this.options.memoryMb), { timeout: SETUP_TIMEOUT_MS, filename: 'file:///screener/runtime.js' });
      const runtime = context.global.getSync('__runtime', { reference: true }) as ivm.Reference<Record<string, IsolateFunction>>;
      context.global.deleteSync('__runtime');
      const compile = runtime.getSync('compile', { reference: true }) as ivm.Reference<IsolateFunction>;
      const error = compile.applySync(undefined, [this.options.code, this.wantsTicker, this.wantsHvnNodes], { timeout: SETUP_TIMEOUT_MS }) as string | null;
      compile.release();
      if (error !== null) {
        this.compileError = error;
        runtime.release();
        this.dispose();
        return { code: 'TRADER_COMPILE', message: error };
      }
      this.evaluateRef = runtime.getSync('evaluate', { reference: true }) as ivm.Reference<IsolateFunction>;
      this.beginTickRef = runtime.getSync('beginTick', { reference: true }) as ivm.Reference<IsolateFunction>;
      this.evaluateBatchRef = runtime.getSync('evaluateBatch', { reference: true }) as ivm.Reference<IsolateFunction>;
      runtime.release();
      return null;
    } catch (error) {
      const outcome = this.failure(error);
      this.dispose();
      return { code: outcome.code === 'TRADER_RUNTIME' ? 'TRADER_COMPILE' : outcome.code, message: outcome.message };
    }
  }

  /**
   * Hand the isolate this tick's tickers and where its symbol specs are on the thread's spec board
   * (the host's specs()); returns why the trader cannot run, or null.
   */
  beginTick(tickersJson: string, specs: TickSpecs, sharedBytes: number): { code: TraderErrorCode; message: string } | null {
    this.tick = { tickersJson, specs, sharedBytes };
    // A batch that failed under a passing load (a starved machine) costs the trader single calls for one tick only.
    if (!this.brokeLimit) this.batchSize = batchSizeFor(this.paceMs, this.options.timeoutMs);
    const setupError = this.prepare(sharedBytes);
    if (setupError) return setupError;
    try {
      const ready = this.beginTickRef!.applySync(undefined, [this.wantsTicker ? tickersJson : '[]', specs.epoch, specs.offset, specs.stride, specs.count], { timeout: this.wallLimitMs() });
      return ready === true ? null : { code: 'TRADER_RUNTIME', message: 'symbol specs unavailable to the sandbox' };
    } catch (error) {
      const failure = this.failure(error);
      this.dispose();
      return failure;
    }
  }

  /** Run the filter for the tick's symbol number `symbol` (after beginTick); never throws. */
  evaluate(symbol: number): EvaluationOutcome {
    if (!this.ready) return { kind: 'error', code: 'TRADER_RUNTIME', message: 'sandbox is not ready', fatal: true };
    let raw: unknown;
    const started = performance.now();
    cpuLedger.before(started);
    try {
      raw = this.evaluateRef!.applySync(undefined, [symbol], { timeout: this.wallLimitMs() });
    } catch (error) {
      const failure = this.failure(error);
      // After a timeout or an exhausted heap the filter's state is unknown: start from a fresh isolate.
      this.dispose();
      this.brokeLimit = true;
      return { kind: 'error', ...failure, fatal: true };
    }
    const ended = performance.now();
    const wallMs = ended - started;
    if (wallMs > this.options.timeoutMs && cpuLedger.cpuOf(ended, wallMs) > this.options.timeoutMs) {
      this.dispose();
      this.brokeLimit = true;
      return { kind: 'error', code: 'TRADER_TIMEOUT', message: `filter exceeded the ${this.options.timeoutMs} ms CPU time limit`, fatal: true };
    }
    this.paceMs = wallMs;
    return outcomeOf(raw);
  }

  /**
   * Run the filter for several of the tick's symbols in one call (after beginTick); never throws.
   * Null when the call cannot vouch that each evaluation kept within its CPU limit: the call used more
   * CPU than one evaluation may, or failed (a runaway stopped at BATCH_WALL_FACTOR times the limit, an
   * exhausted heap: the isolate is then rebuilt for this tick). The caller then runs each of these
   * symbols alone with evaluate(), under the usual limits, so only the guilty symbol fails.
   */
  evaluateBatch(symbols: number[]): EvaluationOutcome[] | null {
    if (!this.ready) return null;
    let raw: unknown;
    const started = performance.now();
    cpuLedger.before(started);
    try {
      raw = this.evaluateBatchRef!.applySync(undefined, [symbols], { timeout: this.options.timeoutMs * BATCH_WALL_FACTOR, arguments: { copy: true } });
    } catch {
      this.dispose();
      // A setup failure here is the next evaluate()'s to report, as 'sandbox is not ready'.
      if (this.tick) this.beginTick(this.tick.tickersJson, this.tick.specs, this.tick.sharedBytes);
      this.batchSize = 1;
      return null;
    }
    const ended = performance.now();
    const wallMs = ended - started;
    if (wallMs > this.options.timeoutMs && cpuLedger.cpuOf(ended, wallMs) > this.options.timeoutMs) {
      this.batchSize = 1;
      return null;
    }
    const answers = typeof raw === 'string' ? raw.split(BATCH_SEPARATOR) : [];
    if (answers.length !== symbols.length) return symbols.map(() => ({ kind: 'error', code: 'TRADER_CONTRACT', message: 'filter broke its sandbox runtime', fatal: true }));
    // The next batch is sized from this one's time per evaluation (wall time: never less than CPU time).
    this.paceMs = wallMs / symbols.length;
    this.batchSize = batchSizeFor(this.paceMs, this.options.timeoutMs);
    return answers.map((answer) => outcomeOf(answer === 't' ? true : answer === 'f' ? false : answer));
  }

  private wallLimitMs(): number {
    return this.options.timeoutMs * WALL_BACKSTOP_FACTOR;
  }

  dispose(): void {
    this.collectRef?.release();
    this.collectRef = null;
    this.evaluateRef?.release();
    this.evaluateRef = null;
    this.beginTickRef?.release();
    this.beginTickRef = null;
    this.evaluateBatchRef?.release();
    this.evaluateBatchRef = null;
    this.context?.release();
    this.context = null;
    if (this.isolate && !this.isolate.isDisposed) this.isolate.dispose();
    this.isolate = null;
  }

  /**
   * Collect, and if that is not enough rebuild, the isolate when its heap has grown by more than
   * `growthBytes` since the end of its first tick; true when it was rebuilt. V8 sizes an isolate's
   * old generation from its limit (tens of MB) and rarely runs a full collection in these short
   * bursts, so garbage promoted tick after tick (each tick's tickers live through the whole
   * tick) grows every trader's heap by about 25 kB a tick towards that limit, times 20 traders. One
   * ordinary full collection (1-4 ms on these heaps, off the tick) takes it back and keeps the
   * isolate's compiled code: a rebuilt isolate costs a few ms to build and then runs its first ticks
   * in V8's slower tiers until the runtime and the filter are optimized again (10-15 % of a tick's
   * CPU in the ticks after). Only a heap that stays grown after the collection (a filter keeping a
   * large working set in globals) is rebuilt; filters keep no state between evaluations by contract
   * (an error rebuilds the isolate the same way). Measured from the first tick so a filter with a
   * large working set is not rebuilt every tick.
   */
  recycleAfterGrowth(growthBytes: number): boolean {
    if (!this.ready || !this.isolate || this.isolate.isDisposed) return false;
    if (this.baselineHeapBytes === null) {
      // What the first tick left alive, without its garbage: the measure of growth from then on.
      this.baselineHeapBytes = this.collectMajor() ?? this.isolate.getHeapStatisticsSync().used_heap_size;
      return false;
    }
    if (this.isolate.getHeapStatisticsSync().used_heap_size <= this.baselineHeapBytes + growthBytes) return false;
    const live = this.collectMajor();
    if (live !== null && live <= this.baselineHeapBytes + growthBytes) return false;
    const sharedBytes = this.sharedBytes;
    this.dispose();
    this.prepare(sharedBytes);
    return true;
  }

  /** One ordinary full collection of the isolate; the heap in use after it, or null when it cannot (the isolate is then rebuilt). */
  private collectMajor(): number | null {
    if (!this.collectRef || !this.isolate) return null;
    try {
      this.collectRef.applySync(undefined, [false], { timeout: SETUP_TIMEOUT_MS });
      return this.isolate.getHeapStatisticsSync().used_heap_size;
    } catch {
      return null;
    }
  }

  /**
   * One low-memory collection of the isolate between ticks (IsolateCollector decides when): its heap
   * shrinks to what is live and the pages go back to the system. False when it cannot (no isolate, no
   * `gc`); an isolate that fails it is rebuilt by its next tick, as after any fatal error.
   */
  collectGarbage(): boolean {
    if (!this.ready || !this.collectRef) return false;
    try {
      this.collectRef.applySync(undefined, [true], { timeout: SETUP_TIMEOUT_MS });
      return true;
    } catch {
      this.dispose();
      return false;
    }
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
    if (/timed out/i.test(message)) return { code: 'TRADER_TIMEOUT', message: `filter exceeded the ${this.options.timeoutMs * WALL_BACKSTOP_FACTOR} ms wall-clock backstop (${WALL_BACKSTOP_FACTOR} x its CPU time limit)` };
    return { code: 'TRADER_RUNTIME', message: hostJudge.sanitize(message, MAX_MESSAGE_CHARS) };
  }
}

type IsolateFunction = (...args: unknown[]) => unknown;

/** Symbols per batch for a filter taking `paceMs` per evaluation: their CPU together within a share of one evaluation's limit. */
function batchSizeFor(paceMs: number, timeoutMs: number): number {
  return Math.max(1, Math.min(MAX_BATCH_SYMBOLS, Math.floor((timeoutMs * BATCH_SHARE_OF_LIMIT) / Math.max(paceMs, 1e-3))));
}

/** What the host makes of one answer of the runtime, read again with the host's own code (decodeVerdict). */
function outcomeOf(raw: unknown): EvaluationOutcome {
  const decoded = decodeVerdict(raw);
  if (decoded === null) return { kind: 'error', code: 'TRADER_CONTRACT', message: 'filter broke its sandbox runtime', fatal: true };
  if (decoded.kind === 'error') return { kind: 'error', code: 'TRADER_RUNTIME', message: decoded.message, fatal: false };
  return { kind: 'ok', ...decoded.verdict };
}
