// Crash-loop protection: after an abnormal exit, each trader runs alone under a committed mark, so one that takes the process down is named by the next boot.
import type { Clock } from '../clock.ts';
import { candleOpenTimeAt, intervalMs, type PreviousRun, type ProbationMark, type Trader } from '../domain.ts';
import type { Logger } from '../logger.ts';
import type { MarketView, ScreenerPort, StatusSink } from '../ports.ts';

export interface ProbationOptions {
  status: Pick<StatusSink, 'readPreviousRun' | 'writeProbation'>;
  screener: Pick<ScreenerPort, 'run'>;
  market: MarketView;
  clock: Clock;
  logger: Logger;
  /** A trader the screener disabled during its probation run (a thread crash, say): recorded for trader_status. */
  onDisabled: (traderId: string, reason: string) => void;
}

/**
 * A filter can only reach the host through the sandbox, and a thread crash is charged to its trader
 * (Screener); but a native abort (isolated-vm, V8) ends the whole process with no chance to say who
 * ran. Restarted, the same rows would bring it down again, silencing every trader of the user. So a
 * boot that follows an exit which never marked the worker `stopped` first screens each trader alone
 * on its latest closed candle, with `worker_status.probation` naming it, committed before its code
 * runs. A process that dies there leaves its name behind: the next boot disables it (until its row
 * changes) and carries on with the traders not yet cleared. Two restarts at most after the first
 * abort: one that finds the trader, one that disables it.
 *
 * Not covered: a filter that aborts the process only on some later tick (not on its probation run)
 * is probed again after each abort without being caught; each cycle still lasts as long as the
 * filter takes to strike.
 */
export class Probation {
  private readonly options: ProbationOptions;
  private previous: PreviousRun | null = null;
  private cleared: string[] = [];

  constructor(options: ProbationOptions) {
    this.options = options;
  }

  /** Read what the previous process left; before this run writes its own worker_status. */
  async readPrevious(): Promise<void> {
    this.previous = await this.options.status.readPreviousRun();
    this.cleared = [...(this.previous?.probation?.cleared ?? [])];
  }

  /** True when the previous process ended without marking itself stopped: a crash, an abort, an OOM kill, a lost host. */
  get needed(): boolean {
    return this.previous !== null && this.previous.state !== 'stopped';
  }

  /**
   * The trader the previous process died running alone, if it is still the same code. The mark is
   * cleared of it at once, so an edited row (a new code hash) is never charged for the old one.
   */
  async takeSuspect(traders: ReadonlyMap<string, Trader>): Promise<{ trader: Trader; reason: string } | null> {
    const mark = this.previous?.probation;
    if (!mark?.traderId) return null;
    const trader = traders.get(mark.traderId);
    await this.write({ traderId: null, codeHash: null, cleared: this.cleared });
    if (trader === undefined || (mark.codeHash !== null && mark.codeHash !== trader.codeHash)) return null;
    return {
      trader,
      reason: 'TRADER_CRASH: the worker process died while this trader was screened alone after an abnormal exit (a native abort or a kill); disabled until its row changes',
    };
  }

  /** Screen each trader not yet cleared alone, its name committed first; returns how many ran. */
  async run(traders: readonly Trader[]): Promise<{ probed: number; alreadyCleared: number }> {
    const { screener, market, clock, logger } = this.options;
    const cleared = new Set(this.cleared);
    let probed = 0;
    for (const trader of traders) {
      if (cleared.has(trader.id)) continue;
      await this.write({ traderId: trader.id, codeHash: trader.codeHash, cleared: [...cleared] });
      const interval = trader.filter.refreshInterval;
      try {
        const result = await screener.run({
          interval,
          candleOpenTime: candleOpenTimeAt(interval, clock.now()) - intervalMs(interval),
          traderIds: [trader.id],
          symbols: market.symbols(),
          market,
        });
        for (const outcome of result.traders) if (outcome.disabled !== null) this.options.onDisabled(outcome.traderId, outcome.disabled.reason);
      } catch (error) {
        // The probe only has to survive; its verdicts are not signals (the catch-up screens the same candles).
        logger.warn({ event: 'probation_failed', traderId: trader.id, err: error }, 'probation run failed');
      }
      cleared.add(trader.id);
      probed++;
    }
    this.cleared = [];
    await this.write(null);
    return { probed, alreadyCleared: traders.length - probed };
  }

  private async write(mark: ProbationMark | null): Promise<void> {
    await this.options.status.writeProbation(mark);
  }
}
