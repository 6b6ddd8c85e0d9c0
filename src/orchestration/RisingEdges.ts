// Remembers, per (trader, symbol), whether the filter matched on the last evaluated candle, to fire on rising edges only.
import { type Interval, intervalMs } from '../domain.ts';

interface EdgeState {
  openTime: number;
  matched: boolean;
}

export type EdgeVerdict = 'rising' | 'continuing' | 'unknown';

/**
 * One signal per episode: a match on candle T is an edge only when the same filter did not match on
 * the symbol's previous closed candle T-1. When the tracker has no verdict for T-1 (boot, a changed
 * trader, a gap, a skipped tick), the caller primes it by evaluating T-1 and calling `record` first.
 */
export class RisingEdges {
  private readonly states = new Map<string, EdgeState>();

  private static key(traderId: string, symbol: string): string {
    return `${traderId}\u0000${symbol}`;
  }

  /** Record the outcome of evaluating `traderId` on `symbol` at candle `openTime`. */
  record(traderId: string, symbol: string, openTime: number, matched: boolean): void {
    const key = RisingEdges.key(traderId, symbol);
    const previous = this.states.get(key);
    // A late follow-up for an older candle must not overwrite a newer verdict.
    if (previous !== undefined && previous.openTime > openTime) return;
    this.states.set(key, { openTime, matched });
  }

  /** Forget a verdict that can no longer be trusted (an evaluation error). */
  forget(traderId: string, symbol: string): void {
    this.states.delete(RisingEdges.key(traderId, symbol));
  }

  /** Forget everything about a trader: removed, or its filter changed. */
  forgetTrader(traderId: string): void {
    const prefix = `${traderId}\u0000`;
    for (const key of this.states.keys()) if (key.startsWith(prefix)) this.states.delete(key);
  }

  /** Whether a match at `openTime` is a rising edge, judged from the verdict at the previous candle. */
  verdict(traderId: string, symbol: string, interval: Interval, openTime: number): EdgeVerdict {
    const previous = this.states.get(RisingEdges.key(traderId, symbol));
    if (previous === undefined || previous.openTime !== openTime - intervalMs(interval)) {
      // Already judged this very candle (a repeated evaluation): a repeat is not a new edge.
      if (previous !== undefined && previous.openTime === openTime && previous.matched) return 'continuing';
      return 'unknown';
    }
    return previous.matched ? 'continuing' : 'rising';
  }

  get size(): number {
    return this.states.size;
  }
}
