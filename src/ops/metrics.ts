// The worker's Prometheus registry: every metric is `screener_`-prefixed and registered here, nowhere else.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { WorkerState } from '../domain.ts';
import type { GapFilledEvent, TickRef, TickServiceLevel, TickSummary } from '../ports.ts';
import type { EventLoopMonitor } from './EventLoopMonitor.ts';

/** Cumulative counters owned by the adapters, read at scrape time. Any may be missing. */
export interface MetricsSources {
  stream?: () => { messages: number; malformed: number; reconnects: number; duplicates?: number; discarded?: number };
  rest?: () => { weightUsed: number; rateLimited: number };
  sink?: () => { signalsWritten: number; signalsBuffered: number; signalsDropped: number; dbRetries: number };
  /** The worker's state as /ready judges it. */
  worker?: () => { state: WorkerState };
  /** The screening threads' memory budget, and how many ran their last tick in the memory-saving order. */
  screener?: () => { memoryBudgetBytes: number; memorySavingThreads: number };
}

const WORKER_STATES: readonly WorkerState[] = ['starting', 'ready', 'degraded', 'stopping', 'stopped'];

export interface TickEvents {
  on(event: 'tick', listener: (summary: TickSummary, level: TickServiceLevel) => void): unknown;
  on(event: 'backlog', listener: (request: TickRef, outcome: 'skipped' | 'coalesced') => void): unknown;
}

export interface GapEvents {
  on(event: 'gapFilled', listener: (event: GapFilledEvent) => void): unknown;
}

const PREFIX = 'screener_';

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly sources: MetricsSources;
  private readonly gapsFilled: Counter<'interval'>;
  private readonly tickDuration: Histogram<'interval' | 'kind'>;
  private readonly ticksSkipped: Counter<'interval' | 'outcome'>;
  private readonly evaluations: Counter<'trader'>;
  private readonly traderErrors: Counter<'trader'>;
  private readonly coverage: Gauge<'interval'>;
  private readonly arrivalLag: Gauge<'interval'>;
  private readonly closeToCommit: Histogram;

  constructor(options: { sources: MetricsSources; eventLoop?: EventLoopMonitor }) {
    this.sources = options.sources;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX });

    const stream = () => this.sources.stream?.();
    const rest = () => this.sources.rest?.();
    const sink = () => this.sources.sink?.();
    this.mirror('stream_messages_total', 'Stream messages received', () => stream()?.messages);
    this.mirror('stream_malformed_total', 'Stream messages that broke the wire contract', () => stream()?.malformed);
    this.mirror('stream_reconnects_total', 'Stream reconnections', () => stream()?.reconnects);
    this.mirror('stream_duplicates_total', 'Frames dropped as exact copies while two sockets overlapped (rotation)', () => stream()?.duplicates);
    this.mirror('stream_discarded_total', 'Control replies and events dropped from a socket being retired', () => stream()?.discarded);
    this.mirror('rest_rate_limited_total', 'REST responses 429/418', () => rest()?.rateLimited);
    this.mirror('signals_written_total', 'Signals committed to the database', () => sink()?.signalsWritten);
    this.mirror('signals_dropped_total', 'Signals dropped because the write buffer overflowed', () => sink()?.signalsDropped);
    this.mirror('db_retries_total', 'Database write retries', () => sink()?.dbRetries);
    new Gauge({
      name: `${PREFIX}rest_weight_used`,
      help: 'REST request weight used in the current minute (X-MBX-USED-WEIGHT-1M)',
      registers,
      collect() {
        const weight = rest()?.weightUsed;
        if (weight !== undefined) this.set(weight);
      },
    });
    new Gauge({
      name: `${PREFIX}signals_buffered`,
      help: 'Signals waiting in the write buffer',
      registers,
      collect() {
        const buffered = sink()?.signalsBuffered;
        if (buffered !== undefined) this.set(buffered);
      },
    });
    const worker = () => this.sources.worker?.();
    new Gauge({
      name: `${PREFIX}worker_state`,
      help: 'The worker state (1 for the current one): alert on degraded, or on ready staying 0 past boot',
      labelNames: ['state'],
      registers,
      collect() {
        const current = worker()?.state;
        if (current === undefined) return;
        for (const state of WORKER_STATES) this.set({ state }, state === current ? 1 : 0);
      },
    });
    const screener = () => this.sources.screener?.();
    new Gauge({
      name: `${PREFIX}memory_saving_threads`,
      help: 'Screening threads whose last tick ran in the memory-saving order (the process was above its memory budget): above 0, the worker is memory-bound',
      registers,
      collect() {
        const threads = screener()?.memorySavingThreads;
        if (threads !== undefined) this.set(threads);
      },
    });
    new Gauge({
      name: `${PREFIX}memory_budget_bytes`,
      help: 'Resident memory the worker keeps within (MEMORY_BUDGET_MB, or 75 % of the machine)',
      registers,
      collect() {
        const budget = screener()?.memoryBudgetBytes;
        if (budget !== undefined) this.set(budget);
      },
    });
    const eventLoop = options.eventLoop;
    if (eventLoop !== undefined) {
      new Gauge({
        name: `${PREFIX}event_loop_lag_p99_seconds`,
        help: 'Event-loop delay, 99th percentile since the previous stats window',
        registers,
        collect() {
          this.set(eventLoop.lag().p99Ms / 1000);
        },
      });
    }

    this.gapsFilled = new Counter({ name: `${PREFIX}gaps_filled_total`, help: 'Series gaps filled by REST', labelNames: ['interval'], registers });
    this.tickDuration = new Histogram({
      name: `${PREFIX}tick_duration_seconds`,
      help: 'Screening tick duration',
      labelNames: ['interval', 'kind'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.ticksSkipped = new Counter({
      name: `${PREFIX}ticks_skipped_total`,
      help: 'Ticks skipped or coalesced because the previous tick of the interval was still running',
      labelNames: ['interval', 'outcome'],
      registers,
    });
    this.evaluations = new Counter({ name: `${PREFIX}evaluations_total`, help: 'Filter evaluations', labelNames: ['trader'], registers });
    this.traderErrors = new Counter({ name: `${PREFIX}trader_errors_total`, help: 'Filter evaluation errors', labelNames: ['trader'], registers });
    this.coverage = new Gauge({ name: `${PREFIX}tick_coverage_ratio`, help: 'Symbols evaluated ÷ expected, latest tick', labelNames: ['interval'], registers });
    this.arrivalLag = new Gauge({
      name: `${PREFIX}tick_arrival_lag_seconds`,
      help: 'Closing-kline arrival lag, 95th percentile of the latest tick',
      labelNames: ['interval'],
      registers,
    });
    this.closeToCommit = new Histogram({
      name: `${PREFIX}close_to_commit_seconds`,
      help: 'Closing kline received → signal committed',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60],
      registers,
    });
  }

  observeTicks(source: TickEvents): void {
    source.on('tick', (summary, level) => {
      this.tickDuration.observe({ interval: summary.interval, kind: summary.kind }, summary.durationMs / 1000);
      for (const outcome of summary.outcomes) {
        if (outcome.evaluatedSymbols.length > 0) this.evaluations.inc({ trader: outcome.traderId }, outcome.evaluatedSymbols.length);
        if (outcome.errors.length > 0) this.traderErrors.inc({ trader: outcome.traderId }, outcome.errors.length);
      }
      for (const latency of summary.closeToCommitMs) this.closeToCommit.observe(latency / 1000);
      this.coverage.set({ interval: level.interval }, level.coverage);
      if (level.arrivalLagP95Ms !== null) this.arrivalLag.set({ interval: level.interval }, level.arrivalLagP95Ms / 1000);
    });
    source.on('backlog', (request, outcome) => this.ticksSkipped.inc({ interval: request.interval, outcome }));
  }

  observeGaps(source: GapEvents): void {
    source.on('gapFilled', (event) => this.gapsFilled.inc({ interval: event.interval }));
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** A counter that mirrors a cumulative count kept elsewhere, advanced by the difference at each scrape. */
  private mirror(name: string, help: string, read: () => number | undefined): void {
    let seen = 0;
    new Counter({
      name: `${PREFIX}${name}`,
      help,
      registers: [this.registry],
      collect() {
        const value = read();
        if (value === undefined) return;
        // A source restarted from zero: carry on from its new count rather than going backwards.
        if (value < seen) seen = 0;
        if (value > seen) this.inc(value - seen);
        seen = value;
      },
    });
  }
}
