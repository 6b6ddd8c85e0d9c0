// Measures event-loop delay (real time, not the worker clock): for /health, the stats line and metrics.
import { type ELDHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

export interface EventLoopLag {
  meanMs: number;
  p99Ms: number;
  maxMs: number;
}

const BEAT_MS = 500;

/**
 * Two views of one property: a delay histogram (reset per stats window) and a heartbeat timer whose
 * age tells /health whether the loop has been starved recently. Both use real time on purpose: an
 * accelerated worker clock must not make a healthy loop look blocked.
 */
export class EventLoopMonitor {
  private readonly histogram: ELDHistogram;
  private beatTimer: ReturnType<typeof setInterval> | undefined;
  private lastBeat = performance.now();
  private longestGapMs = 0;

  constructor() {
    this.histogram = monitorEventLoopDelay({ resolution: 20 });
  }

  start(): void {
    this.histogram.enable();
    this.lastBeat = performance.now();
    this.beatTimer = setInterval(() => {
      const now = performance.now();
      this.longestGapMs = Math.max(this.longestGapMs, now - this.lastBeat - BEAT_MS);
      this.lastBeat = now;
    }, BEAT_MS);
    this.beatTimer.unref();
  }

  stop(): void {
    this.histogram.disable();
    if (this.beatTimer !== undefined) clearInterval(this.beatTimer);
    this.beatTimer = undefined;
  }

  /** How long the loop has gone without running the heartbeat beyond its period, in ms. */
  stalledMs(): number {
    return Math.max(0, performance.now() - this.lastBeat - BEAT_MS);
  }

  /** Delay statistics since the last reset; `reset` starts a new window (the stats line does). */
  lag(reset = false): EventLoopLag {
    const toMs = (ns: number) => (Number.isFinite(ns) ? ns / 1e6 : 0);
    const lag = {
      meanMs: toMs(this.histogram.mean),
      p99Ms: toMs(this.histogram.percentile(99)),
      maxMs: Math.max(toMs(this.histogram.max), this.longestGapMs),
    };
    if (reset) {
      this.histogram.reset();
      this.longestGapMs = 0;
    }
    return lag;
  }
}
