// Decides, after each tick of a screening thread, which traders' isolates to collect (those that went idle, and all of them when the process is short of memory) and in which order the next tick runs its traders.

/**
 * Every trader has its own isolate, and one that ran a tick holds ~4.5 MB of V8 heap (two 1 MB
 * semi-spaces, the smallest V8 allows without pointer compression, plus old, code and trusted pages)
 * however little of it is in use; a low-memory collection takes it to ~1 MB. The collection costs
 * ~3-5 ms and the isolate's next run grows the heap again (page faults, recompiled code): paid once
 * per run, it would double a tick's CPU (BENCHMARKS.md, memory). So an isolate is collected only
 * when it will not run soon: once it has sat out `idleTicks` ticks of its thread in a row (a trader
 * on 5m, 15m or 1h, between its runs; a 1m trader never), or, whatever it costs, when the process's
 * resident memory is above the budget (the machine is nearly full: CPU is cheaper than an
 * out-of-memory kill).
 *
 * Above the budget, collecting after the tick is not enough: the normal order ('symbols': a batch of
 * symbols at a time, every trader over it) has every isolate large at once during the tick, so the
 * peak is what it was. The thread then switches to the memory-saving order ('traders': one trader
 * after another over all symbols, each isolate collected right after its own run, so one isolate is
 * large at a time), and stays in it while the RSS after a tick plus what the normal order would add
 * (what the process grew by during a trader's run, times the traders that run) is above the budget
 * less a margin: the margin is the hysteresis, so a process near its budget does not flip between the
 * two. Where the budget has room for some grown isolates but not all, the first traders of the tick
 * keep theirs (keepsGrown): the CPU the order costs (~4 ms of collection and ~5 ms of heap growing
 * back per trader and tick) is paid only for the isolates that do not fit.
 */
export type TickOrder = 'symbols' | 'traders';

/**
 * Grown isolates are planned (kept, or the normal order taken back) to fit this share of the budget
 * below it: the estimate of what a grown isolate holds is an average, and a wrong guess costs a tick
 * over the budget.
 */
export const RETURN_MARGIN = 0.05;

/** The least a grown isolate is taken to hold (a fresh one that ran holds ~4 MB of heap and malloc; a collected one ~1). */
const MIN_GROWTH_BYTES = 512 * 1024;

export interface IsolateCollectorOptions {
  /** Ticks in a row a trader must sit out before its isolate is collected. */
  idleTicks: number;
  /** Idle isolates collected at most per tick, so a crowd of slow traders going idle at once does not hold the thread. */
  maxIdlePerTick: number;
  /** Resident bytes of the process above which every isolate that ran since its last collection is collected, and ticks run in the memory-saving order. */
  budgetBytes: number;
  /** The process's resident bytes now. */
  rss: () => number;
  /**
   * Screening threads sharing the budget (1 when absent): each estimates the normal order's growth
   * from its own isolates only, so it counts its growth once per thread before it leaves the
   * memory-saving order (the threads' traders are spread evenly).
   */
  threads?: number;
}

interface TraderState {
  /** Ticks in a row this trader sat out. */
  idle: number;
  /** The isolate is as small as a collection leaves it: collected, or fresh and never run since. */
  small: boolean;
  /** Resident bytes the process grew by during its last run from a collected isolate: what it keeps in the normal order. */
  growth: number;
  /** Collected right after its run this tick (collectedAfterRun): the coming afterTick leaves it small. */
  smallSinceRun: boolean;
}

export class IsolateCollector {
  private readonly options: IsolateCollectorOptions;
  private readonly traders = new Map<string, TraderState>();
  private current: TickOrder = 'symbols';
  /** RSS after the last tick in the normal order, and how many traders ran in it. */
  private lastNormal: { rss: number; ran: number } | null = null;
  /** The first memory-saving tick after the normal order has not been compared with it yet. */
  private comparing = false;
  /**
   * Per trader, what the normal order kept beyond the memory-saving one, seen when the order last
   * changed: the RSS after the last normal tick less the RSS after the first memory-saving one, over
   * the traders that ran. Ground truth where the growth measured around single runs falls short
   * (the thread's own heap, malloc that stays with the normal order).
   */
  private observedPerTrader = 0;
  /** In the memory-saving order, the traders whose isolates stay grown between runs, as many as the budget leaves room for. */
  private keep = new Set<string>();

  constructor(options: IsolateCollectorOptions) {
    this.options = options;
  }

  /** The order the next tick runs its traders in. */
  get order(): TickOrder {
    return this.current;
  }

  /**
   * In the memory-saving order, whether `traderId`'s isolate stays grown after its run instead of
   * being collected: the first traders of the tick, as many as the room under the budget holds
   * beside the one running (none when there is no room). Each one kept saves its collection and
   * its heap growing back, which cost more CPU than its run.
   */
  keepsGrown(traderId: string): boolean {
    return this.current === 'traders' && this.keep.has(traderId);
  }

  /** A trader whose isolate is new (added, changed or rebuilt): nothing to collect until it runs. */
  fresh(traderId: string): void {
    const growth = this.traders.get(traderId)?.growth ?? 0;
    this.traders.set(traderId, { idle: 0, small: true, growth, smallSinceRun: false });
  }

  forget(traderId: string): void {
    this.traders.delete(traderId);
  }

  /**
   * In the memory-saving order, a trader's isolate was collected right after its run, during which
   * the process's resident memory grew by `grownBytes`: it is small again, and that is what the
   * normal order would keep for it.
   */
  collectedAfterRun(traderId: string, grownBytes: number): void {
    const state = this.traders.get(traderId);
    if (!state) return;
    state.small = true;
    state.smallSinceRun = true;
    state.growth = Math.max(0, grownBytes);
  }

  /**
   * After a tick in which `ran` ran: the traders whose isolates to collect now, the longest idle
   * first; and the order of the next tick (see TickOrder).
   */
  afterTick(ran: readonly string[]): string[] {
    const ranNow = new Set(ran);
    for (const [traderId, state] of this.traders) {
      if (ranNow.has(traderId)) {
        if (!state.smallSinceRun) state.small = false;
        state.idle = 0;
      } else state.idle++;
      state.smallSinceRun = false;
    }
    const rss = this.options.rss();
    const { budgetBytes } = this.options;
    if (this.current === 'symbols') {
      if (ran.length > 0) this.lastNormal = { rss, ran: ran.length };
      if (rss > budgetBytes && ran.length > 0) {
        this.current = 'traders';
        this.comparing = true;
        this.keep = new Set();
      }
    } else {
      if (this.comparing && this.lastNormal !== null && ran.length > 0) {
        this.observedPerTrader = Math.max(0, (this.lastNormal.rss - rss) / this.lastNormal.ran);
        this.comparing = false;
      }
      this.plan(ran, rss);
    }
    const candidates = [...this.traders].filter(([traderId, state]) => !state.small && (rss > budgetBytes || !this.keepsGrown(traderId)));
    const pressed = candidates.length > 0 && (this.current === 'traders' || rss > budgetBytes);
    const chosen = pressed
      ? candidates
      : candidates.filter(([, state]) => state.idle >= this.options.idleTicks).sort(([, a], [, b]) => b.idle - a.idle).slice(0, this.options.maxIdlePerTick);
    for (const [, state] of chosen) state.small = true;
    return chosen.map(([traderId]) => traderId);
  }

  /**
   * After a memory-saving tick, how many isolates may stay grown next tick, or the normal order when
   * all of them may: the room is the budget less the margin, less the RSS with every isolate
   * collected (the RSS now less the kept ones), shared with the other threads; each grown isolate
   * takes what a trader's run grows the process by (perTraderGrowth). More are kept a few at a time
   * (an estimate that errs low would otherwise overshoot the budget at once), fewer at once.
   */
  private plan(ran: readonly string[], rss: number): void {
    const growth = this.perTraderGrowth();
    let keptGrown = 0;
    for (const traderId of this.keep) if (this.traders.get(traderId)?.small === false) keptGrown++;
    const allCollected = rss - keptGrown * growth;
    const fit = Math.floor((this.options.budgetBytes * (1 - RETURN_MARGIN) - allCollected) / (growth * (this.options.threads ?? 1)));
    let running = 0;
    for (const state of this.traders.values()) if (state.idle < this.options.idleTicks) running++;
    if (fit >= running) {
      this.current = 'symbols';
      this.keep = new Set();
      return;
    }
    // The one running needs its room too.
    const step = Math.max(1, Math.ceil(running / 8));
    const kept = Math.max(0, Math.min(fit - 1, this.keep.size + step));
    this.keep = new Set(ran.slice(0, kept));
  }

  /**
   * Resident bytes one trader's grown isolate holds: what runs from a collected isolate grew the
   * process by, on average, or what the last change of order showed per trader when that is more;
   * never less than MIN_GROWTH_BYTES (an RSS that did not move is noise, not a free isolate).
   */
  private perTraderGrowth(): number {
    let measured = 0;
    let count = 0;
    for (const state of this.traders.values()) {
      if (state.growth <= 0) continue;
      measured += state.growth;
      count++;
    }
    return Math.max(MIN_GROWTH_BYTES, count > 0 ? measured / count : 0, this.observedPerTrader);
  }
}
