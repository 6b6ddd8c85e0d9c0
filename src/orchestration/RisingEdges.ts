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
  /**
   * Per trader, per symbol, updated in place: a tick records every (trader, symbol) pair it screened (4,000 at 20 traders
   * × 200 symbols) on the path from the last close to the commit, so no key string or state object is made per pair.
   */
  private readonly states = new Map<string, Map<string, EdgeState>>();
  private count = 0;
  /** Per trader, how many times it was forgotten: a tick that screened an earlier version sees it move (see version). */
  private readonly versions = new Map<string, number>();

  /** Record the outcome of evaluating `traderId` on `symbol` at candle `openTime`. */
  record(traderId: string, symbol: string, openTime: number, matched: boolean): void {
    let symbols = this.states.get(traderId);
    if (symbols === undefined) {
      symbols = new Map();
      this.states.set(traderId, symbols);
    }
    const previous = symbols.get(symbol);
    if (previous === undefined) {
      symbols.set(symbol, { openTime, matched });
      this.count += 1;
      return;
    }
    // A late follow-up for an older candle must not overwrite a newer verdict.
    if (previous.openTime > openTime) return;
    previous.openTime = openTime;
    previous.matched = matched;
  }

  /** Forget a verdict that can no longer be trusted (an evaluation error). */
  forget(traderId: string, symbol: string): void {
    const symbols = this.states.get(traderId);
    if (symbols?.delete(symbol) === true) this.count -= 1;
  }

  /** Forget everything about a trader: removed, or its filter changed. */
  forgetTrader(traderId: string): void {
    this.versions.set(traderId, this.version(traderId) + 1);
    const symbols = this.states.get(traderId);
    if (symbols === undefined) return;
    this.count -= symbols.size;
    this.states.delete(traderId);
  }

  /**
   * Moves each time the trader is forgotten. A tick awaits its screening, priming and insert, and a
   * trader row can change meanwhile: a tick that sees it moved must neither judge that trader's
   * matches against the new version's (empty) state nor record its earlier version's verdicts there.
   */
  version(traderId: string): number {
    return this.versions.get(traderId) ?? 0;
  }

  /** Whether a match at `openTime` is a rising edge, judged from the verdict at the previous candle. */
  verdict(traderId: string, symbol: string, interval: Interval, openTime: number): EdgeVerdict {
    const previous = this.states.get(traderId)?.get(symbol);
    if (previous === undefined || previous.openTime !== openTime - intervalMs(interval)) {
      // Already judged this very candle (a repeated evaluation): a repeat is not a new edge.
      if (previous !== undefined && previous.openTime === openTime && previous.matched) return 'continuing';
      return 'unknown';
    }
    return previous.matched ? 'continuing' : 'rising';
  }

  get size(): number {
    return this.count;
  }
}
