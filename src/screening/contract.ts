// The filter contract's inputs: the domain Ticker and Candle shown to filters as Binance's stream shapes.
import type { Candle, Ticker } from '../domain.ts';

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
