// The once-a-minute `stats` log line: what an operator needs to see the worker is keeping up.
import type { Clock, TimerHandle } from '../clock.ts';
import type { Logger } from '../logger.ts';
import type { MarketDataStatus, TickSummary } from '../ports.ts';
import type { EventLoopMonitor } from './EventLoopMonitor.ts';
import type { MetricsSources, TickEvents } from './metrics.ts';

const STATS_INTERVAL_MS = 60_000;

export interface StatsReporterOptions {
  clock: Clock;
  logger: Logger;
  intervalMs?: number;
  market: () => MarketDataStatus;
  sources: MetricsSources;
  ticks: TickEvents;
  eventLoop: EventLoopMonitor;
  backlog?: () => number;
}

interface Window {
  ticks: number;
  tickMsTotal: number;
  tickMsMax: number;
  evaluations: number;
  errors: number;
  signals: number;
  skipped: number;
}

const emptyWindow = (): Window => ({ ticks: 0, tickMsTotal: 0, tickMsMax: 0, evaluations: 0, errors: 0, signals: 0, skipped: 0 });

export class StatsReporter {
  private readonly options: StatsReporterOptions;
  private timer: TimerHandle | undefined;
  private window = emptyWindow();
  private lastMessages = 0;
  private lastAt = 0;

  constructor(options: StatsReporterOptions) {
    this.options = options;
    options.ticks.on('tick', (summary: TickSummary) => {
      this.window.ticks += 1;
      this.window.tickMsTotal += summary.durationMs;
      this.window.tickMsMax = Math.max(this.window.tickMsMax, summary.durationMs);
      this.window.evaluations += summary.evaluations;
      this.window.errors += summary.errors;
      this.window.signals += summary.signals;
    });
    options.ticks.on('backlog', () => {
      this.window.skipped += 1;
    });
  }

  start(): void {
    this.lastAt = this.options.clock.now();
    this.lastMessages = this.options.sources.stream?.().messages ?? 0;
    this.timer = this.options.clock.setInterval(() => this.report(), this.options.intervalMs ?? STATS_INTERVAL_MS);
  }

  stop(): void {
    this.options.clock.clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Log one stats line covering the time since the previous one. */
  report(): void {
    const now = this.options.clock.now();
    const seconds = Math.max(0.001, (now - this.lastAt) / 1000);
    const market = this.options.market();
    const messages = this.options.sources.stream?.().messages ?? 0;
    const sink = this.options.sources.sink?.();
    const memory = process.memoryUsage();
    const lag = this.options.eventLoop.lag(true);
    const window = this.window;
    this.options.logger.info(
      {
        event: 'stats',
        symbols: market.symbols,
        intervals: market.intervals,
        streams: market.streams,
        connections: `${market.connectionsOpen}/${market.connectionsExpected}`,
        messagesPerSecond: Math.round(Math.max(0, messages - this.lastMessages) / seconds),
        ticks: window.ticks,
        tickMeanMs: window.ticks === 0 ? 0 : Math.round(window.tickMsTotal / window.ticks),
        tickMaxMs: window.tickMsMax,
        ticksSkipped: window.skipped,
        backlog: this.options.backlog?.() ?? 0,
        evaluations: window.evaluations,
        errors: window.errors,
        signals: window.signals,
        signalsWritten: sink?.signalsWritten ?? null,
        signalsBuffered: sink?.signalsBuffered ?? null,
        rssMb: Math.round(memory.rss / 1048576),
        heapUsedMb: Math.round(memory.heapUsed / 1048576),
        eventLoopLagP99Ms: Math.round(lag.p99Ms),
        eventLoopLagMaxMs: Math.round(lag.maxMs),
      },
      'stats',
    );
    this.window = emptyWindow();
    this.lastMessages = messages;
    this.lastAt = now;
  }
}
