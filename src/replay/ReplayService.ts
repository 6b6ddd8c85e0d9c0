// Serves the user's replay requests (replay_requests) at low priority: one at a time, in slices between live ticks.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock, TimerHandle } from '../clock.ts';
import { candleOpenTimeAt, intervalMs, type Trader } from '../domain.ts';
import { LifecycleGuard } from '../lifecycle.ts';
import type { Logger } from '../logger.ts';
import type { LifecycleState, ScreenerMatch } from '../ports.ts';
import type { Screener } from '../screening/Screener.ts';
import type { LiveTickGate } from './LiveTickGate.ts';
import { type ClosedCandleSource, ReplayEngine, type ReplayReport, type ReplaySignal } from './ReplayEngine.ts';

/** A request taken from the queue (marked running by this machine). */
export interface ReplayJob {
  id: string;
  /**
   * 'request': a user's; 'lookback': the worker's own, for a trader version it had not looked back on; 'shadow': the
   * worker's own, comparing an edited trader's previous code (`previous`) with its new one over the candles after the edit.
   */
  kind: 'request' | 'lookback' | 'shadow';
  previous?: { ok: true; trader: Trader } | { ok: false; reason: string };
  /** The request's trader, null when it carried a filter of its own. */
  traderId: string | null;
  /** The trader to replay, or why it cannot run (the reason a live worker would write to trader_status). */
  trader: { ok: true; trader: Trader } | { ok: false; reason: string };
  symbols: string[];
  from: number;
  to: number;
}

/** What a finished request records (replay_requests.summary). */
export interface ReplaySummary {
  candles: number;
  evaluated: number;
  matched: number;
  errors: number;
  signals: number;
  /** Results written: `signals`, unless cut to the limit. */
  results: number;
  errorSamples: Array<{ candle_open_time: string; symbol: string | null; message: string }>;
  /** A shadow's: (symbol, candle) verdicts of the previous code that matched, and verdicts that differ. */
  previousMatched?: number;
  differences?: number;
}

/** A result row: a would-be signal, or for a shadow a verdict only one of the two codes gave ('old' or 'new'). */
export type ReplayResult = ReplaySignal & { variant?: 'old' | 'new' };

export type ReplayOutcome = { status: 'done'; reason: string | null; summary: ReplaySummary } | { status: 'failed'; reason: string; summary: ReplaySummary | null };

/** The database side (src/database/ReplayRequests.ts implements it over supabase-js). */
export interface ReplayRequestQueue {
  /** Requests this machine left running (it restarted mid-replay): failed with `reason`. Returns how many. */
  abandon(machineId: string, reason: string): Promise<number>;
  /** The oldest pending request, marked running by `machineId`; null when none is pending. */
  claimNext(machineId: string): Promise<ReplayJob | null>;
  /** Queue a look-back of this trader's code version; 'exists' when one was queued before (by any run or shard). */
  enqueueLookback(trader: Trader, symbols: string[], from: number, to: number): Promise<'queued' | 'exists'>;
  /** Queue a shadow of an edit: both versions over [from, to), served once those candles have closed. */
  enqueueShadow(previous: Trader, current: Trader, symbols: string[], from: number, to: number): Promise<'queued' | 'exists'>;
  writeResults(job: ReplayJob, results: ReplayResult[]): Promise<void>;
  finish(job: ReplayJob, outcome: ReplayOutcome): Promise<void>;
}

export interface ReplayServiceOptions {
  queue: ReplayRequestQueue;
  machineId: string;
  /** True while the live worker is ready: a booting or degraded worker takes no replay work. */
  live: () => boolean;
  gate: Pick<LiveTickGate, 'slice' | 'quiet'>;
  /** A screener of its own (never the live one: replay hands it one trader), stopped after each request. */
  createScreener: () => Screener;
  /** Closed candles by REST through the worker's own client (and its weight budget), cached in `dir` for one request. */
  createCandles: (dir: string) => ClosedCandleSource;
  /** KLINE_HISTORY. */
  history: number;
  clock: Clock;
  logger: Logger;
  /** How often the queue is asked for work; default 10 s. */
  pollMs?: number;
  /** Results written per request at most; default 1000 (the summary still counts every signal). */
  maxResults?: number;
  /**
   * Look-back on create and edit: each trader version the live worker runs gets its would-be signals over its last
   * `candles` candles, on the live universe, read from the live store (no REST): the store holds KLINE_HISTORY
   * candles, so those filters see `history - candles - 1`.
   */
  lookback?: { candles: number; source: ClosedCandleSource; traders: () => Iterable<Trader>; symbols: () => string[] };
  /** Shadow on edit: an edited trader's previous and new code compared over this many candles after the edit (0: off; needs `lookback`). */
  shadowCandles?: number;
}

const DEFAULT_POLL_MS = 10_000;
const DEFAULT_MAX_RESULTS = 1000;
const ERROR_SAMPLES = 5;

export class ReplayService {
  private readonly options: ReplayServiceOptions;
  private readonly lifecycle = new LifecycleGuard('ReplayService');
  private readonly log: Logger;
  /** The one poll timer: asks the queue for work every pollMs while running. */
  private pollTimer: TimerHandle | undefined;
  /** The request being served, so stop() can wait for it to be marked. */
  private serving: Promise<void> | null = null;
  private abort = new AbortController();
  private readonly counters = { done: 0, failed: 0 };
  /** `traderId|codeHash` of the versions whose look-back is queued (by this process or before). */
  private readonly lookedBack = new Set<string>();
  /** The version of each trader seen at the last poll: a new code hash there is an edit. */
  private readonly seen = new Map<string, Trader>();

  constructor(options: ReplayServiceOptions) {
    this.options = options;
    this.log = options.logger.child({ component: 'replay' });
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  stats(): { done: number; failed: number; busy: boolean } {
    return { ...this.counters, busy: this.serving !== null };
  }

  /** Fails what this machine left running before a restart, then polls. */
  start(): Promise<void> {
    return this.lifecycle.start(async () => {
      this.abort = new AbortController();
      try {
        const abandoned = await this.options.queue.abandon(this.options.machineId, 'the worker restarted during the replay; insert the request again');
        if (abandoned > 0) this.log.warn({ event: 'replay_abandoned', requests: abandoned }, 'replay requests left running by a previous process marked failed');
      } catch (error) {
        // Replay is a side service: a database hiccup here must not fail the worker; they are failed at the next start.
        this.log.warn({ event: 'replay_queue_failed', err: error }, 'could not mark replay requests left running');
      }
      this.pollTimer = this.options.clock.setInterval(() => this.poll(), this.options.pollMs ?? DEFAULT_POLL_MS);
      this.poll();
    });
  }

  /** Stops polling; a request in progress is stopped at its next slice and marked failed. */
  stop(): Promise<void> {
    return this.lifecycle.stop(async () => {
      this.options.clock.clearInterval(this.pollTimer);
      this.pollTimer = undefined;
      this.abort.abort(new ReplayStoppedError());
      await this.serving;
    });
  }

  /** Take the next request, unless one is in progress or the live worker is not ready. Never throws. */
  private poll(): void {
    if (this.serving !== null || this.lifecycle.state !== 'running' || !this.options.live()) return;
    this.serving = (async () => {
      try {
        for (;;) {
          if (this.lifecycle.state !== 'running' || !this.options.live()) return;
          await this.queueLookbacks();
          const job = await this.options.queue.claimNext(this.options.machineId);
          if (job === null) return;
          await this.serve(job);
        }
      } catch (error) {
        this.log.warn({ event: 'replay_queue_failed', err: error }, 'replay queue unreachable: retrying at the next poll');
      } finally {
        this.serving = null;
      }
    })();
  }

  /** A look-back for every trader version not looked back on yet: new traders, and edited ones (a new code hash). */
  private async queueLookbacks(): Promise<void> {
    const lookback = this.options.lookback;
    if (lookback === undefined) return;
    const symbols = lookback.symbols();
    if (symbols.length === 0) return;
    const traders = [...lookback.traders()];
    // A trader gone from the running list (removed, or disabled: perhaps for crashing) forgets its code, so an edit
    // that brings it back never shadows the code that was disabled.
    const running = new Set(traders.map((trader) => trader.id));
    for (const id of [...this.seen.keys()]) if (!running.has(id)) this.seen.delete(id);
    for (const trader of traders) {
      const previous = this.seen.get(trader.id);
      this.seen.set(trader.id, trader);
      const shadowCandles = this.options.shadowCandles ?? 0;
      if (previous !== undefined && previous.codeHash !== trader.codeHash && shadowCandles > 0) {
        const length = intervalMs(trader.filter.refreshInterval);
        // From the first candle the new code screens live: the next one to close.
        const from = candleOpenTimeAt(trader.filter.refreshInterval, this.options.clock.now());
        const outcome = await this.options.queue.enqueueShadow(previous, trader, symbols, from, from + shadowCandles * length);
        if (outcome === 'queued') this.log.info({ event: 'replay_shadow_queued', traderId: trader.id, candles: shadowCandles }, 'shadow of an edit queued');
      }
      const key = `${trader.id}|${trader.codeHash}`;
      if (this.lookedBack.has(key)) continue;
      const length = intervalMs(trader.filter.refreshInterval);
      const to = candleOpenTimeAt(trader.filter.refreshInterval, this.options.clock.now());
      const outcome = await this.options.queue.enqueueLookback(trader, symbols, to - lookback.candles * length, to);
      this.lookedBack.add(key);
      if (outcome === 'queued') this.log.info({ event: 'replay_lookback_queued', traderId: trader.id, candles: lookback.candles, symbols: symbols.length }, 'look-back queued for a new trader version');
    }
  }

  private async serve(job: ReplayJob): Promise<void> {
    const started = this.options.clock.now();
    this.log.info({ event: 'replay_started', requestId: job.id, traderId: job.traderId, symbols: job.symbols.length, from: new Date(job.from).toISOString(), to: new Date(job.to).toISOString() }, 'replay request taken');
    const outcome = await this.replay(job);
    await this.options.queue.finish(job, outcome);
    if (outcome.status === 'done') this.counters.done++;
    else this.counters.failed++;
    this.log.info(
      { event: 'replay_finished', requestId: job.id, status: outcome.status, reason: outcome.reason, signals: outcome.summary?.signals ?? null, durationMs: this.options.clock.now() - started },
      'replay request finished',
    );
  }

  private async replay(job: ReplayJob): Promise<ReplayOutcome> {
    if (!job.trader.ok) return { status: 'failed', reason: `the trader cannot run: ${job.trader.reason}`, summary: null };
    if (job.kind === 'shadow' && job.previous?.ok !== true) return { status: 'failed', reason: `the previous version cannot run: ${job.previous?.ok === false ? job.previous.reason : 'unknown'}`, summary: null };
    const trader = job.trader.trader;
    const signal = this.abort.signal;
    const dir = await mkdtemp(join(tmpdir(), 'screener-replay-'));
    const screener = this.options.createScreener();
    try {
      await screener.start();
      const gate = this.options.gate;
      const lookback = job.kind === 'request' ? undefined : this.options.lookback;
      const source = lookback?.source ?? this.options.createCandles(dir);
      const history = lookback === undefined ? this.options.history : this.options.history - lookback.candles - 1;
      // A fetch waits for a quiet moment too, but mostly waits on the network: it holds no slice.
      const quietly =
        <A extends unknown[], R>(read: (...args: A) => Promise<R>) =>
        async (...args: A): Promise<R> => {
          await gate.quiet(signal);
          return read(...args);
        };
      const candles: ClosedCandleSource = {
        closedCandles: quietly((...args) => source.closedCandles(...args)),
        ...(source.closedRows === undefined ? {} : { closedRows: quietly((...args) => source.closedRows!(...args)) }),
      };
      // Only a shadow compares verdicts (a look-back of 200 symbols x 100 candles would keep 20,000 of them for nothing).
      const verdicts = new Map<string, ScreenerMatch | null>();
      const onVerdicts = job.kind === 'shadow' ? (openTime: number, evaluated: readonly string[], matches: readonly ScreenerMatch[]) => recordVerdicts(verdicts, openTime, evaluated, matches) : undefined;
      const engine = new ReplayEngine({
        candles,
        screener,
        history,
        clock: this.options.clock,
        logger: this.log,
        slice: (work) => gate.slice(work, signal),
        ...(onVerdicts === undefined ? {} : { onVerdicts }),
      });
      if (job.kind === 'shadow' && job.previous?.ok === true) return await this.shadow(job, engine, verdicts, job.previous.trader, trader);
      const report = await engine.replay({ trader, symbols: job.symbols, from: job.from, to: job.to });
      const maxResults = this.options.maxResults ?? DEFAULT_MAX_RESULTS;
      const results = report.signals.slice(0, maxResults);
      await this.options.queue.writeResults(job, results);
      const summary = summarize(report, results.length);
      if (report.disabled !== null) {
        return { status: 'failed', reason: `the trader was disabled at the candle opening ${report.disabled.candle_open_time}, as the live worker would have: ${report.disabled.reason}`, summary };
      }
      const cut = results.length < report.signals.length ? `${report.signals.length} signals; the first ${results.length} written` : null;
      return { status: 'done', reason: cut, summary };
    } catch (error) {
      if (signal.aborted) return { status: 'failed', reason: 'the worker stopped during the replay; insert the request again', summary: null };
      this.log.warn({ event: 'replay_failed', requestId: job.id, err: error }, 'replay request failed');
      return { status: 'failed', reason: `replay failed: ${(error as Error).message}`, summary: null };
    } finally {
      if (screener.state !== 'idle' && screener.state !== 'stopped') await screener.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** The previous code, then the new one, over the same candles; every (symbol, candle) where only one matched is a result. */
  private async shadow(job: ReplayJob, engine: ReplayEngine, verdicts: Map<string, ScreenerMatch | null>, previous: Trader, current: Trader): Promise<ReplayOutcome> {
    const request = { symbols: job.symbols, from: job.from, to: job.to };
    const before = await engine.replay({ trader: previous, ...request });
    const old = new Map(verdicts);
    verdicts.clear();
    const after = await engine.replay({ trader: current, ...request });
    const results: ReplayResult[] = [];
    let previousMatched = 0;
    for (const [key, newMatch] of verdicts) {
      if (!old.has(key)) continue;
      const oldMatch = old.get(key)!;
      if (oldMatch !== null) previousMatched++;
      if ((oldMatch === null) === (newMatch === null)) continue;
      const [openTime, symbol] = splitKey(key);
      const match = (oldMatch ?? newMatch)!;
      results.push({
        trader_id: current.id,
        symbol,
        interval: current.filter.refreshInterval,
        candle_open_time: new Date(openTime).toISOString(),
        price: match.price,
        conditions: match.conditions,
        ...(match.values === undefined ? {} : { values: match.values }),
        variant: oldMatch !== null ? 'old' : 'new',
      });
    }
    results.sort((a, b) => a.candle_open_time.localeCompare(b.candle_open_time) || a.symbol.localeCompare(b.symbol));
    const written = results.slice(0, this.options.maxResults ?? DEFAULT_MAX_RESULTS);
    await this.options.queue.writeResults(job, written);
    const summary = { ...summarize(after, written.length), signals: results.length, previousMatched, differences: results.length };
    const disabled = before.disabled ?? after.disabled;
    if (disabled !== null) return { status: 'failed', reason: `a version was disabled at the candle opening ${disabled.candle_open_time}: ${disabled.reason}`, summary };
    return { status: 'done', reason: written.length < results.length ? `${results.length} differences; the first ${written.length} written` : null, summary };
  }
}

/** Verdicts by `openTime|symbol`: the match, or null for a symbol evaluated without one. */
function recordVerdicts(verdicts: Map<string, ScreenerMatch | null>, openTime: number, evaluated: readonly string[], matches: readonly ScreenerMatch[]): void {
  for (const symbol of evaluated) verdicts.set(`${openTime}|${symbol}`, null);
  for (const match of matches) verdicts.set(`${openTime}|${match.symbol}`, match);
}

function splitKey(key: string): [number, string] {
  const at = key.indexOf('|');
  return [Number(key.slice(0, at)), key.slice(at + 1)];
}

export class ReplayStoppedError extends Error {
  constructor() {
    super('replay service stopped');
    this.name = 'ReplayStoppedError';
  }
}

function summarize(report: ReplayReport, results: number): ReplaySummary {
  const sum = (pick: (candle: ReplayReport['candles'][number]) => number) => report.candles.reduce((total, candle) => total + pick(candle), 0);
  return {
    candles: report.candles.length,
    evaluated: sum((candle) => candle.evaluated),
    matched: sum((candle) => candle.matched),
    errors: sum((candle) => candle.errors),
    signals: report.signals.length,
    results,
    errorSamples: report.errors.slice(0, ERROR_SAMPLES).map((error) => ({ ...error, message: error.message.slice(0, 500) })),
  };
}
