// Decides, after each tick of a screening thread, which traders' isolates to collect: those that went idle, and all of them when the process is short of memory.

/**
 * Every trader has its own isolate, and one that ran a tick holds ~4.5 MB of V8 heap (two 1 MB
 * semi-spaces, the smallest V8 allows without pointer compression, plus old, code and trusted pages)
 * however little of it is in use; a low-memory collection takes it to ~1 MB. The collection costs
 * ~3-5 ms and the isolate's next run grows the heap again (page faults, recompiled code): paid once
 * per run, it would double a tick's CPU (BENCHMARKS.md, memory). So an isolate is collected only
 * when it will not run soon: once it has sat out `idleTicks` ticks of its thread in a row (a trader
 * on 5m, 15m or 1h, between its runs; a 1m trader never), or, whatever it costs, when the process's
 * resident memory is above the budget after a tick (the machine is nearly full: CPU is cheaper than
 * an out-of-memory kill).
 */
export interface IsolateCollectorOptions {
  /** Ticks in a row a trader must sit out before its isolate is collected. */
  idleTicks: number;
  /** Idle isolates collected at most per tick, so a crowd of slow traders going idle at once does not hold the thread. */
  maxIdlePerTick: number;
  /** Resident bytes of the process above which every isolate that ran since its last collection is collected. */
  budgetBytes: number;
  /** The process's resident bytes now. */
  rss: () => number;
}

interface TraderState {
  /** Ticks in a row this trader sat out. */
  idle: number;
  /** The isolate is as small as a collection leaves it: collected, or fresh and never run since. */
  small: boolean;
}

export class IsolateCollector {
  private readonly options: IsolateCollectorOptions;
  private readonly traders = new Map<string, TraderState>();

  constructor(options: IsolateCollectorOptions) {
    this.options = options;
  }

  /** A trader whose isolate is new (added, changed or rebuilt): nothing to collect until it runs. */
  fresh(traderId: string): void {
    this.traders.set(traderId, { idle: 0, small: true });
  }

  forget(traderId: string): void {
    this.traders.delete(traderId);
  }

  /** After a tick in which `ran` ran: the traders whose isolates to collect now, the longest idle first. */
  afterTick(ran: readonly string[]): string[] {
    const ranNow = new Set(ran);
    for (const [traderId, state] of this.traders) {
      if (ranNow.has(traderId)) {
        state.idle = 0;
        state.small = false;
      } else state.idle++;
    }
    const candidates = [...this.traders].filter(([, state]) => !state.small);
    const pressed = candidates.length > 0 && this.options.rss() > this.options.budgetBytes;
    const chosen = pressed
      ? candidates
      : candidates.filter(([, state]) => state.idle >= this.options.idleTicks).sort(([, a], [, b]) => b.idle - a.idle).slice(0, this.options.maxIdlePerTick);
    for (const [, state] of chosen) state.small = true;
    return chosen.map(([traderId]) => traderId);
  }
}
