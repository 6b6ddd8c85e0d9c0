// A MarketView as it looked just before a cutoff: hides every candle that closed at or after it, shows the ticker as of that close.
import type { Candle, CandleOrigin, Interval, Ticker } from '../domain.ts';
import type { CandleSeriesView, MarketView, SharedCandleRows, TickerHistory } from '../ports.ts';

/**
 * A series view that ends before `cutoff`. Used to re-evaluate the previous candle (priming the
 * rising-edge state after a restart, a trader change or a gap) on exactly the data a tick at that
 * candle would have seen.
 */
class TruncatedSeriesView implements CandleSeriesView {
  readonly symbol: string;
  readonly interval: Interval;
  readonly length: number;
  // Negative and derived from the source: never equal to a live series' version, so a consumer
  // that syncs by version cannot mistake the truncated series for the live one.
  readonly version: number;
  private readonly source: CandleSeriesView;
  private readonly cutoff: number;

  constructor(source: CandleSeriesView, cutoff: number) {
    this.source = source;
    this.cutoff = cutoff;
    this.symbol = source.symbol;
    this.interval = source.interval;
    let length = source.length;
    while (length > 0 && source.get(length - 1).closeTime >= cutoff) length -= 1;
    this.length = length;
    this.version = -(source.version * 1_000_003 + (source.length - length) + 1);
  }

  get(i: number): Candle {
    if (i < 0 || i >= this.length) throw new RangeError(`index ${i} outside 0..${this.length - 1}`);
    return this.source.get(i);
  }

  since(openTime: number): Candle[] {
    const candles: Candle[] = [];
    for (let i = this.length - 1; i >= 0; i -= 1) {
      const candle = this.source.get(i);
      if (candle.openTime <= openTime) break;
      candles.push(candle);
    }
    return candles.reverse();
  }

  lastClosed(): Candle | undefined {
    return this.length > 0 ? this.source.get(this.length - 1) : undefined;
  }

  originOf(openTime: number): CandleOrigin | undefined {
    const last = this.lastClosed();
    if (last === undefined || openTime > last.openTime) return undefined;
    return this.source.originOf(openTime);
  }

  /**
   * The source's rows up to the cutoff, judged now: candles may have closed (and the oldest been
   * dropped) since this view was made, which moves where the visible rows start.
   */
  sharedRows(): SharedCandleRows | undefined {
    const rows = this.source.sharedRows?.();
    if (rows === undefined) return undefined;
    let length = rows.length;
    while (length > 0 && this.source.get(length - 1).closeTime >= this.cutoff) length -= 1;
    return { ...rows, length };
  }
}

export class TruncatedMarketView implements MarketView {
  private readonly source: MarketView & Partial<TickerHistory>;
  private readonly cutoff: number;

  /**
   * `cutoff`: the first millisecond hidden; a candle is visible only when its closeTime < cutoff. The cutoff is a
   * candle boundary, and the ticker shown is the source's snapshot at that boundary (none without a ticker history).
   */
  constructor(source: MarketView & Partial<TickerHistory>, cutoff: number) {
    this.source = source;
    this.cutoff = cutoff;
  }

  symbols(): string[] {
    return this.source.symbols();
  }

  series(symbol: string, interval: Interval): CandleSeriesView | undefined {
    const series = this.source.series(symbol, interval);
    return series === undefined ? undefined : new TruncatedSeriesView(series, this.cutoff);
  }

  /**
   * The ticker as of the close at the cutoff, never the live one: a later ticker would make the verdict depend on
   * when the tick ran. Undefined when no snapshot proves it (the close came by REST, or before a restart): filters
   * then see the contract's minimal ticker, whose `c` is the candle's close, and provenance records no ticker.
   */
  ticker(symbol: string): Ticker | undefined {
    return this.source.tickerAt?.(symbol, this.cutoff);
  }
}
