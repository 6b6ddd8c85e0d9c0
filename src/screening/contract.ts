// The filter contract's inputs: the domain Ticker and Candle shown to filters as Binance's stream shapes.
import type { Candle, Interval, Ticker, TraderFilter } from '../domain.ts';

/**
 * Binance's 24hr ticker stream fields (`<symbol>@ticker`) as strings, the way the browser's filters
 * read them (`parseFloat(ticker.c)`). Without a ticker yet, `c` falls back to the last close.
 * https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#individual-symbol-ticker-streams
 */
export function tickerFields(symbol: string, ticker: Ticker | undefined, lastClose: number | undefined): Record<string, string> {
  if (!ticker) return { e: '24hrTicker', s: symbol, c: lastClose === undefined ? '0' : String(lastClose) };
  return {
    e: '24hrTicker',
    E: String(ticker.eventTime),
    s: ticker.symbol,
    p: String(ticker.priceChange),
    P: String(ticker.priceChangePercent),
    w: String(ticker.weightedAvgPrice),
    c: String(ticker.lastPrice),
    o: String(ticker.openPrice),
    h: String(ticker.highPrice),
    l: String(ticker.lowPrice),
    v: String(ticker.volume),
    q: String(ticker.quoteVolume),
    n: String(ticker.tradeCount),
  };
}

/** A candle as the filter sees it: Binance's 12-field kline with numeric values (`ignore` is 0). */
export function candleToKline(c: Candle): number[] {
  return [c.openTime, c.open, c.high, c.low, c.close, c.volume, c.closeTime, c.quoteVolume, c.trades, c.takerBuyBaseVolume, c.takerBuyQuoteVolume, 0];
}

/**
 * The timeframe the browser computes `hvnNodes` on: the trader's longest required one (`1d`, else
 * `4h`, else `1h`), else the first it requires; with none required, its refresh interval.
 */
export function hvnInterval(filter: Pick<TraderFilter, 'requiredTimeframes' | 'refreshInterval'>): Interval {
  for (const longest of ['1d', '4h', '1h'] as const) if (filter.requiredTimeframes.includes(longest)) return longest;
  return filter.requiredTimeframes[0] ?? filter.refreshInterval;
}

/** The browser's `hvnNodes` lookback: the last min(length, 100) candles of that timeframe. */
export const HVN_LOOKBACK = 100;
