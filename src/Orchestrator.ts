// Owns the worker's lifecycle: ordered boot, trader hot reload, heartbeat and worker status, clean shutdown. The ticks
// themselves run scheduler → TickRunner; the Orchestrator only builds the two and starts and stops them.
import { EventEmitter } from 'node:events';
import type { Clock, TimerHandle } from './clock.ts';
import type { Trader, WorkerState } from './domain.ts';
import { BootFailedError, TransientError } from './errors.ts';
import { LifecycleGuard } from './lifecycle.ts';
import type { Logger } from './logger.ts';
import type { LifecycleState, MarketDataSource, ScreenerPort, TickServiceLevel, TickSummary, TraderChanges, WorkerDatabase } from './ports.ts';
import { catchUpMissedCandles } from './orchestration/bootCatchUp.ts';
import { Probation } from './orchestration/Probation.ts';
import { RisingEdges } from './orchestration/RisingEdges.ts';
import { intervalsOf, scheduleOf } from './orchestration/schedule.ts';
import { DEFAULT_READY_MAX_LATENCY_MS, ServiceLevel } from './orchestration/ServiceLevel.ts';
import { type TickRequest, TickScheduler } from './orchestration/TickScheduler.ts';
import { TickRunner } from './orchestration/TickRunner.ts';
import { StatusWriter } from './orchestration/StatusWriter.ts';
import { TraderHealth } from './orchestration/TraderHealth.ts';

const HEARTBEAT_MS = 15_000;

export interface OrchestratorOptions {
  userId: string;
  machineId: string;
  workerVersion: string;
  tickGraceMs: number;
  traderPollMs: number;
  readyMinCoverage: number;
  readyMaxLagMs: number;
  /** p99 close-to-commit latency over the recent ticks past this marks the worker degraded (READY_MAX_LATENCY_MS). */
  readyMaxLatencyMs?: number;
  heartbeatMs?: number;
  clock: Clock;
  logger: Logger;
  database: WorkerDatabase;
  /** Universe, backfill and streams, and the store they fill (market.candles). */
  market: MarketDataSource;
  screener: ScreenerPort;
}

export interface Readiness {
  ready: boolean;
  state: WorkerState;
  reasons: string[];
}

export interface OrchestratorEvents {
  tick: [TickSummary, TickServiceLevel];
  backlog: [TickRequest, 'skipped' | 'coalesced'];
  state: [WorkerState, string[]];
}

export class Orchestrator extends EventEmitter<OrchestratorEvents> {
  private readonly options: OrchestratorOptions;
  private readonly log: Logger;
  private readonly lifecycle = new LifecycleGuard('Orchestrator');
  private readonly traders = new Map<string, Trader>();
  private readonly edges = new RisingEdges();
  private readonly health: TraderHealth;
  private readonly serviceLevel: ServiceLevel;
  private readonly scheduler: TickScheduler;
  private readonly runner: TickRunner;
  private readonly onCandleClosed: (event: Parameters<TickScheduler['candleClosed']>[0]) => void;
  private heartbeatTimer: TimerHandle | undefined;
  private pollTimer: TimerHandle | undefined;
  private polling: Promise<void> | null = null;
  private booted = false;
  private stopping = false;
  private reportedState: WorkerState = 'starting';
  private lastError: string | null = null;
  private readonly statusWriter: StatusWriter;
  private readonly probation: Probation;
  /** Per trader unchanged since the previous run: when that run last evaluated it (from trader_status). */
  private resumeFrom = new Map<string, number>();

  constructor(options: OrchestratorOptions) {
    super();
    this.options = options;
    this.log = options.logger;
    this.health = new TraderHealth({ userId: options.userId, clock: options.clock, logger: options.logger, screener: options.screener });
    this.probation = new Probation({
      status: options.database,
      screener: options.screener,
      market: options.market.candles,
      clock: options.clock,
      logger: options.logger,
      onDisabled: (traderId, reason) => this.health.noteDisabled(traderId, reason),
    });
    this.serviceLevel = new ServiceLevel({
      minCoverage: options.readyMinCoverage,
      maxLagMs: options.readyMaxLagMs,
      maxLatencyMs: options.readyMaxLatencyMs ?? DEFAULT_READY_MAX_LATENCY_MS,
    });
    this.runner = new TickRunner({
      userId: options.userId,
      machineId: options.machineId,
      workerVersion: options.workerVersion,
      clock: options.clock,
      logger: options.logger,
      screener: options.screener,
      market: options.market,
      signals: options.database,
      edges: this.edges,
      health: this.health,
      serviceLevel: this.serviceLevel,
      traders: () => this.traders.values(),
      onRun: (summary, level) => {
        if (level !== null) this.emit('tick', summary, level);
        this.statusWriter.requestTraders();
        void this.refreshState();
      },
    });
    this.scheduler = new TickScheduler({
      clock: options.clock,
      logger: options.logger,
      market: options.market,
      graceMs: options.tickGraceMs,
      run: (request) => this.runner.run(request),
      onBacklog: (request, outcome) => this.emit('backlog', request, outcome),
      // The insert after a close reuses a connection opened just before it instead of handshaking on the latency path.
      onBoundaryNear: () => options.database.warm?.(),
    });
    this.statusWriter = new StatusWriter({
      userId: options.userId,
      machineId: options.machineId,
      workerVersion: options.workerVersion,
      clock: options.clock,
      logger: options.logger,
      sink: options.database,
      health: this.health,
      counts: () => {
        const market = this.booted ? options.market.status() : null;
        const lastError = this.lastError ?? options.database.stats().lastError ?? null;
        return { symbols: market?.symbols ?? 0, traders: this.traders.size, streams: market?.streams ?? 0, lastError };
      },
    });
    this.onCandleClosed = (event) => this.scheduler.candleClosed(event);
    // Evaluations skipped for an incomplete timeframe are owed until that series is filled: follow them up then.
    options.market.on('gapFilled', (event) => this.scheduler.seriesFilled(event.symbol, event.interval));
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  start(): Promise<void> {
    return this.lifecycle.start(() => this.boot());
  }

  /** Stop ticks, flush pending writes within `flushDeadlineMs`, mark the worker stopped, close streams. */
  stop(flushDeadlineMs = 20_000): Promise<void> {
    return this.lifecycle.stop(() => this.shutdown(flushDeadlineMs));
  }

  /** Ready only when traders are loaded, backfill is done, streams are live and the service level holds. */
  readiness(): Readiness {
    const reasons = this.problems();
    const state = this.workerState(reasons);
    return { ready: state === 'ready', state, reasons };
  }

  serviceLevels(): TickServiceLevel[] {
    return this.serviceLevel.snapshot();
  }

  /**
   * The traders running now (loaded, not rejected, not disabled): what probation screens one by one and the replay
   * service looks back on. A disabled trader's code must run nowhere (a look-back of a filter probation disabled would
   * abort the process again).
   */
  runningTraders(): Trader[] {
    return [...this.traders.values()].filter((trader) => !this.health.isDisabled(trader.id));
  }

  backlog(): number {
    return this.scheduler.backlog();
  }

  // ---- boot ----

  private async boot(): Promise<void> {
    this.statusWriter.startedAt = this.options.clock.now();
    try {
      await this.step('supabase', async () => {
        await this.options.database.start();
        // Before this run's own row replaces it: did the previous process stop cleanly, and what was it running?
        await this.probation.readPrevious();
        await this.options.database.writeWorkerStatus(this.statusWriter.startingStatus());
      });
      await this.step('traders', () => this.loadTraders());
      await this.step('market', async () => {
        await this.options.market.start(intervalsOf(this.traders.values()));
        return { ...this.options.market.status() };
      });
      if (this.stopping) throw new TransientError('boot interrupted by shutdown');
      if (this.probation.needed) await this.step('probation', () => this.probation.run(this.runningTraders()));
      if (this.stopping) throw new TransientError('boot interrupted by shutdown');
      await this.step('catchup', () => this.catchUp());
      if (this.stopping) throw new TransientError('boot interrupted by shutdown');
      this.options.market.candles.on('candleClosed', this.onCandleClosed);
      this.scheduler.setSchedule(scheduleOf(this.traders.values()));
      this.scheduler.start();
      // The candle that closed while the worker was down or booting is screened now, not skipped.
      for (const interval of scheduleOf(this.traders.values()).keys()) this.scheduler.catchUp(interval);
      this.booted = true;
      this.armHeartbeat();
      this.armPoll();
      const readiness = this.readiness();
      this.reportedState = readiness.state;
      await this.statusWriter.writeWorker(readiness.state);
      this.log.info(
        { event: 'ready', durationMs: this.options.clock.now() - this.statusWriter.startedAt, state: readiness.state, reasons: readiness.reasons },
        'worker ready',
      );
    } catch (error) {
      this.lastError = error instanceof Error ? error.message : String(error);
      // A shutdown that interrupted the boot releases everything itself.
      if (!this.stopping) await this.releaseAfterFailedBoot();
      throw error;
    }
  }

  private async step(step: string, run: () => Promise<object | void>): Promise<void> {
    const started = this.options.clock.now();
    try {
      const details = await run();
      this.log.info({ event: 'boot', step, durationMs: this.options.clock.now() - started, ...(details ?? {}) }, 'boot step done');
    } catch (error) {
      this.log.error({ event: 'boot', step, durationMs: this.options.clock.now() - started, err: error }, 'boot step failed');
      // Boot is the recovery path: a failed step ends the process so the platform restarts it.
      throw new BootFailedError(step, error);
    }
  }

  private async loadTraders(): Promise<object> {
    const { traders, rejected } = await this.options.database.loadTraders();
    const statuses = await this.options.database.readTraderStatuses();
    await this.options.screener.start();
    for (const trader of traders) {
      this.traders.set(trader.id, trader);
      this.health.track(trader);
    }
    this.options.screener.updateTraders({ upserted: traders, removed: [] });
    const { restoredDisabled, resumeFrom } = this.health.restore(statuses, this.traders);
    this.resumeFrom = resumeFrom;
    // After the restore: a rejected row starts its totals afresh, as a row rejected by a poll does.
    for (const row of rejected) this.health.reject(row);
    // The trader the previous process died running alone (Probation): disabled before any of its code runs again.
    const suspect = await this.probation.takeSuspect(this.traders);
    if (suspect !== null) this.health.disable(suspect.trader.id, suspect.reason);
    await this.statusWriter.flushTraders();
    return { traders: traders.length, rejected: rejected.length, restoredDisabled, intervals: intervalsOf(this.traders.values()) };
  }

  private async releaseAfterFailedBoot(): Promise<void> {
    this.options.market.candles.off('candleClosed', this.onCandleClosed);
    await this.scheduler.stop();
    await this.release();
  }

  /** Streams and screening threads, then the database: what start() acquired, in reverse. */
  private async release(): Promise<void> {
    await Promise.allSettled([this.options.market.stop(), this.options.screener.stop()]);
    await this.options.database.stop().catch(() => {});
  }

  // ---- ticks ----

  private async catchUp(): Promise<object> {
    const candles = await catchUpMissedCandles({
      clock: this.options.clock,
      intervals: scheduleOf(this.traders.values()).keys(),
      traders: this.traders.values(),
      resumeFrom: this.resumeFrom,
      symbols: () => this.options.market.symbols(),
      stopping: () => this.stopping,
      run: (request, traderIds) => this.runner.run(request, traderIds),
    });
    this.resumeFrom.clear();
    return { candles };
  }

  // ---- hot reload ----

  private armPoll(): void {
    this.pollTimer = this.options.clock.setTimeout(() => {
      this.polling = this.pollTraders().finally(() => {
        this.polling = null;
        if (!this.stopping) this.armPoll();
      });
    }, this.options.traderPollMs);
  }

  private async pollTraders(): Promise<void> {
    let changes: TraderChanges;
    try {
      changes = await this.options.database.changesSince();
    } catch (error) {
      this.log.warn({ event: 'trader_poll_failed', err: error }, 'trader poll failed');
      return;
    }
    if (changes.upserted.length === 0 && changes.removed.length === 0 && changes.rejected.length === 0) return;
    const before = intervalsOf(this.traders.values()).join(',');
    for (const trader of changes.upserted) this.traders.set(trader.id, trader);
    for (const id of changes.removed) this.traders.delete(id);
    this.health.apply(changes);
    for (const id of [...changes.upserted.map((trader) => trader.id), ...changes.removed, ...changes.rejected.map((row) => row.id)]) this.edges.forgetTrader(id);
    this.options.screener.updateTraders(changes);
    const intervals = intervalsOf(this.traders.values());
    const [upserted, rejected] = [changes.upserted.map((trader) => trader.id), changes.rejected.map((row) => row.id)];
    this.log.info({ event: 'traders_changed', upserted, removed: changes.removed, rejected, traders: this.traders.size, intervals }, 'traders changed');
    if (intervals.join(',') !== before) {
      try {
        // New intervals are backfilled before their ticks are scheduled, so no tick sees a short series.
        await this.options.market.setIntervals(intervals);
      } catch (error) {
        this.log.error({ event: 'intervals_change_failed', intervals, err: error }, 'changing intervals failed');
      }
    }
    this.serviceLevel.retain([...scheduleOf(this.traders.values()).keys()]);
    this.scheduler.setSchedule(scheduleOf(this.traders.values()));
    // A new or changed trader is screened on the latest closed candle at once, as the browser would.
    for (const interval of new Set(changes.upserted.map((trader) => trader.filter.refreshInterval))) this.scheduler.catchUp(interval);
    this.statusWriter.requestTraders();
  }

  // ---- status ----

  private problems(): string[] {
    if (this.stopping) return ['stopping'];
    if (!this.booted) return ['booting'];
    const reasons: string[] = [];
    const market = this.options.market.status();
    if (!market.backfilled) reasons.push('backfill incomplete');
    if (market.connectionsOpen < market.connectionsExpected) {
      reasons.push(`streams down: ${market.connectionsOpen}/${market.connectionsExpected} connections open`);
    }
    if (!this.options.database.stats().dbUp) reasons.push('database unreachable');
    reasons.push(...this.serviceLevel.problems());
    return reasons;
  }

  private workerState(reasons: string[]): WorkerState {
    if (this.lifecycle.state === 'stopped') return 'stopped';
    if (this.stopping) return 'stopping';
    if (!this.booted) return 'starting';
    return reasons.length > 0 ? 'degraded' : 'ready';
  }

  /** Re-judge the state; a change is logged and written at once rather than at the next heartbeat. */
  private async refreshState(): Promise<void> {
    if (!this.booted || this.stopping) return;
    const { state, reasons } = this.readiness();
    if (state === this.reportedState) return;
    this.reportedState = state;
    this.log.warn({ event: state === 'degraded' ? 'degraded' : 'recovered', state, reasons }, 'worker state changed');
    this.emit('state', state, reasons);
    await this.statusWriter.writeWorker(state);
  }

  private armHeartbeat(): void {
    const interval = this.options.heartbeatMs ?? HEARTBEAT_MS;
    this.heartbeatTimer = this.options.clock.setInterval(() => {
      // A heartbeat still waiting on the database is not stacked with another.
      if (this.statusWriter.busy) return;
      const { state } = this.readiness();
      if (state !== this.reportedState) void this.refreshState();
      else void this.statusWriter.writeWorker(state);
    }, interval);
  }

  // ---- shutdown ----

  private async shutdown(flushDeadlineMs: number): Promise<void> {
    const started = this.options.clock.now();
    this.stopping = true;
    this.runner.close();
    this.log.info({ event: 'shutdown', step: 'ticks' }, 'stopping ticks');
    this.options.clock.clearInterval(this.heartbeatTimer);
    this.options.clock.clearTimeout(this.pollTimer);
    this.options.market.candles.off('candleClosed', this.onCandleClosed);
    await this.statusWriter.writeWorker('stopping');
    await this.scheduler.stop();
    await this.polling;
    this.log.info({ event: 'shutdown', step: 'flush', deadlineMs: flushDeadlineMs }, 'flushing writes');
    try {
      await this.options.database.flush(flushDeadlineMs);
    } catch (error) {
      this.log.error({ event: 'shutdown', step: 'flush', err: error }, 'flush incomplete');
    }
    await this.statusWriter.flushTraders();
    await this.statusWriter.writeWorker('stopped');
    this.log.info({ event: 'shutdown', step: 'streams' }, 'closing streams');
    await this.release();
    this.log.info({ event: 'shutdown', step: 'done', durationMs: this.options.clock.now() - started }, 'worker stopped');
  }
}
