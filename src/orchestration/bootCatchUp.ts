// The boot's catch-up: screens the candles that closed while no worker ran, each trader from where the previous run stopped.
import type { Clock } from '../clock.ts';
import { type Interval, type Trader, candleOpenTimeAt, intervalMs } from '../domain.ts';
import type { TickRequest } from './TickScheduler.ts';

/** A worker down for longer than this many candles of an interval resumes that far back, no further. */
export const MAX_CATCH_UP_CANDLES = 60;

export interface BootCatchUpOptions {
  clock: Clock;
  /** The refresh intervals that have traders. */
  intervals: Iterable<Interval>;
  traders: Iterable<Trader>;
  /** Per trader unchanged since the previous run: when that run last evaluated it (trader_status.last_evaluated_at). */
  resumeFrom: ReadonlyMap<string, number>;
  symbols: () => string[];
  /** True once a shutdown began: the catch-up ends at the candle it is on. */
  stopping: () => boolean;
  /** Screens one candle for these traders only. */
  run: (request: TickRequest, traderIds: ReadonlySet<string>) => Promise<unknown>;
}

/**
 * Screen, oldest first, the candles that closed between the previous run's last evaluation and the
 * one before the latest (the latest itself is the scheduler's boot catch-up). Each trader only from
 * its own resume point: a trader that is new or changed since starts, as in the browser, at the
 * latest candle. A candle evaluated twice (status written a tick late before a crash) is harmless:
 * its signal row already exists and the insert ignores the conflict. Returns the candles screened per interval.
 */
export async function catchUpMissedCandles(options: BootCatchUpOptions): Promise<Record<string, number>> {
  const { clock } = options;
  const traders = [...options.traders];
  const screened: Record<string, number> = {};
  const pending: Array<{ interval: Interval; step: number; resume: Map<string, number>; openTime: number }> = [];
  for (const interval of options.intervals) {
    const step = intervalMs(interval);
    const resume = new Map<string, number>();
    for (const trader of traders) {
      const evaluatedAt = options.resumeFrom.get(trader.id);
      // The tick that ran at `evaluatedAt` screened the candle before the one open then; the next one is due.
      if (trader.filter.refreshInterval === interval && evaluatedAt !== undefined) resume.set(trader.id, candleOpenTimeAt(interval, evaluatedAt));
    }
    if (resume.size === 0) continue;
    const openTime = Math.max(Math.min(...resume.values()), candleOpenTimeAt(interval, clock.now()) - MAX_CATCH_UP_CANDLES * step);
    pending.push({ interval, step, resume, openTime });
  }
  // The latest closed candle moves on while we screen: keep going until only it is left. Passes repeat until one
  // screens nothing: a candle of one interval that closes while another interval is caught up is screened too (the
  // scheduler, started right after, screens only the latest).
  for (let progressed = true; progressed && !options.stopping(); ) {
    progressed = false;
    for (const entry of pending) {
      const { interval, step, resume } = entry;
      while (!options.stopping() && entry.openTime < candleOpenTimeAt(interval, clock.now()) - step) {
        const openTime = entry.openTime;
        const due = new Set([...resume].filter(([, from]) => from <= openTime).map(([id]) => id));
        const symbols = options.symbols();
        if (due.size > 0) await options.run(
          {
            kind: 'catchup',
            interval,
            openTime,
            symbols,
            expected: symbols.length,
            closeReceivedAt: new Map(),
            arrivalLagsMs: [],
            queuedAt: clock.now(),
          },
          due,
        );
        if (due.size > 0) screened[interval] = (screened[interval] ?? 0) + 1;
        entry.openTime += step;
        progressed = true;
      }
    }
  }
  return screened;
}
