// Closed candles for a look-back, read from the live worker's own store: no REST, what it holds now (KLINE_HISTORY per series).
import type { Candle, Interval } from '../domain.ts';
import type { MarketView, SharedCandleRows } from '../ports.ts';
import type { ClosedCandleSource } from './ReplayEngine.ts';
import { rowsOpenedBetween } from './ReplayMarket.ts';

export class StoreCandles implements ClosedCandleSource {
  private readonly market: Pick<MarketView, 'series'>;

  constructor(market: Pick<MarketView, 'series'>) {
    this.market = market;
  }

  /** The stored closed candles with an open time in [startTime, endTime), oldest first; a copy, so later closes change nothing. */
  async closedCandles(symbol: string, interval: Interval, startTime: number, endTime: number): Promise<Candle[]> {
    const series = this.market.series(symbol, interval);
    if (series === undefined) return [];
    return series.since(startTime - 1).filter((candle) => candle.openTime < endTime);
  }

  /**
   * The same candles where the store keeps them, without a copy: the store never rewrites a row it has handed out
   * (CandleSeriesView.sharedRows), so later closes change nothing here either. Undefined when the store has no such
   * series or keeps it elsewhere (closedCandles then serves).
   */
  async closedRows(symbol: string, interval: Interval, startTime: number, endTime: number): Promise<SharedCandleRows | undefined> {
    const rows = this.market.series(symbol, interval)?.sharedRows?.();
    return rows === undefined ? undefined : rowsOpenedBetween(rows, startTime, endTime);
  }
}
