// Each tick's service level (coverage, arrival lag, close-to-commit latency) and whether it is good enough to call the worker ready.
import type { Interval } from '../domain.ts';
import type { TickRef, TickServiceLevel, TickSummary } from '../ports.ts';

/**
 * READY_MAX_LATENCY_MS's default: 1 s, the fleet's latency alert (deploy/alerts.yml). The deployed shape
 * (one screening thread, 20 traders x 200 symbols) measures a close -> commit p99 of 250-590 ms on a shared
 * two-core machine, with the database on loopback (BENCHMARKS.md); in production the insert adds a round trip to the
 * database's region. A bar at the 250 ms target would flap a healthy machine between ready and degraded.
 */
export const DEFAULT_READY_MAX_LATENCY_MS = 1000;

export interface ServiceLevelThresholds {
  minCoverage: number;
  maxLagMs: number;
  /** p99 close-to-commit latency over the recent ticks' signals past this marks the worker degraded. */
  maxLatencyMs: number;
}

/** What a tick or follow-up evaluated: the symbols now fully evaluated, and those still waiting, with the timeframes they wait for. */
export interface TickCoverage {
  evaluated: readonly string[];
  waiting: ReadonlyMap<string, readonly Interval[]>;
}

/** The largest value; null when there is none. */
export function maxOrNull(values: readonly number[]): number | null {
  return values.length > 0 ? Math.max(...values) : null;
}

export function percentile(values: readonly number[], fraction: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[index] ?? null;
}

/**
 * Runs (ticks, follow-ups, catch-ups) whose signals' latencies make up the readiness p99. A late run ages out after
 * this many more, so a worker that was slow for a while recovers on its own once its signals are on time again.
 */
export const LATENCY_WINDOW_RUNS = 10;

interface LatestTick {
  level: TickServiceLevel;
  evaluated: Set<string>;
  waiting: Map<string, Set<Interval>>;
}

/**
 * Keeps the latest tick of every refresh interval. A late symbol's follow-up raises the coverage of
 * its own tick, so one slow symbol that is filled in time does not mark the worker degraded; so does the
 * follow-up of evaluations skipped for an incomplete timeframe, once that series is filled.
 */
export class ServiceLevel {
  private readonly thresholds: ServiceLevelThresholds;
  private readonly latest = new Map<Interval, LatestTick>();
  /** Close-to-commit latencies of the last LATENCY_WINDOW_RUNS runs, one array per run (empty without signals). */
  private readonly latencies: number[][] = [];

  constructor(thresholds: ServiceLevelThresholds) {
    this.thresholds = thresholds;
  }

  /**
   * Record one run of the tick pipeline: its signals' latencies, and its coverage (a tick's own, or what a follow-up
   * adds to its tick). Returns the level to report; null for a catch-up, which no readiness judges.
   */
  recordRun(
    request: TickRef & { expected: number },
    summary: Pick<TickSummary, 'closeToCommitMs' | 'arrivalLagsMs' | 'skipped' | 'symbolsEvaluated'>,
  ): TickServiceLevel | null {
    this.recordLatencies(summary.closeToCommitMs);
    const closeToCommitMaxMs = maxOrNull(summary.closeToCommitMs);
    const waiting = new Map<string, Interval[]>();
    for (const pair of summary.skipped) waiting.set(pair.symbol, [...new Set([...(waiting.get(pair.symbol) ?? []), ...pair.timeframes])]);
    const coverage = { evaluated: summary.symbolsEvaluated, waiting };
    if (request.kind === 'tick') {
      return this.recordTick(
        {
          interval: request.interval,
          openTime: request.openTime,
          expected: request.expected,
          arrivalLagP95Ms: percentile(summary.arrivalLagsMs, 0.95),
          arrivalLagMaxMs: maxOrNull(summary.arrivalLagsMs),
          closeToCommitMaxMs,
        },
        coverage,
      );
    }
    if (request.kind === 'followup') return this.recordFollowUp(request.interval, request.openTime, coverage, closeToCommitMaxMs);
    return null;
  }

  recordTick(level: Omit<TickServiceLevel, 'evaluated' | 'coverage' | 'waitingFor'>, coverage: TickCoverage): TickServiceLevel {
    const tick: LatestTick = {
      level: { ...level, evaluated: 0, coverage: 0, waitingFor: {} },
      evaluated: new Set(coverage.evaluated),
      waiting: new Map([...coverage.waiting].map(([symbol, timeframes]) => [symbol, new Set(timeframes)])),
    };
    ServiceLevel.refresh(tick);
    const previous = this.latest.get(level.interval);
    if (previous === undefined || previous.level.openTime <= level.openTime) this.latest.set(level.interval, tick);
    return { ...tick.level };
  }

  /** Add symbols evaluated after the tick; returns the updated level when the tick is still the latest. */
  recordFollowUp(interval: Interval, openTime: number, coverage: TickCoverage, closeToCommitMaxMs: number | null): TickServiceLevel | null {
    const tick = this.latest.get(interval);
    if (tick === undefined || tick.level.openTime !== openTime) return null;
    for (const symbol of coverage.evaluated) {
      tick.evaluated.add(symbol);
      tick.waiting.delete(symbol);
    }
    for (const [symbol, timeframes] of coverage.waiting) tick.waiting.set(symbol, new Set(timeframes));
    if (closeToCommitMaxMs !== null) tick.level.closeToCommitMaxMs = Math.max(tick.level.closeToCommitMaxMs ?? 0, closeToCommitMaxMs);
    ServiceLevel.refresh(tick);
    return { ...tick.level };
  }

  /** The close-to-commit latencies of one run's signals (none is a run too: it moves the window on). */
  recordLatencies(closeToCommitMs: readonly number[]): void {
    this.latencies.push([...closeToCommitMs]);
    while (this.latencies.length > LATENCY_WINDOW_RUNS) this.latencies.shift();
  }

  /** p99 close-to-commit latency over the recent runs' signals; null without any. */
  latencyP99Ms(): number | null {
    return percentile(this.latencies.flat(), 0.99);
  }

  /** Forget intervals no trader refreshes on any more. */
  retain(intervals: readonly Interval[]): void {
    for (const interval of this.latest.keys()) if (!intervals.includes(interval)) this.latest.delete(interval);
  }

  /** Reasons the service level is not good enough; empty when it is. */
  problems(): string[] {
    const problems: string[] = [];
    for (const { level } of this.latest.values()) {
      if (level.coverage < this.thresholds.minCoverage) {
        const waiting = Object.entries(level.waitingFor).map(([timeframe, symbols]) => `${timeframe} incomplete on ${symbols} symbols`);
        const why = waiting.length > 0 ? ` (${waiting.join(', ')})` : '';
        problems.push(`coverage ${level.interval} ${(level.coverage * 100).toFixed(1)}% < ${(this.thresholds.minCoverage * 100).toFixed(1)}%${why}`);
      }
      if (level.arrivalLagP95Ms !== null && level.arrivalLagP95Ms > this.thresholds.maxLagMs) {
        problems.push(`arrival lag ${level.interval} ${level.arrivalLagP95Ms} ms > ${this.thresholds.maxLagMs} ms`);
      }
    }
    const latency = this.latencyP99Ms();
    if (latency !== null && latency > this.thresholds.maxLatencyMs) {
      problems.push(`close-to-commit latency p99 ${Math.round(latency)} ms > ${this.thresholds.maxLatencyMs} ms`);
    }
    return problems;
  }

  snapshot(): TickServiceLevel[] {
    return [...this.latest.values()].map(({ level }) => ({ ...level, waitingFor: { ...level.waitingFor } }));
  }

  private static refresh(tick: LatestTick): void {
    const { level } = tick;
    level.evaluated = Math.min(level.expected, tick.evaluated.size);
    level.coverage = coverageOf(level.evaluated, level.expected);
    const waitingFor: Partial<Record<Interval, number>> = {};
    for (const timeframes of tick.waiting.values()) for (const timeframe of timeframes) waitingFor[timeframe] = (waitingFor[timeframe] ?? 0) + 1;
    level.waitingFor = waitingFor;
  }
}

function coverageOf(evaluated: number, expected: number): number {
  return expected === 0 ? 1 : Math.min(1, evaluated / expected);
}
