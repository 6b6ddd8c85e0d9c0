// Fault switches of the simulator and how often each one fired; the REST and stream servers consult them.
import type { Clock } from '../../src/clock.ts';

export type RestFailure = 500 | 502 | 503 | 'hang';

/** Names under which `stats().faults` counts each fault. */
export type FaultName =
  | 'dropConnections'
  | 'connectionsDropped'
  | 'stall'
  | 'malformedFrames'
  | 'unknownEvents'
  | 'restLatency'
  | 'restFailures'
  | 'rateLimit'
  | 'ban'
  | 'serverShutdown'
  | 'setSymbolStatus'
  | 'addSymbol'
  | 'klinesFailed';

export class FaultState {
  readonly counts: Record<string, number> = {};
  restLatencyMs: number;
  private readonly clock: Clock;
  private stalledUntil = 0;
  private restFailuresLeft = 0;
  private restFailureStatus: RestFailure = 500;

  constructor(clock: Clock, restLatencyMs: number) {
    this.clock = clock;
    this.restLatencyMs = restLatencyMs;
  }

  count(name: FaultName, by = 1): void {
    this.counts[name] = (this.counts[name] ?? 0) + by;
  }

  stall(durationMs: number | undefined): void {
    this.stalledUntil = durationMs === undefined ? Number.POSITIVE_INFINITY : this.clock.now() + durationMs;
    this.count('stall');
  }

  clearStall(): void {
    this.stalledUntil = 0;
  }

  isStalled(): boolean {
    return this.clock.now() < this.stalledUntil;
  }

  failRest(count: number, status: RestFailure): void {
    this.restFailuresLeft = count;
    this.restFailureStatus = status;
  }

  /** The failure the next REST request must suffer, if any (consumes one). */
  takeRestFailure(): RestFailure | null {
    if (this.restFailuresLeft <= 0) return null;
    this.restFailuresLeft--;
    this.count('restFailures');
    return this.restFailureStatus;
  }

  /** Per interval, the clock time until which its REST klines answer 503 (a gap fill of that timeframe failing for minutes). */
  readonly klinesFailingUntil = new Map<string, number>();

  /** Whether a klines request for `interval` must fail now (counted). */
  klinesFail(interval: string | null): boolean {
    if (interval === null || this.clock.now() >= (this.klinesFailingUntil.get(interval) ?? 0)) return false;
    this.count('klinesFailed');
    return true;
  }

  resetCounts(): void {
    for (const name of Object.keys(this.counts)) delete this.counts[name];
  }
}
