// Turns candle-close events into screening ticks: waits for every symbol's close up to a grace period, follows up late ones, never piles up.
// Past 400 lines: collecting closes, following up late symbols and following up owed evaluations all read and write the
// same per-candle collectors (a split would hand each of them every collector); the run queue is TickQueue's.
import type { Clock, TimerHandle } from '../clock.ts';
import { type Interval, candleOpenTimeAt, intervalMs } from '../domain.ts';
import type { Logger } from '../logger.ts';
import type { CandleClosedEvent, SkippedEvaluation, TickMarket, TickRef } from '../ports.ts';
import { MAX_PENDING_CANDLES, TickQueue } from './TickQueue.ts';

/** One unit of screening work for one refresh interval and candle. */
export interface TickRequest extends TickRef {
  /** Symbols whose series are complete for this candle (and for every aligned timeframe). */
  symbols: string[];
  /** Universe size when the tick fired: the coverage denominator. */
  expected: number;
  /** Worker-clock time each symbol's closing kline of `interval` arrived. */
  closeReceivedAt: Map<string, number>;
  /** Closing-kline arrival lags (receivedAt − close), stream closes only, in clock ms. */
  arrivalLagsMs: number[];
  /** Worker-clock time the request was queued. */
  queuedAt: number;
  /** Only these traders (a follow-up of evaluations skipped for an incomplete timeframe); every due trader when absent. */
  traderIds?: string[];
}

/**
 * Asks the market's one judge of completeness whether `timeframe` holds its last candle closing at or before `boundary`
 * (on it, when the boundaries align): the question the scheduler asks when a tick fires and the runner when it runs.
 */
export function completeAtBoundary(market: Pick<TickMarket, 'isComplete'>, symbol: string, timeframe: Interval, boundary: number): boolean {
  return market.isComplete(symbol, timeframe, candleOpenTimeAt(timeframe, boundary) - intervalMs(timeframe));
}

/** What a run hands back to be followed up: symbols whose refresh series was incomplete after all, and (trader, symbol) pairs it skipped. */
export interface TickFollowUps {
  incomplete: string[];
  /** Pairs not evaluated because these other timeframes of the trader were incomplete: owed once they are filled. */
  skipped: SkippedEvaluation[];
}

export interface TickSchedulerOptions {
  clock: Clock;
  logger: Logger;
  market: TickMarket;
  graceMs: number;
  /**
   * Runs one request; the scheduler never runs two for the same interval at once. Returns the
   * symbols it found incomplete after all (a gap opened meanwhile): they are filled and followed up;
   * and the pairs it skipped for another incomplete timeframe: followed up once that series is filled.
   */
  run: (request: TickRequest) => Promise<TickFollowUps | void>;
  /** A queued request was dropped (more than MAX_PENDING_CANDLES waiting) or merged into a queued one; logged here already. */
  onBacklog?: (request: TickRequest, outcome: 'skipped' | 'coalesced') => void;
  /**
   * Called `boundaryLeadMs` before each boundary of a scheduled interval: work that would otherwise sit on the path from
   * the close to the commit can be done ahead (the signal sink opens its connection). Never awaited.
   */
  onBoundaryNear?: (interval: Interval) => void;
  /** Clock ms before a boundary that onBoundaryNear runs. Default 2000. */
  boundaryLeadMs?: number;
}

/** Far enough ahead of a close for a connection's handshakes to a distant database, near enough that it is not idle-closed (4 s). */
const DEFAULT_BOUNDARY_LEAD_MS = 2000;

interface Collector {
  interval: Interval;
  openTime: number;
  boundary: number;
  /** Per symbol, the timeframes whose closing candle at `boundary` has not been seen yet. */
  waiting: Map<string, Set<Interval>>;
  pendingSymbols: number;
  closeReceivedAt: Map<string, number>;
  arrivalLagsMs: number[];
  graceTimer: TimerHandle | undefined;
  /** After firing: symbols still incomplete, evaluated in a follow-up once filled. */
  late: Set<string>;
  /** Follow-up rounds per symbol, bounded so a series that never settles cannot loop. */
  rounds: Map<string, number>;
  expected: number;
  /** Per symbol, per trader, the other timeframes whose incompleteness made the run skip the pair: owed a follow-up. */
  owed: Map<string, Map<string, Interval[]>>;
}

const MAX_FOLLOW_UP_ROUNDS = 3;
/**
 * Candles of one interval that may owe evaluations skipped for an incomplete timeframe (a higher timeframe's gap
 * fill failing): an hour of 1m candles, as far back as a restart catches up. Past it the oldest are given up, counted.
 */
const MAX_OWING_CANDLES = 60;

interface IntervalSlot {
  timeframes: Interval[];
  collecting: Collector | null;
  fired: Collector | null;
  /** The last few fired collectors, newest last: a late symbol of any of them can still be followed up. */
  recent: Collector[];
  /** Fired collectors that owe skipped evaluations, oldest first (at most MAX_OWING_CANDLES). */
  owing: Collector[];
  boundaryTimer: TimerHandle | undefined;
  /** onBoundaryNear's timer for the next boundary. */
  nearTimer: TimerHandle | undefined;
  queue: TickQueue;
}

/**
 * Per refresh interval I: the first close of candle T opens a collector that waits until every
 * universe symbol has closed T (and every other timeframe the interval's traders read and that closes
 * at the same instant), or until the grace period ends. Symbols still missing then are filled by
 * REST and screened in a follow-up when complete. A watchdog fires the tick at boundary + grace even
 * when no close arrived at all, so a silent feed shows up as lost coverage instead of nothing.
 */
export class TickScheduler {
  private readonly options: TickSchedulerOptions;
  private readonly slots = new Map<Interval, IntervalSlot>();
  /** Per (symbol, timeframe) fill in flight, the collectors waiting on it: every candle it was late for is followed up. */
  private readonly fillsInFlight = new Map<string, Set<Collector>>();
  /** Per (symbol, timeframe), the candles owing evaluations until that series is complete. */
  private readonly owedBySeries = new Map<string, Set<Collector>>();
  private accepting = false;

  constructor(options: TickSchedulerOptions) {
    this.options = options;
  }

  /** Schedule ticks for these refresh intervals; each lists every timeframe its traders read. */
  setSchedule(schedule: ReadonlyMap<Interval, readonly Interval[]>): void {
    for (const [interval, slot] of this.slots) {
      if (schedule.has(interval)) continue;
      this.clearSlotTimers(slot);
      slot.collecting = null;
      slot.fired = null;
      this.slots.delete(interval);
    }
    for (const [interval, timeframes] of schedule) {
      const existing = this.slots.get(interval);
      const merged = [...new Set<Interval>([interval, ...timeframes])];
      if (existing) {
        existing.timeframes = merged;
        continue;
      }
      const slot: IntervalSlot = {
        timeframes: merged,
        collecting: null,
        fired: null,
        recent: [],
        owing: [],
        boundaryTimer: undefined,
        nearTimer: undefined,
        queue: new TickQueue({ logger: this.options.logger, run: (request) => this.runRequest(request), onBacklog: this.options.onBacklog }),
      };
      this.slots.set(interval, slot);
      if (this.accepting) {
        this.armWatchdog(interval, slot);
        this.armNear(interval, slot);
      }
    }
  }

  start(): void {
    this.accepting = true;
    for (const [interval, slot] of this.slots) {
      this.armWatchdog(interval, slot);
      this.armNear(interval, slot);
    }
  }

  /** Stop scheduling and wait for running ticks to finish. */
  async stop(): Promise<void> {
    this.accepting = false;
    for (const slot of this.slots.values()) {
      this.clearSlotTimers(slot);
      slot.collecting = null;
    }
    await Promise.all([...this.slots.values()].map((slot) => slot.queue.clear()));
  }

  /** Feed every candle close from the store here. */
  candleClosed(event: CandleClosedEvent): void {
    if (!this.accepting) return;
    const boundary = event.candle.openTime + intervalMs(event.interval);
    const now = this.options.clock.now();
    for (const [interval, slot] of this.slots) {
      if (!slot.timeframes.includes(event.interval)) continue;
      if (candleOpenTimeAt(interval, boundary) !== boundary) continue;
      // History replayed by a backfill or a long gap fill is not a tick: only the latest boundary (or the one before, late) is.
      if (boundary + intervalMs(interval) <= candleOpenTimeAt(interval, now)) continue;
      const openTime = boundary - intervalMs(interval);
      const collector = this.collectorFor(interval, slot, openTime);
      if (collector === null) continue;
      this.arrive(slot, collector, event);
    }
  }

  /**
   * Screen the latest closed candle of `interval` now, outside the close events: at boot and when
   * traders change, so an edge that closed while the worker was away (or before the trader existed)
   * is not lost. Repeats are harmless: the edge tracker calls a candle already judged matched continuing.
   */
  catchUp(interval: Interval): void {
    const slot = this.slots.get(interval);
    if (slot === undefined || !this.accepting) return;
    const openTime = candleOpenTimeAt(interval, this.options.clock.now()) - intervalMs(interval);
    // A tick for this candle or a newer one is already on its way.
    if (slot.collecting !== null && slot.collecting.openTime >= openTime) return;
    if (slot.fired !== null && slot.fired.openTime > openTime) return;
    if (slot.fired !== null && slot.fired.openTime === openTime) {
      const ready = [...slot.fired.waiting].filter(([symbol, missing]) => missing.size === 0 && !slot.fired!.late.has(symbol));
      slot.queue.enqueue(this.request('catchup', slot.fired, ready.map(([symbol]) => symbol)));
      return;
    }
    this.fire(interval, slot, this.openCollector(interval, slot, openTime), 'catchup');
  }

  /**
   * A series was filled by REST (a gap after a reconnect, a failed fill retried): evaluations skipped for it are
   * followed up now, each on the market as it stood at its own candle's close.
   */
  seriesFilled(symbol: string, timeframe: Interval): void {
    if (!this.accepting) return;
    const key = `${symbol}\u0000${timeframe}`;
    // Late symbols whose own fill failed (the market retried it and succeeded): their candles are screenable now, or
    // once a fill of the same series in flight for another candle lands. Without this, a candle that closed while its
    // series' gap fill was failing was never screened.
    const inFlight = this.fillsInFlight.get(key);
    for (const slot of this.slots.values()) {
      for (const collector of slot.recent) {
        if (!collector.late.has(symbol) || collector.waiting.get(symbol)?.has(timeframe) !== true) continue;
        if (inFlight !== undefined) inFlight.add(collector);
        else this.filled(slot, collector, symbol);
      }
    }
    const collectors = this.owedBySeries.get(key);
    if (collectors === undefined) return;
    for (const collector of [...collectors].sort((a, b) => a.openTime - b.openTime)) this.followUpOwed(collector, symbol);
  }

  /** Number of ticks running or queued, for stats. */
  backlog(): number {
    let count = 0;
    for (const slot of this.slots.values()) count += slot.queue.size;
    return count;
  }

  private collectorFor(interval: Interval, slot: IntervalSlot, openTime: number): Collector | null {
    if (slot.fired !== null && openTime <= slot.fired.openTime) return openTime === slot.fired.openTime ? slot.fired : null;
    if (slot.collecting !== null) {
      if (slot.collecting.openTime === openTime) return slot.collecting;
      if (slot.collecting.openTime > openTime) return null;
      // A newer candle started closing before the older one's grace ended: the older one goes now.
      this.fire(interval, slot, slot.collecting);
    }
    this.fireMissed(interval, slot, openTime);
    slot.collecting = this.openCollector(interval, slot, openTime);
    return slot.collecting;
  }

  /**
   * Candles between the last one fired and `openTime` that never collected a close: the process was
   * frozen (or its streams silent) across their boundaries, and their closes came later as history
   * (a gap fill), which candleClosed does not turn into ticks. Screened now as catch-ups, oldest first
   * and before `openTime`'s tick, so the rising edges run in order; at most MAX_PENDING_CANDLES back.
   * Each goes through the usual fire: symbols still incomplete are filled and followed up.
   */
  private fireMissed(interval: Interval, slot: IntervalSlot, openTime: number): void {
    if (slot.fired === null) return;
    const step = intervalMs(interval);
    const first = Math.max(slot.fired.openTime + step, openTime - MAX_PENDING_CANDLES * step);
    for (let missed = first; missed < openTime; missed += step) this.fire(interval, slot, this.openCollector(interval, slot, missed), 'catchup');
  }

  private openCollector(interval: Interval, slot: IntervalSlot, openTime: number): Collector {
    const boundary = openTime + intervalMs(interval);
    // Only timeframes whose candle also closes at this boundary are waited for (5m closes with every fifth 1m).
    const aligned = slot.timeframes.filter((timeframe) => candleOpenTimeAt(timeframe, boundary) === boundary);
    const waiting = new Map<string, Set<Interval>>();
    for (const symbol of this.options.market.symbols()) waiting.set(symbol, new Set(aligned));
    const collector: Collector = {
      interval,
      openTime,
      boundary,
      waiting,
      pendingSymbols: waiting.size,
      closeReceivedAt: new Map(),
      arrivalLagsMs: [],
      graceTimer: undefined,
      late: new Set(),
      rounds: new Map(),
      expected: waiting.size,
      owed: new Map(),
    };
    collector.graceTimer = this.options.clock.setTimeout(() => {
      if (slot.collecting === collector) this.fire(interval, slot, collector);
    }, this.options.graceMs);
    return collector;
  }

  private arrive(slot: IntervalSlot, collector: Collector, event: CandleClosedEvent): void {
    const missing = collector.waiting.get(event.symbol);
    if (missing === undefined) return;
    if (event.interval === collector.interval && !collector.closeReceivedAt.has(event.symbol)) {
      collector.closeReceivedAt.set(event.symbol, event.receivedAt);
      if (event.origin === 'stream') collector.arrivalLagsMs.push(Math.max(0, event.receivedAt - collector.boundary));
    }
    if (!missing.delete(event.interval) || missing.size > 0) return;
    collector.pendingSymbols -= 1;
    if (slot.collecting === collector) {
      if (collector.pendingSymbols === 0) this.fire(collector.interval, slot, collector);
    } else if (slot.fired === collector && collector.late.delete(event.symbol)) {
      this.enqueueFollowUp(collector, [event.symbol]);
    }
  }

  private fire(interval: Interval, slot: IntervalSlot, collector: Collector, kind: TickRequest['kind'] = 'tick'): void {
    this.options.clock.clearTimeout(collector.graceTimer);
    if (slot.collecting === collector) slot.collecting = null;
    slot.fired = collector;
    slot.recent = [...slot.recent.filter((recent) => recent !== collector), collector].slice(-(MAX_PENDING_CANDLES + 1));
    // A series completed without a fill event reaching us (a stream close, a backfill): owed pairs go now, oldest first.
    for (const older of [...slot.owing]) for (const symbol of [...older.owed.keys()]) this.followUpOwed(older, symbol);
    const ready: string[] = [];
    for (const [symbol, missing] of collector.waiting) {
      if (missing.size === 0 || this.completeNow(collector, symbol, missing)) ready.push(symbol);
      else collector.late.add(symbol);
    }
    slot.queue.enqueue(this.request(kind, collector, ready));
    for (const symbol of collector.late) this.fillLate(slot, collector, symbol);
  }

  /** A close can be stored without an event reaching us (an earlier fill); trust the store's view. */
  private completeNow(collector: Collector, symbol: string, missing: Set<Interval>): boolean {
    for (const timeframe of missing) {
      if (!completeAtBoundary(this.options.market, symbol, timeframe, collector.boundary)) return false;
      missing.delete(timeframe);
    }
    return true;
  }

  private fillLate(slot: IntervalSlot, collector: Collector, symbol: string): void {
    const missing = collector.waiting.get(symbol);
    if (missing === undefined) return;
    for (const timeframe of missing) {
      const key = `${symbol}\u0000${timeframe}`;
      const waiting = this.fillsInFlight.get(key);
      if (waiting !== undefined) {
        // A fill started for an earlier candle brings this one's close too: follow up both when it lands.
        waiting.add(collector);
        continue;
      }
      const collectors = new Set([collector]);
      this.fillsInFlight.set(key, collectors);
      this.options.market
        .fillSeries(symbol, timeframe)
        .catch((error: unknown) => {
          this.options.logger.warn({ event: 'tick_fill_failed', symbol, interval: timeframe, err: error }, 'late series fill failed');
        })
        .finally(() => {
          this.fillsInFlight.delete(key);
          for (const waiter of collectors) this.filled(slot, waiter, symbol);
        });
    }
  }

  /** A fill for a late symbol of `collector` ended: follow it up if the candle is now screenable. */
  private filled(slot: IntervalSlot, collector: Collector, symbol: string): void {
    if (!this.accepting || this.slots.get(collector.interval) !== slot || !collector.late.has(symbol)) return;
    if (slot.fired !== collector) {
      // A newer candle has fired since. This one is still owed its screening: the tick runner screens it
      // on the market as it stood at its close if the series now holds it, and leaves it out otherwise.
      collector.late.delete(symbol);
      this.enqueueFollowUp(collector, [symbol]);
      return;
    }
    const stillMissing = collector.waiting.get(symbol);
    if (stillMissing === undefined || !this.completeNow(collector, symbol, stillMissing)) return;
    if (!completeAtBoundary(this.options.market, symbol, collector.interval, collector.boundary)) return;
    collector.late.delete(symbol);
    this.enqueueFollowUp(collector, [symbol]);
  }

  /**
   * Remember the pairs a run skipped for an incomplete timeframe. A run covers, for each symbol it screened, every
   * trader owed there (a follow-up of owed pairs names them all), so what it skipped replaces what was owed.
   */
  private recordSkipped(request: TickRequest, result: TickFollowUps): void {
    const slot = this.slots.get(request.interval);
    if (slot === undefined) return;
    const collector = slot.recent.find((recent) => recent.openTime === request.openTime) ?? slot.owing.find((owing) => owing.openTime === request.openTime);
    if (collector === undefined) {
      // A run that waited so long its candle is forgotten: what it skipped cannot be followed up any more.
      if (result.skipped.length > 0) this.reportDropped(request.interval, request.openTime, result.skipped.length);
      return;
    }
    const incomplete = new Set(result.incomplete);
    for (const symbol of request.symbols) {
      if (incomplete.has(symbol)) continue;
      const owed = collector.owed.get(symbol);
      if (owed === undefined) continue;
      if (request.traderIds === undefined) owed.clear();
      else for (const traderId of request.traderIds) owed.delete(traderId);
      if (owed.size === 0) collector.owed.delete(symbol);
    }
    for (const pair of result.skipped) {
      const owed = collector.owed.get(pair.symbol) ?? new Map<string, Interval[]>();
      owed.set(pair.traderId, pair.timeframes);
      collector.owed.set(pair.symbol, owed);
      for (const timeframe of pair.timeframes) {
        const key = `${pair.symbol}\u0000${timeframe}`;
        const waiting = this.owedBySeries.get(key) ?? new Set<Collector>();
        waiting.add(collector);
        this.owedBySeries.set(key, waiting);
      }
    }
    slot.owing = slot.owing.filter((owing) => owing !== collector && owing.owed.size > 0);
    if (collector.owed.size > 0) {
      slot.owing.push(collector);
      slot.owing.sort((a, b) => a.openTime - b.openTime);
    }
    while (slot.owing.length > MAX_OWING_CANDLES) this.dropOwed(slot.owing.shift()!);
  }

  /** Follow up the pairs owed on `symbol` at this candle whose timeframes are all complete now. */
  private followUpOwed(collector: Collector, symbol: string): void {
    const slot = this.slots.get(collector.interval);
    const owed = collector.owed.get(symbol);
    if (slot === undefined || !slot.owing.includes(collector) || owed === undefined || !this.accepting) return;
    const ready = [...owed].filter(([, timeframes]) => timeframes.every((timeframe) => completeAtBoundary(this.options.market, symbol, timeframe, collector.boundary)));
    if (ready.length === 0) return;
    for (const [, timeframes] of ready) for (const timeframe of timeframes) this.owedBySeries.get(`${symbol}\u0000${timeframe}`)?.delete(collector);
    const request = this.request('followup', collector, [symbol]);
    // Every trader owed here: the run re-judges them all, so what it skips again stays owed.
    request.traderIds = [...owed.keys()];
    slot.queue.enqueue(request);
  }

  /** A candle left the follow-up window with evaluations still owed: they are given up, counted. */
  private dropOwed(collector: Collector): void {
    let pairs = 0;
    for (const [symbol, owed] of collector.owed) {
      pairs += owed.size;
      for (const timeframes of owed.values()) for (const timeframe of timeframes) this.owedBySeries.get(`${symbol}\u0000${timeframe}`)?.delete(collector);
    }
    collector.owed.clear();
    if (pairs > 0) this.reportDropped(collector.interval, collector.openTime, pairs);
  }

  private reportDropped(interval: Interval, openTime: number, pairs: number): void {
    this.options.logger.warn(
      { event: 'tick_owed_dropped', interval, openTime, pairs },
      'evaluations skipped for an incomplete timeframe were never followed up: the series stayed incomplete too long',
    );
  }

  /** Symbols a run found incomplete although their close had arrived: fill them and follow up. */
  private requeueIncomplete(request: TickRequest, symbols: readonly string[]): void {
    const slot = this.slots.get(request.interval);
    // Not only the latest candle: a tick that ran late finds its symbols incomplete while a newer one has fired.
    const collector = slot?.recent.find((recent) => recent.openTime === request.openTime);
    if (slot === undefined || !this.accepting) return;
    if (collector === undefined) {
      this.dropFollowUps(request, symbols, `the candle is more than ${MAX_PENDING_CANDLES} candles behind`);
      return;
    }
    const exhausted: string[] = [];
    for (const symbol of symbols) {
      const rounds = collector.rounds.get(symbol) ?? 0;
      if (rounds >= MAX_FOLLOW_UP_ROUNDS) {
        exhausted.push(symbol);
        continue;
      }
      collector.rounds.set(symbol, rounds + 1);
      collector.late.add(symbol);
      // The close itself arrived; what is missing is the series behind it (a gap being filled).
      collector.waiting.get(symbol)?.add(collector.interval);
      this.fillLate(slot, collector, symbol);
    }
    if (exhausted.length > 0) this.dropFollowUps(request, exhausted, `still incomplete after ${MAX_FOLLOW_UP_ROUNDS} follow-ups`);
  }

  /** Symbols of a candle that will not be screened after all: said once, so an operator sees what a tick lost. */
  private dropFollowUps(request: TickRequest, symbols: readonly string[], reason: string): void {
    this.options.logger.warn(
      { event: 'tick_followup_dropped', interval: request.interval, openTime: request.openTime, symbols: symbols.length, first: symbols.slice(0, 5), reason },
      'incomplete symbols of a candle given up',
    );
  }

  private enqueueFollowUp(collector: Collector, symbols: string[]): void {
    const slot = this.slots.get(collector.interval);
    if (slot === undefined || !this.accepting) return;
    slot.queue.enqueue(this.request('followup', collector, symbols));
  }

  private request(kind: TickRequest['kind'], collector: Collector, symbols: string[]): TickRequest {
    return {
      kind,
      interval: collector.interval,
      openTime: collector.openTime,
      symbols,
      expected: collector.expected,
      closeReceivedAt: collector.closeReceivedAt,
      arrivalLagsMs: kind === 'tick' ? [...collector.arrivalLagsMs] : [],
      queuedAt: this.options.clock.now(),
    };
  }

  /** One queued request: run it, then follow up what it found incomplete and remember what it skipped. */
  private async runRequest(request: TickRequest): Promise<void> {
    const result = await this.options.run(request);
    if (result) this.recordSkipped(request, result);
    if (result && result.incomplete.length > 0) this.requeueIncomplete(request, result.incomplete);
  }

  private armWatchdog(interval: Interval, slot: IntervalSlot): void {
    this.options.clock.clearTimeout(slot.boundaryTimer);
    const now = this.options.clock.now();
    const nextBoundary = candleOpenTimeAt(interval, now) + intervalMs(interval);
    const openTime = nextBoundary - intervalMs(interval);
    slot.boundaryTimer = this.options.clock.setTimeout(
      () => {
        if (!this.accepting || this.slots.get(interval) !== slot) return;
        const seen = (slot.fired !== null && slot.fired.openTime >= openTime) || slot.collecting?.openTime === openTime;
        if (!seen) {
          this.options.logger.warn({ event: 'tick_silent', interval, openTime }, 'no candle close arrived for this tick');
          if (slot.collecting !== null && slot.collecting.openTime < openTime) this.fire(interval, slot, slot.collecting);
          this.fire(interval, slot, this.openCollector(interval, slot, openTime));
        }
        this.armWatchdog(interval, slot);
      },
      nextBoundary - now + this.options.graceMs * 2,
    );
  }

  /** onBoundaryNear before each boundary of `interval` after `after` (now when absent), then for the next one. */
  private armNear(interval: Interval, slot: IntervalSlot, after?: number): void {
    const onNear = this.options.onBoundaryNear;
    if (onNear === undefined) return;
    this.options.clock.clearTimeout(slot.nearTimer);
    const lead = this.options.boundaryLeadMs ?? DEFAULT_BOUNDARY_LEAD_MS;
    const now = this.options.clock.now();
    let boundary = candleOpenTimeAt(interval, after ?? now) + intervalMs(interval);
    // Already inside the lead of the coming boundary: the one after it.
    if (after === undefined && boundary - lead <= now) boundary += intervalMs(interval);
    slot.nearTimer = this.options.clock.setTimeout(() => {
      if (!this.accepting || this.slots.get(interval) !== slot) return;
      try {
        onNear(interval);
      } catch (error) {
        this.options.logger.warn({ event: 'tick_prepare_failed', interval, err: error }, 'work ahead of a close failed');
      }
      // From this boundary on, even if the timer fired a hair early (an accelerated clock's timers can).
      this.armNear(interval, slot, boundary);
    }, boundary - lead - now);
  }

  private clearSlotTimers(slot: IntervalSlot): void {
    this.options.clock.clearTimeout(slot.boundaryTimer);
    slot.boundaryTimer = undefined;
    this.options.clock.clearTimeout(slot.nearTimer);
    slot.nearTimer = undefined;
    if (slot.collecting) this.options.clock.clearTimeout(slot.collecting.graceTimer);
    if (slot.fired) this.options.clock.clearTimeout(slot.fired.graceTimer);
  }
}
