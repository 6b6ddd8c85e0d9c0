// Entry of a screening thread: holds its traders' isolates and views on the shared market rows, evaluates ticks on request.
import { parentPort, workerData } from 'node:worker_threads';
import { KlineScratch, TickMemo } from './memo.ts';
import { CarriedResults } from './carriedResults.ts';
import { ResultBoard } from './resultBoard.ts';
import { DEFAULT_FILTER_TICK_BUDGET_MS, type FromThread, type ThreadOptions, type ThreadTraderResult, type ToThread, type TraderSpec } from './protocol.ts';
import { MAX_BATCH_SYMBOLS, TraderSandbox, type EvaluationOutcome, type SandboxHost } from './sandbox.ts';
import { seriesKey, SeriesTable } from './sharedSeries.ts';
import { type SymbolSpec, SymbolSpecBoard, type TickSpecs } from './specBoard.ts';
import { ThreadCpuShare } from './threadCpu.ts';
import { IsolateCollector } from './isolateCollector.ts';
import { defaultMemoryBudgetBytes } from '../heap.ts';

/**
 * An isolate whose heap grew by this much since its first tick is rebuilt (a fresh one holds about
 * 1.1 MB after a tick). Over 150 ticks of 20 traders: 447 MB RSS without rebuilding, 360 MB past
 * 4 MB, 342 MB past 2 MB (.tmp/perf, 200 symbols x 4 intervals).
 */
const RECYCLE_GROWTH_BYTES = 1024 * 1024;

/**
 * A trader's tick budget is CPU time too, with a wall-clock backstop at this multiple: tighter than
 * one evaluation's, since it bounds how long a filter that blocks without using CPU (Atomics.wait a
 * little on every symbol) can hold its thread's other traders back each tick.
 */
const TICK_WALL_BACKSTOP_FACTOR = 5;

/**
 * Isolate collection (IsolateCollector): after 3 ticks sat out in a row (a 1m trader sits out at most
 * the 5m, 15m and 1h ticks at the top of the hour), at most 8 a tick (~30 ms), and every isolate, each
 * right after its own run, once the process holds more than its memory budget (MEMORY_BUDGET_MB, by
 * default 75 % of the machine's memory; the memory alert fires at 80 %).
 */
const ISOLATE_IDLE_TICKS = 3;
const ISOLATE_COLLECTIONS_PER_TICK = 8;

/** Evaluates ticks for the traders assigned to this thread. Kept free of worker_threads so it can be driven directly. */
export class ThreadScreener {
  private readonly options: ThreadOptions;
  private readonly tickBudgetMs: number;
  private readonly traders = new Map<string, { spec: TraderSpec; sandbox: TraderSandbox }>();
  private readonly collector: IsolateCollector;
  private readonly table = new SeriesTable();
  private readonly scratch = new KlineScratch();
  /** Helper results kept across ticks for series that did not change (higher timeframes between their closes). */
  private readonly carried = new CarriedResults();
  /** The share of a core this thread gets during the tick: turns a trader's wall time into CPU time for its budget. */
  private readonly cpuShare = new ThreadCpuShare();
  private readonly onCatastrophicError: (message: string) => void;
  /** [tickId, 1 + trader index] of the code running now (see ThreadOptions.inFlight). */
  private readonly inFlight: Int32Array;
  /** The isolates' callbacks land here; it points at the current tick's memo while a tick runs. */
  private currentMemo: TickMemo | null = null;
  /** Helper results computed ahead per batch, read by the isolates without a callback. */
  private readonly board = new ResultBoard();
  /** This tick's symbol specs, once per layout, read in place by the isolates. */
  private readonly specBoard = new SymbolSpecBoard();
  /** The trader whose code runs now: a memo callback teaches the board what this trader asks for. */
  private currentTrader: string | null = null;
  /** Memo callbacks this tick (calls the board did not answer). */
  private memoCallbacks = 0;
  private readonly host: SandboxHost = {
    attach: (seriesId) => this.currentMemo?.attach(seriesId),
    memo: (library, seriesId, helper, argsKey, offset, length) => {
      const memo = this.currentMemo;
      if (!memo) return undefined;
      this.memoCallbacks++;
      const result = memo.memo(library, seriesId, helper, argsKey, offset, length);
      // Every argument was checked by the memo: it returns a result only for a call it accepted.
      if (result !== undefined && this.currentTrader !== null) this.board.learn(this.currentTrader, library, this.table, seriesId, helper as string, argsKey as string, offset, length, result);
      return result;
    },
    board: (library) => this.board.connect(library),
    specs: () => this.specBoard.connection(),
  };

  constructor(options: ThreadOptions, onCatastrophicError: (message: string) => void) {
    this.options = options;
    this.tickBudgetMs = options.filterTickBudgetMs ?? DEFAULT_FILTER_TICK_BUDGET_MS;
    this.onCatastrophicError = onCatastrophicError;
    this.inFlight = new Int32Array(options.inFlight ?? new SharedArrayBuffer(8));
    this.collector = new IsolateCollector({
      idleTicks: ISOLATE_IDLE_TICKS,
      maxIdlePerTick: ISOLATE_COLLECTIONS_PER_TICK,
      budgetBytes: options.memoryBudgetBytes ?? defaultMemoryBudgetBytes(),
      rss: () => process.memoryUsage.rss(),
      threads: options.threads ?? 1,
    });
  }

  setTraders(upsert: TraderSpec[], remove: string[]): void {
    for (const id of remove) {
      this.board.forget(id);
      this.traders.get(id)?.sandbox.dispose();
      this.traders.delete(id);
      this.collector.forget(id);
    }
    for (const spec of upsert) {
      this.board.forget(spec.id);
      this.traders.get(spec.id)?.sandbox.dispose();
      const sandbox = new TraderSandbox({
        traderId: spec.id,
        code: spec.code,
        helpers: spec.helpers,
        timeoutMs: this.options.filterTimeoutMs,
        memoryMb: this.options.filterMemoryMb,
        host: this.host,
        onCatastrophicError: this.onCatastrophicError,
      });
      this.traders.set(spec.id, { spec, sandbox });
      this.collector.fresh(spec.id);
      // Compile now so the first tick pays nothing; a failure is reported by every tick until the row changes.
      sandbox.prepare();
    }
  }

  /**
   * Normally ('symbols' order) a few symbols at a time (MAX_BATCH_SYMBOLS), every trader over them in
   * one call into its isolate: the host-side helper memo then only ever holds those symbols' klines
   * and results, so the thread's heap stays small whatever the size of the universe, and a trader's
   * isolate is entered once per batch instead of once per symbol (switching isolates and crossing
   * into one cost about as much as a light filter's evaluation). But every isolate runs, and so is
   * large, at once. When the process is short of memory (IsolateCollector.order), 'traders' order:
   * the results board is filled for the whole tick first, then one trader after another runs over
   * all symbols and its isolate is collected right after its run, so one isolate is large at a time
   * (beside those the budget still has room for, IsolateCollector.keepsGrown). Same evaluations,
   * same answers, same charges to each trader's tick budget.
   */
  tick(message: Extract<ToThread, { type: 'tick' }>): Extract<FromThread, { type: 'tickResult' }> {
    this.cpuShare.start();
    this.table.beginTick(message.buffers, message.dropped, message.slots);
    this.specBoard.beginTick();
    const { symbols } = message;
    const tickersJson = JSON.stringify(symbols.map((symbol) => message.tickers[symbol] ?? { s: symbol }));
    const memo = new TickMemo(this.table, this.scratch, this.carried);
    this.currentMemo = memo;
    this.memoCallbacks = 0;
    const order = this.collector.order;
    const slots = Object.entries(message.slots);
    this.board.beginTick(message.traderIds, slots.map(([, slot]) => slot[0]), new Set(slots.map(([key]) => key.slice(key.lastIndexOf('|') + 1))).size, order === 'traders');
    let runs: TraderRun[];
    try {
      Atomics.store(this.inFlight, 0, message.tickId);
      runs = order === 'traders' ? this.tickByTrader(message, tickersJson, memo) : this.tickBySymbols(message, tickersJson, memo);
      // Cleared only when the work ended normally: a throw that ends the thread leaves the mark on its trader.
      Atomics.store(this.inFlight, 1, 0);
    } finally {
      this.currentMemo = null;
      this.currentTrader = null;
      this.board.endTick();
    }
    let heapBytes = 0;
    for (const { sandbox } of this.traders.values()) heapBytes += sandbox.heapBytes();
    return { type: 'tickResult', tickId: message.tickId, traders: runs.map((run) => run.result), memoHits: memo.hits, memoMisses: memo.misses, memoCallbacks: this.memoCallbacks, heapBytes, order };
  }

  /** Heap bytes of a trader's isolate now (TraderSandbox.heapBytes; 0 when it is not built). */
  isolateHeapBytes(traderId: string): number {
    return this.traders.get(traderId)?.sandbox.heapBytes() ?? 0;
  }

  /** The normal order: a batch of symbols at a time, every trader over it (see tick). */
  private tickBySymbols(message: Extract<ToThread, { type: 'tick' }>, tickersJson: string, memo: TickMemo): TraderRun[] {
    const { symbols } = message;
    const runs: TraderRun[] = [];
    // Traders with the same timeframes (and hvnNodes timeframe) get the same symbol specs: built and serialized once per tick.
    const layouts = new Map<string, SymbolLayout>();
    for (let t = 0; t < message.traderIds.length; t++) {
      Atomics.store(this.inFlight, 1, t + 1);
      runs.push(this.beginTrader(message.traderIds[t]!, symbols, tickersJson, layouts));
    }
    const runsById = new Map(runs.map((run) => [run.result.traderId, run]));
    for (let from = 0; from < symbols.length; from += MAX_BATCH_SYMBOLS) {
      const to = Math.min(symbols.length, from + MAX_BATCH_SYMBOLS);
      memo.nextSymbol();
      this.board.fill(memo, this.table, symbols.slice(from, to), (traderId, ms) => {
        const run = runsById.get(traderId);
        if (run) run.result.evaluationMs += ms;
      });
      for (let t = 0; t < runs.length; t++) {
        const run = runs[t]!;
        if (!run.active) continue;
        Atomics.store(this.inFlight, 1, t + 1);
        this.currentTrader = run.result.traderId;
        this.evaluateSymbols(run, symbols, from, to);
      }
    }
    return runs;
  }

  /**
   * The memory-saving order: the board filled for every batch first (the memo still holds one batch
   * at a time), then each trader over all symbols, batch by batch as in the normal order, its
   * isolate collected right after. A batch's board work is charged to a trader when it reaches that
   * batch, so its tick budget runs out where it would in the normal order. Callbacks (calls the
   * board has not learned yet) are answered per trader and batch: the memo forgets them when the
   * trader moves on, so it stays bounded by a batch.
   */
  private tickByTrader(message: Extract<ToThread, { type: 'tick' }>, tickersJson: string, memo: TickMemo): TraderRun[] {
    const { symbols } = message;
    const batches: Array<{ from: number; to: number; charges: Map<string, number> }> = [];
    for (let from = 0; from < symbols.length; from += MAX_BATCH_SYMBOLS) {
      const to = Math.min(symbols.length, from + MAX_BATCH_SYMBOLS);
      const charges = new Map<string, number>();
      memo.nextSymbol();
      this.board.fill(memo, this.table, symbols.slice(from, to), (traderId, ms) => charges.set(traderId, (charges.get(traderId) ?? 0) + ms));
      batches.push({ from, to, charges });
    }
    const runs: TraderRun[] = [];
    const layouts = new Map<string, SymbolLayout>();
    for (let t = 0; t < message.traderIds.length; t++) {
      const traderId = message.traderIds[t]!;
      Atomics.store(this.inFlight, 1, t + 1);
      const rssBefore = process.memoryUsage.rss();
      const run = this.beginTrader(traderId, symbols, tickersJson, layouts);
      runs.push(run);
      this.currentTrader = traderId;
      for (const batch of batches) {
        run.result.evaluationMs += batch.charges.get(traderId) ?? 0;
        if (!run.active) continue;
        memo.nextSymbol();
        this.evaluateSymbols(run, symbols, batch.from, batch.to);
      }
      // As many as the budget leaves room for stay grown (IsolateCollector.keepsGrown): no collection, no heap growing back.
      if (!this.collector.keepsGrown(traderId)) this.collectAfterRun(run, process.memoryUsage.rss() - rssBefore);
    }
    return runs;
  }

  /**
   * In the memory-saving order, right after a trader's run: its isolate back to its smallest.
   * `grownBytes`, what the process's RSS grew by during the run of the (collected) isolate, is what
   * the normal order would add for this trader: measured on the way up, since V8 hands pages back to
   * the system partly later, on a helper thread, so what a collection frees at once understates it.
   */
  protected collectAfterRun(run: TraderRun, grownBytes: number): void {
    if (run.sandbox?.collectGarbage()) this.collector.collectedAfterRun(run.result.traderId, grownBytes);
  }

  /** Between ticks: rebuild isolates whose heaps grew (see TraderSandbox.recycleAbove). Returns how many. */
  recycleGrownIsolates(): number {
    let recycled = 0;
    for (const [id, { sandbox }] of this.traders) {
      if (!sandbox.recycleAfterGrowth(RECYCLE_GROWTH_BYTES)) continue;
      this.collector.fresh(id);
      recycled++;
    }
    return recycled;
  }

  /** Between ticks: collect the isolates IsolateCollector picks after a tick in which `ran` ran. Returns how many. */
  collectIsolates(ran: readonly string[]): number {
    let collected = 0;
    for (const id of this.collector.afterTick(ran)) if (this.traders.get(id)?.sandbox.collectGarbage()) collected++;
    return collected;
  }

  stop(): void {
    for (const { sandbox } of this.traders.values()) sandbox.dispose();
    this.traders.clear();
  }

  /** Per symbol: [position of the hvnNodes timeframe, then interval, series id, generation, start, length per timeframe]; null when a timeframe is missing. */
  private specsFor(spec: TraderSpec, symbols: string[]): Array<SymbolSpec | null> {
    const hvnPosition = spec.timeframes.indexOf(spec.hvnInterval);
    return symbols.map((symbol) => {
      const out: SymbolSpec = [hvnPosition];
      for (const interval of spec.timeframes) {
        const slot = this.table.slot(seriesKey(symbol, interval));
        if (!slot) return null;
        out.push(interval, ...slot);
      }
      return out;
    });
  }

  /** Bytes of the distinct shared buffers these specs name: what the isolate will hold views on. */
  private sharedBytes(specs: Array<SymbolSpec | null>): number {
    const seen = new Set<number>();
    let total = 0;
    for (const spec of specs) {
      if (!spec) continue;
      for (let i = 2; i < spec.length; i += 5) {
        const id = spec[i] as number;
        if (seen.has(id)) continue;
        seen.add(id);
        total += this.table.buffer(id)?.byteLength ?? 0;
      }
    }
    return total;
  }

  private beginTrader(traderId: string, symbols: string[], tickersJson: string, layouts: Map<string, SymbolLayout>): TraderRun {
    const result: ThreadTraderResult = { traderId, evaluated: [], matches: [], errors: [], warnings: [], evaluationMs: 0, severe: false };
    const trader = this.traders.get(traderId);
    if (!trader) {
      result.errors.push({ symbol: null, code: 'TRADER_RUNTIME', message: 'trader is not loaded on its screening thread' });
      result.severe = true;
      return { result, sandbox: null, specs: [], active: false };
    }
    const started = performance.now();
    const { spec, sandbox } = trader;
    this.injectFaults(spec);
    const layoutKey = `${spec.timeframes.join(',')}|${spec.hvnInterval}`;
    let layout = layouts.get(layoutKey);
    if (!layout) {
      // A symbol missing one of the trader's timeframes is skipped, as the contract says.
      const specs = this.specsFor(spec, symbols);
      layout = { specs, onBoard: this.specBoard.write(specs, spec.timeframes.length), sharedBytes: this.sharedBytes(specs) };
      layouts.set(layoutKey, layout);
    }
    const { specs } = layout;
    // The results board and the spec board are shared memory the isolate holds views on too.
    const setupError = sandbox.beginTick(tickersJson, layout.onBoard, layout.sharedBytes + this.board.bytes + this.specBoard.bytes);
    result.evaluationMs = performance.now() - started;
    if (setupError) {
      result.errors.push({ symbol: null, ...setupError });
      result.severe = true;
      return { result, sandbox, specs, active: false };
    }
    return { result, sandbox, specs, active: true };
  }

  /** Symbols `from` to `to` (exclusive) of one trader: in batches the sandbox sizes, or one by one. */
  private evaluateSymbols(run: TraderRun, symbols: string[], from: number, to: number): void {
    const sandbox = run.sandbox!;
    let s = from;
    while (s < to && run.active) {
      if (sandbox.batchSize <= 1) {
        this.evaluateSymbol(run, symbols, s++);
        continue;
      }
      const batch: number[] = [];
      while (s < to && batch.length < sandbox.batchSize) {
        if (run.specs[s] !== null) batch.push(s);
        s++;
      }
      if (batch.length === 0) continue;
      const started = performance.now();
      const outcomes = sandbox.evaluateBatch(batch);
      run.result.evaluationMs += performance.now() - started;
      if (outcomes === null) {
        // The batch could not vouch for each evaluation's CPU limit: each symbol alone, under it.
        for (const symbol of batch) if (run.active) this.evaluateSymbol(run, symbols, symbol);
        continue;
      }
      // A trader stopped part-way (fatal error, tick budget) keeps none of the batch's later answers.
      for (let i = 0; i < batch.length && run.active; i++) this.record(run, symbols, batch[i]!, outcomes[i]!);
    }
  }

  private evaluateSymbol(run: TraderRun, symbols: string[], s: number): void {
    if (run.specs[s] === null) return;
    const started = performance.now();
    const outcome = run.sandbox!.evaluate(s);
    run.result.evaluationMs += performance.now() - started;
    this.record(run, symbols, s, outcome);
  }

  /** One symbol's outcome in the trader's result; a fatal error or a spent tick budget stops the trader for this tick. */
  private record(run: TraderRun, symbols: string[], s: number, outcome: EvaluationOutcome): void {
    const symbol = symbols[s]!;
    const { result } = run;
    if (outcome.kind === 'ok') {
      result.evaluated.push(symbol);
      if (outcome.match) result.matches.push(outcome.values === undefined ? { symbol, conditions: outcome.conditions } : { symbol, conditions: outcome.conditions, values: outcome.values });
      if (outcome.warning !== null) result.warnings.push({ symbol, message: outcome.warning });
      this.enforceTickBudget(run, s);
      return;
    }
    result.errors.push({ symbol, code: outcome.code, message: outcome.message });
    if (!outcome.fatal) {
      this.enforceTickBudget(run, s);
    } else {
      // One runaway evaluation costs one time budget per tick, not one per symbol.
      result.severe = true;
      run.active = false;
      const skipped = symbols.length - s - 1;
      if (skipped > 0) result.errors.push({ symbol: null, code: outcome.code, message: `stopped for this tick after ${outcome.code}; ${skipped} symbols not evaluated` });
    }
  }

  /**
   * Every evaluation stays under FILTER_TIMEOUT_MS, yet one just under it on every symbol would hold
   * every other trader of this thread back for symbols × timeout. Once a trader has spent its budget
   * this tick, its remaining symbols are skipped and the tick counts as failing for it (toward
   * disabling); the other traders run on time. Per thread: symbols are split across threads, which
   * run in parallel, so the budget bounds the wait of each thread's traders.
   */
  private enforceTickBudget(run: TraderRun, s: number): void {
    const { result } = run;
    // Judged on CPU time, like one evaluation: the trader's wall time scaled by the share of a core the
    // thread got this tick (a filter that blocks instead of computing is scaled like the rest, so it
    // still spends its budget). The CPU clock is asked only once the wall time says it may be spent.
    if (result.evaluationMs < this.tickBudgetMs) return;
    if (result.evaluationMs < this.tickBudgetMs * TICK_WALL_BACKSTOP_FACTOR && result.evaluationMs * this.cpuShare.now() < this.tickBudgetMs) return;
    let skipped = 0;
    for (let next = s + 1; next < run.specs.length; next++) if (run.specs[next] !== null) skipped++;
    if (skipped === 0) return;
    run.active = false;
    result.severe = true;
    result.errors.push({
      symbol: null,
      code: 'TRADER_TIMEOUT',
      message: `spent its ${this.tickBudgetMs} ms tick budget (FILTER_TICK_BUDGET_MS) after ${result.evaluated.length + result.errors.length} symbols in ${Math.round(result.evaluationMs)} ms; ${skipped} symbols not evaluated this tick`,
    });
  }

  /** Test-only (config FAULT_INJECTION): crash the thread or abort the process for a filter carrying a marker. */
  private injectFaults(spec: TraderSpec): void {
    const faults = this.options.faults;
    if (!faults) return;
    // process.abort() is refused in a worker thread; SIGABRT ends the whole process the same way.
    if (faults.processAbortMarker && spec.code.includes(faults.processAbortMarker)) process.kill(process.pid, 'SIGABRT');
    if (faults.threadExitMarker && spec.code.includes(faults.threadExitMarker)) process.exit(71);
  }
}

/** One tick's symbol specs for a set of timeframes, where the isolates read them, and the shared bytes they name. */
interface SymbolLayout {
  specs: Array<SymbolSpec | null>;
  onBoard: TickSpecs;
  sharedBytes: number;
}

export interface TraderRun {
  result: ThreadTraderResult;
  sandbox: TraderSandbox | null;
  specs: Array<SymbolSpec | null>;
  /** False once the trader cannot run this tick (setup failed, or a runaway evaluation). */
  active: boolean;
}

function post(message: FromThread, transfer?: ArrayBuffer[]): void {
  parentPort!.postMessage(message, transfer);
}

if (parentPort) {
  const screener = new ThreadScreener(workerData as ThreadOptions, (message) => {
    // V8 lost control of an isolate: nothing in this thread can be trusted; the pool restarts it.
    post({ type: 'catastrophic', message });
    process.exit(70);
  });
  parentPort.on('message', (message: ToThread) => {
    if (message.type === 'traders') screener.setTraders(message.upsert, message.remove);
    else if (message.type === 'tick') {
      post(screener.tick(message));
      // After the reply, so the rebuild costs no tick any latency.
      screener.recycleGrownIsolates();
      screener.collectIsolates(message.traderIds);
    }
    else if (message.type === 'stop') {
      screener.stop();
      parentPort!.close();
    }
  });
  post({ type: 'ready' });
}
