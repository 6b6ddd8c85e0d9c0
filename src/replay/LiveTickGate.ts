// Keeps replay work off the live ticks' path: replay runs in short slices that start only in the quiet time between ticks.
import type { Clock } from '../clock.ts';
import type { ScreenerPort } from '../ports.ts';

/** Every interval's candles close on a minute boundary (src/domain.ts candleOpenTimeAt), so every live tick starts after one. */
const MINUTE = 60_000;

export interface LiveTickGateOptions {
  clock: Clock;
  /**
   * No slice starts this close before a minute boundary: a slice that starts must end before the next candles close.
   * It must cover the longest slice, which the replay screener's tick budget bounds (see ReplayService).
   */
  guardMs: number;
  /** TICK_GRACE_MS: a tick may start this long after its boundary, waiting for late closes; no slice starts before it did. */
  tickGraceMs: number;
  /** After a live screening run ends, slices wait this long: the tick goes on to write its signals and status. */
  quietMs: number;
}

export interface LiveTickGateStats {
  /** Replay slices run. */
  slices: number;
  /** Live screening runs that started while a replay slice was running (the guarantee is that this stays 0 for ticks). */
  liveRunsDuringSlices: number;
  /** Live screening runs seen. */
  liveRuns: number;
}

/**
 * The live worker's screener is watched (its runs are what a tick spends its time on); a replay slice starts only when:
 * no live run is in flight, the last one ended `quietMs` ago, this minute's ticks have run (or their grace has passed
 * without one), and the next minute boundary is more than `guardMs` away. Slices never preempt anything: they wait.
 */
export class LiveTickGate {
  private readonly options: LiveTickGateOptions;
  private liveInFlight = 0;
  private lastLiveStart = Number.NEGATIVE_INFINITY;
  private lastLiveEnd = Number.NEGATIVE_INFINITY;
  private slicesInFlight = 0;
  private readonly counters: LiveTickGateStats = { slices: 0, liveRunsDuringSlices: 0, liveRuns: 0 };

  constructor(options: LiveTickGateOptions) {
    this.options = options;
  }

  stats(): LiveTickGateStats {
    return { ...this.counters };
  }

  /**
   * The live screener with its runs counted. A proxy, so every other member of the port passes through unchanged
   * whatever the port grows.
   */
  watch<T extends Pick<ScreenerPort, 'run'>>(screener: T): T {
    const run: ScreenerPort['run'] = async (request) => {
      this.liveInFlight++;
      this.counters.liveRuns++;
      if (this.slicesInFlight > 0) this.counters.liveRunsDuringSlices++;
      this.lastLiveStart = this.options.clock.now();
      try {
        return await screener.run(request);
      } finally {
        this.liveInFlight--;
        this.lastLiveEnd = this.options.clock.now();
      }
    };
    return new Proxy(screener, {
      get(target, key) {
        if (key === 'run') return run;
        const value = Reflect.get(target, key, target) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /**
   * Resolves once the live ticks leave room for replay work; rejects with the signal's reason when aborted while
   * waiting. For work that mostly waits on I/O (a REST page), which holds no CPU a tick needs.
   */
  async quiet(signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const waitMs = this.waitMs(this.options.clock.now());
      if (waitMs === 0) return;
      await this.options.clock.sleep(waitMs, signal);
    }
  }

  /** Run `work` (CPU: a replayed candle) as one slice once the live ticks leave room for it (see quiet). */
  async slice<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.quiet(signal);
    this.slicesInFlight++;
    this.counters.slices++;
    try {
      return await work();
    } finally {
      this.slicesInFlight--;
    }
  }

  /** 0 when a slice may start now, else how long to wait before asking again. */
  private waitMs(now: number): number {
    const { guardMs, tickGraceMs, quietMs } = this.options;
    if (this.liveInFlight > 0) return quietMs;
    const sinceLive = now - this.lastLiveEnd;
    if (sinceLive < quietMs) return quietMs - sinceLive;
    const boundary = Math.floor(now / MINUTE) * MINUTE;
    const untilNext = boundary + MINUTE - now;
    // Too close to the next close: wait until just past it, then for its tick.
    if (untilNext <= guardMs) return untilNext + 1;
    // This minute's closes: wait for their tick to have run, or for its grace (and a margin) to pass without one.
    const tickDone = this.lastLiveStart >= boundary;
    const graceOver = now - boundary > tickGraceMs + guardMs;
    if (!tickDone && !graceOver) return Math.min(quietMs, boundary + tickGraceMs + guardMs - now + 1);
    return 0;
  }
}
