// The core-facing screening engine: traders' filters in per-trader isolates on worker threads, ticks evaluated in parallel.
import { availableParallelism } from 'node:os';
import type { Clock } from '../clock.ts';
import type { Interval, Trader } from '../domain.ts';
import { IllegalStateError } from '../errors.ts';
import { LifecycleGuard } from '../lifecycle.ts';
import type { Logger } from '../logger.ts';
import type { LifecycleState, ScreenerPort, ScreenerRun, TraderTickOutcome, TraderUpdate } from '../ports.ts';
import { hvnInterval, tickerFields } from './contract.ts';
import { ScreenerThread, ThreadCrashedError } from './pool.ts';
import { DEFAULT_FILTER_TICK_BUDGET_MS, type ThreadFaults, type ThreadTraderResult, type TraderSpec } from './protocol.ts';
import { seriesKey, SharedSeriesStore, type SeriesBuffer, type SeriesSlot } from './sharedSeries.ts';
import { defaultMemoryBudgetBytes } from '../heap.ts';
import type { TickOrder } from './isolateCollector.ts';

export interface ScreenerOptions {
  /** 0 = os.availableParallelism(). */
  threads: number;
  filterTimeoutMs: number;
  filterMemoryMb: number;
  /** Evaluation ms one trader may spend per thread per tick (see ThreadScreener); DEFAULT_FILTER_TICK_BUDGET_MS when absent. */
  filterTickBudgetMs?: number;
  failureLimit: number;
  clock: Clock;
  logger: Logger;
  /** Test-only fault injection (config FAULT_INJECTION). */
  faults?: ThreadFaults;
  /**
   * Resident bytes of the process above which the threads collect their isolates and run ticks in the
   * memory-saving order (ThreadOptions, IsolateCollector): config MEMORY_BUDGET_MB; 75 % of the
   * machine's memory when absent.
   */
  memoryBudgetBytes?: number;
}

/** What ScreenerPort.run resolves to: the port's per-trader outcomes, plus what the run cost. */
export interface ScreenerRunResult {
  interval: Interval;
  candleOpenTime: number;
  traders: TraderTickOutcome[];
  durationMs: number;
  evaluations: number;
  /** Threads that ran this tick in the memory-saving order (one trader after another, each isolate collected after its run). */
  memorySavingThreads: number;
}

interface DisabledRecord {
  reason: string;
  /** The row version the disable applies to; a different updated_at (or filter) lifts it. */
  traderUpdatedAt: string;
  codeHash: string | null;
}

/** A thread gets this long per evaluation it may run before it counts as stuck, plus a fixed margin. */
const THREAD_DEADLINE_MARGIN_MS = 10_000;

/** Runs of one tick on one thread: after a crash charged to a trader, the others run again without it. */
const MAX_THREAD_ATTEMPTS = 3;

/**
 * A tick fails for a trader when its filter cannot run (compile error), runs away (timeout, memory),
 * or fails on every symbol it was given. `failureLimit` failing ticks in a row disable it until its
 * row changes. A filter that fails on a few odd symbols keeps running; those errors are still reported.
 */
export class Screener implements ScreenerPort {
  private readonly options: ScreenerOptions;
  private readonly lifecycle = new LifecycleGuard('Screener');
  private readonly logger: Logger;
  private readonly threads: ScreenerThread[];
  private readonly traders = new Map<string, Trader>();
  private readonly assignment = new Map<string, ScreenerThread>();
  private readonly failingTicks = new Map<string, number>();
  private readonly disabled = new Map<string, DisabledRecord>();
  private readonly store = new SharedSeriesStore();
  /** Ticks run one at a time: the shared rows are written only while no thread reads them. */
  private queue: Promise<unknown> = Promise.resolve();
  private tickCounter = 0;
  private totals = { evaluations: 0, errors: 0 };
  private readonly memoryBudgetBytes: number;
  /** The order each thread's last tick ran in (see IsolateCollector). */
  private readonly lastOrder = new Map<number, TickOrder>();

  constructor(options: ScreenerOptions) {
    this.options = options;
    this.logger = options.logger;
    const count = options.threads > 0 ? options.threads : availableParallelism();
    this.memoryBudgetBytes = options.memoryBudgetBytes ?? defaultMemoryBudgetBytes();
    const threadOptions = {
      filterTimeoutMs: options.filterTimeoutMs,
      filterMemoryMb: options.filterMemoryMb,
      filterTickBudgetMs: options.filterTickBudgetMs ?? DEFAULT_FILTER_TICK_BUDGET_MS,
      ...(options.faults ? { faults: options.faults } : {}),
      memoryBudgetBytes: this.memoryBudgetBytes,
      threads: count,
    };
    this.threads = Array.from({ length: count }, (_, index) => new ScreenerThread(index, threadOptions, this.logger));
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  start(): Promise<void> {
    return this.lifecycle.start(async () => {
      await Promise.all(this.threads.map((thread) => thread.start()));
      this.logger.info({ event: 'screener_started', threads: this.threads.length }, 'screener started');
    });
  }

  stop(): Promise<void> {
    return this.lifecycle.stop(async () => {
      await Promise.all(this.threads.map((thread) => thread.stop()));
    });
  }

  /**
   * The whole trader list, for a caller that keeps no diff of its own (replay, bench, tests): what is not in it is
   * dropped. The worker passes the repository's diff through updateTraders instead of diffing the list a second time.
   */
  setTraders(traders: Trader[]): void {
    const incoming = new Set(traders.map((trader) => trader.id));
    this.updateTraders({ upserted: traders, removed: [...this.assignment.keys()].filter((id) => !incoming.has(id)) });
  }

  /** Compile new and changed traders (by codeHash/updatedAt), drop removed ones; a changed row lifts a disable. */
  updateTraders(changes: TraderUpdate): void {
    const upserts = new Map<ScreenerThread, TraderSpec[]>();
    const removals = new Map<ScreenerThread, string[]>();
    for (const id of changes.removed) {
      const thread = this.assignment.get(id);
      if (thread !== undefined) removals.set(thread, [...(removals.get(thread) ?? []), id]);
      this.assignment.delete(id);
      this.traders.delete(id);
      this.failingTicks.delete(id);
      this.disabled.delete(id);
    }
    for (const trader of changes.upserted) {
      const previous = this.traders.get(trader.id);
      this.traders.set(trader.id, trader);
      const record = this.disabled.get(trader.id);
      if (record && (record.traderUpdatedAt !== trader.updatedAt || (record.codeHash !== null && record.codeHash !== trader.codeHash))) {
        this.disabled.delete(trader.id);
        this.logger.info({ event: 'trader_enabled', traderId: trader.id }, 'trader re-enabled by a changed row');
      }
      if (previous && previous.codeHash === trader.codeHash && previous.updatedAt === trader.updatedAt) continue;
      this.failingTicks.delete(trader.id);
      let thread = this.assignment.get(trader.id);
      if (!thread) {
        thread = this.leastLoadedThread();
        this.assignment.set(trader.id, thread);
      }
      upserts.set(thread, [...(upserts.get(thread) ?? []), specOf(trader)]);
    }
    for (const thread of this.threads) thread.setTraders(upserts.get(thread) ?? [], removals.get(thread) ?? []);
  }

  disabledTraders(): Array<{ traderId: string; reason: string }> {
    return [...this.disabled]
      .filter(([id, record]) => this.isDisabledRecordCurrent(id, record))
      .map(([traderId, record]) => ({ traderId, reason: record.reason }))
      .sort((a, b) => compare(a.traderId, b.traderId));
  }

  /** Restore a disable recorded before a restart; it holds until the trader's row changes. */
  disable(traderId: string, reason: string, traderUpdatedAt: string): void {
    this.disabled.set(traderId, { reason, traderUpdatedAt, codeHash: null });
  }

  stats(): { threads: number; threadRestarts: number; evaluations: number; errors: number; memoryBudgetBytes: number; memorySavingThreads: number } {
    return {
      threads: this.threads.length,
      threadRestarts: this.threads.reduce((sum, thread) => sum + thread.restarts, 0),
      evaluations: this.totals.evaluations,
      errors: this.totals.errors,
      memoryBudgetBytes: this.memoryBudgetBytes,
      memorySavingThreads: [...this.lastOrder.values()].filter((order) => order === 'traders').length,
    };
  }

  /**
   * Evaluate the tick's traders over its symbols. Same input, same output, whatever the thread count.
   * Calls queue behind each other; the threads work one tick at a time anyway.
   */
  run(tick: ScreenerRun): Promise<ScreenerRunResult> {
    if (this.lifecycle.state !== 'running') return Promise.reject(new IllegalStateError('Screener', this.lifecycle.state, 'run'));
    const result = this.queue.then(() => this.runNow(tick));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async runNow(tick: ScreenerRun): Promise<ScreenerRunResult> {
    if (this.lifecycle.state !== 'running') throw new IllegalStateError('Screener', this.lifecycle.state, 'run');
    const started = performance.now();
    const byThread = new Map<ScreenerThread, Trader[]>();
    for (const id of new Set(tick.traderIds)) {
      const trader = this.traders.get(id);
      const thread = this.assignment.get(id);
      if (!trader || !thread || this.isDisabled(id)) continue;
      byThread.set(thread, [...(byThread.get(thread) ?? []), trader]);
    }
    const symbols = [...new Set(tick.symbols)].sort(compare);
    const tickers: Record<string, Record<string, string>> = {};
    for (const symbol of symbols) {
      tickers[symbol] = tickerFields(symbol, tick.market.ticker(symbol), tick.market.series(symbol, tick.interval)?.lastClosed()?.close);
    }
    const threadStats: Array<{ thread: number; memoHits: number; memoMisses: number; isolateHeapBytes: number; order: TickOrder }> = [];
    // Every write to the shared rows happens here, before any thread is handed the tick.
    const now = this.options.clock.now();
    const slots = new Map<string, SeriesSlot | null>();
    const plans = [...byThread].map(([thread, traders]) => {
      const intervals = new Set(traders.flatMap((trader) => trader.timeframes));
      const threadSlots: Record<string, SeriesSlot> = {};
      const wanted: SeriesBuffer[] = [];
      for (const symbol of symbols) {
        for (const interval of intervals) {
          const key = seriesKey(symbol, interval);
          let slot = slots.get(key);
          if (slot === undefined) {
            slot = this.store.sync(tick.market, symbol, interval, now);
            slots.set(key, slot);
          }
          if (slot === null) continue;
          threadSlots[key] = slot;
          wanted.push(this.store.buffer(slot[0])!);
        }
      }
      return { thread, traders, threadSlots, wanted };
    });
    const replies = await Promise.all(
      plans.map(async ({ thread, traders, threadSlots, wanted }) => {
        const run = await this.runOnThread(thread, traders, { symbols, tickers, slots: threadSlots }, wanted);
        if (run.stats) threadStats.push(run.stats);
        return run.results;
      }),
    );
    const dropped = this.store.prune(now);
    if (dropped.length > 0) for (const thread of this.threads) thread.forgetBuffers(dropped);
    const results = replies.flat().map((reply) => this.account(reply, tick));
    results.sort((a, b) => compare(a.traderId, b.traderId));
    const evaluations = results.reduce((sum, r) => sum + r.evaluatedSymbols.length + r.errors.filter((e) => e.symbol !== null).length, 0);
    this.totals.evaluations += evaluations;
    const durationMs = performance.now() - started;
    this.logger.debug({ event: 'screener_tick', interval: tick.interval, evaluations, durationMs, threads: threadStats }, 'screening tick evaluated');
    let memorySavingThreads = 0;
    for (const stats of threadStats) {
      if (stats.order === 'traders') memorySavingThreads++;
      if (this.lastOrder.get(stats.thread) === stats.order) continue;
      // Only changes are logged: an operator sees when and how long the worker was short of memory.
      if (this.lastOrder.has(stats.thread) || stats.order === 'traders') {
        this.logger.info(
          { event: 'screener_tick_order', thread: stats.thread, order: stats.order, rssBytes: process.memoryUsage.rss(), memoryBudgetBytes: this.memoryBudgetBytes },
          stats.order === 'traders' ? 'memory budget reached: traders run one after another, each isolate collected after its run' : 'memory ample again: back to the normal tick order',
        );
      }
      this.lastOrder.set(stats.thread, stats.order);
    }
    return { interval: tick.interval, candleOpenTime: tick.candleOpenTime, traders: results, durationMs, evaluations, memorySavingThreads };
  }

  /**
   * One thread's share of a tick. A thread that dies mid-tick restarts by itself; the crash is charged
   * to the trader it was running (read from the thread's in-flight mark), and the tick runs again on
   * the new thread for the others, so no neighbour loses its results to it.
   */
  private async runOnThread(
    thread: ScreenerThread,
    traders: Trader[],
    work: { symbols: string[]; tickers: Record<string, Record<string, string>>; slots: Record<string, SeriesSlot> },
    wanted: SeriesBuffer[],
  ): Promise<{ results: ThreadTraderResult[]; stats: { thread: number; memoHits: number; memoMisses: number; isolateHeapBytes: number; order: TickOrder } | null }> {
    const results: ThreadTraderResult[] = [];
    let remaining = traders;
    for (let attempt = 1; ; attempt++) {
      const tickId = ++this.tickCounter;
      const deadlineMs = THREAD_DEADLINE_MARGIN_MS + remaining.length * work.symbols.length * this.options.filterTimeoutMs;
      try {
        const reply = await thread.tick({ type: 'tick', tickId, traderIds: remaining.map((t) => t.id), ...work }, wanted, deadlineMs);
        results.push(...reply.traders);
        return { results, stats: { thread: thread.index, memoHits: reply.memoHits, memoMisses: reply.memoMisses, isolateHeapBytes: reply.heapBytes, order: reply.order } };
      } catch (error) {
        if (!(error instanceof ThreadCrashedError)) throw error;
        const suspect = error.inFlight?.tickId === tickId ? remaining[error.inFlight.traderIndex] : undefined;
        if (suspect) {
          remaining = remaining.filter((trader) => trader !== suspect);
          results.push({
            traderId: suspect.id,
            evaluated: [],
            matches: [],
            errors: [{ symbol: null, code: 'TRADER_CRASH', message: `crashed its screening thread: ${error.reason}`.slice(0, 500) }],
            warnings: [],
            evaluationMs: 0,
            severe: true,
          });
        }
        this.logger.error({ event: 'screener_thread_crashed', thread: thread.index, traderId: suspect?.id ?? null, reason: error.reason, attempt }, 'screening thread crashed mid-tick');
        if (remaining.length === 0) return { results, stats: null };
        if (attempt >= MAX_THREAD_ATTEMPTS) {
          // Work lost to crashes no trader could be charged with counts neither for nor against the traders.
          for (const trader of remaining) {
            results.push({ traderId: trader.id, evaluated: [], matches: [], errors: [{ symbol: null, code: 'TRADER_RUNTIME', message: `not evaluated: ${error.message}` }], warnings: [], evaluationMs: 0, severe: false, lost: true });
          }
          return { results, stats: null };
        }
      }
    }
  }

  /** Sorts a thread's reply and counts its failing ticks; the errors themselves are logged, rate-limited, by TraderHealth. */
  private account(reply: ThreadTraderResult, tick: ScreenerRun): TraderTickOutcome {
    const trader = this.traders.get(reply.traderId)!;
    const matches = reply.matches
      .map((match) => ({ symbol: match.symbol, conditions: match.conditions, price: tick.market.series(match.symbol, trader.filter.refreshInterval)?.lastClosed()?.close ?? NaN, ...(match.values === undefined ? {} : { values: match.values }) }))
      .sort((a, b) => compare(a.symbol, b.symbol));
    const errors = [...reply.errors].sort((a, b) => compare(a.symbol ?? '', b.symbol ?? '') || compare(a.code, b.code) || compare(a.message, b.message));
    this.totals.errors += errors.length;
    const crashed = errors.some((error) => error.code === 'TRADER_CRASH');
    const failing = !reply.lost && (reply.severe || (errors.length > 0 && reply.evaluated.length === 0));
    let disabled: { reason: string } | null = null;
    if (failing) {
      const count = (this.failingTicks.get(trader.id) ?? 0) + 1;
      this.failingTicks.set(trader.id, count);
      const first = errors[0];
      // A thread crash costs every trader of the thread a restart and a rerun: one is enough to disable its cause.
      if (crashed || count >= this.options.failureLimit) {
        const reason = (crashed ? `TRADER_CRASH: ${first?.message ?? 'crashed its screening thread'}` : `${count} failing ticks in a row; last error ${first?.code ?? 'unknown'}: ${first?.message ?? ''}`).slice(0, 500);
        this.disabled.set(trader.id, { reason, traderUpdatedAt: trader.updatedAt, codeHash: trader.codeHash });
        this.failingTicks.delete(trader.id);
        disabled = { reason };
        this.logger.error({ event: 'trader_disabled', traderId: trader.id, reason }, 'trader disabled until its row changes');
      }
    } else if (!reply.lost) {
      this.failingTicks.delete(trader.id);
    }
    return {
      traderId: trader.id,
      evaluatedSymbols: [...reply.evaluated].sort(compare),
      matches,
      errors,
      warnings: [...reply.warnings].sort((a, b) => compare(a.symbol, b.symbol)),
      evaluationMs: reply.evaluationMs,
      disabled,
    };
  }

  private isDisabled(traderId: string): boolean {
    const record = this.disabled.get(traderId);
    return record !== undefined && this.isDisabledRecordCurrent(traderId, record);
  }

  /** A restored disable applies only to the row version it was recorded for. */
  private isDisabledRecordCurrent(traderId: string, record: DisabledRecord): boolean {
    const trader = this.traders.get(traderId);
    return trader === undefined || record.traderUpdatedAt === trader.updatedAt;
  }

  private leastLoadedThread(): ScreenerThread {
    const load = new Map(this.threads.map((thread) => [thread, 0]));
    for (const thread of this.assignment.values()) load.set(thread, load.get(thread)! + 1);
    let best = this.threads[0]!;
    for (const thread of this.threads) if (load.get(thread)! < load.get(best)!) best = thread;
    return best;
  }

  /** For tests: end a thread abruptly, as a crash in native code would. */
  async crashThreadForTest(index: number): Promise<void> {
    await this.threads[index]?.kill();
  }
}

function specOf(trader: Trader): TraderSpec {
  return {
    id: trader.id,
    code: trader.filter.code,
    codeHash: trader.codeHash,
    updatedAt: trader.updatedAt,
    refreshInterval: trader.filter.refreshInterval,
    timeframes: trader.timeframes,
    hvnInterval: hvnInterval(trader.filter),
    helpers: trader.filter.helpers,
  };
}

/** Code-point order, so results sort identically on every machine and locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
