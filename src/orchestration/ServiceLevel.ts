// Each tick's service level (coverage, arrival lag, close-to-commit latency) and whether it is good enough to call the worker ready.
import type { Interval } from '../domain.ts';

export interface TickServiceLevel {
  interval: Interval;
  openTime: number;
  expected: number;
  evaluated: number;
  /** evaluated ÷ expected, 1 when nothing was expected. */
  coverage: number;
  /** 95th percentile of closing-kline arrival lag, clock ms; null when no stream close arrived. */
  arrivalLagP95Ms: number | null;
  arrivalLagMaxMs: number | null;
  /** Largest close-to-commit latency of the tick's signals, clock ms; null without signals. */
  closeToCommitMaxMs: number | null;
}

export interface ServiceLevelThresholds {
  minCoverage: number;
  maxLagMs: number;
}

export function percentile(values: readonly number[], fraction: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[index] ?? null;
}

/**
 * Keeps the latest tick of every refresh interval. A late symbol's follow-up raises the coverage of
 * its own tick, so one slow symbol that is filled in time does not mark the worker degraded.
 */
export class ServiceLevel {
  private readonly thresholds: ServiceLevelThresholds;
  private readonly latest = new Map<Interval, TickServiceLevel>();

  constructor(thresholds: ServiceLevelThresholds) {
    this.thresholds = thresholds;
  }

  recordTick(level: TickServiceLevel): void {
    const previous = this.latest.get(level.interval);
    if (previous !== undefined && previous.openTime > level.openTime) return;
    this.latest.set(level.interval, level);
  }

  /** Add symbols evaluated after the tick; returns the updated level when the tick is still the latest. */
  recordFollowUp(interval: Interval, openTime: number, evaluated: number, closeToCommitMaxMs: number | null): TickServiceLevel | null {
    const level = this.latest.get(interval);
    if (level === undefined || level.openTime !== openTime) return null;
    level.evaluated = Math.min(level.expected, level.evaluated + evaluated);
    level.coverage = level.expected === 0 ? 1 : level.evaluated / level.expected;
    if (closeToCommitMaxMs !== null) level.closeToCommitMaxMs = Math.max(level.closeToCommitMaxMs ?? 0, closeToCommitMaxMs);
    return level;
  }

  /** Forget intervals no trader refreshes on any more. */
  retain(intervals: readonly Interval[]): void {
    for (const interval of this.latest.keys()) if (!intervals.includes(interval)) this.latest.delete(interval);
  }

  /** Reasons the service level is not good enough; empty when it is. */
  problems(): string[] {
    const problems: string[] = [];
    for (const level of this.latest.values()) {
      if (level.coverage < this.thresholds.minCoverage) {
        problems.push(`coverage ${level.interval} ${(level.coverage * 100).toFixed(1)}% < ${(this.thresholds.minCoverage * 100).toFixed(1)}%`);
      }
      if (level.arrivalLagP95Ms !== null && level.arrivalLagP95Ms > this.thresholds.maxLagMs) {
        problems.push(`arrival lag ${level.interval} ${level.arrivalLagP95Ms} ms > ${this.thresholds.maxLagMs} ms`);
      }
    }
    return problems;
  }

  snapshot(): TickServiceLevel[] {
    return [...this.latest.values()].map((level) => ({ ...level }));
  }
}

export function coverageOf(evaluated: number, expected: number): number {
  return expected === 0 ? 1 : Math.min(1, evaluated / expected);
}
