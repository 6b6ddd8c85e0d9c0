// Binance's wire shapes for what the simulator sends: kline rows and events, 24 h tickers, control replies.
import type { Candle, Interval } from '../../src/domain.ts';
import type { TickerStats } from './market.ts';

/** Binance prints prices and quantities as strings with 8 decimals. */
export function decimal(value: number): string {
  return value.toFixed(8);
}

/** One row of GET /api/v3/klines: 12 fields, prices and volumes as strings, the last one unused ("0"). */
export function klineRow(candle: Candle): [number, string, string, string, string, string, number, string, number, string, string, string] {
  return [
    candle.openTime,
    decimal(candle.open),
    decimal(candle.high),
    decimal(candle.low),
    decimal(candle.close),
    decimal(candle.volume),
    candle.closeTime,
    decimal(candle.quoteVolume),
    candle.trades,
    decimal(candle.takerBuyBaseVolume),
    decimal(candle.takerBuyQuoteVolume),
    '0',
  ];
}

/** `<symbol>@kline_<interval>` payload, https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#klinecandlestick-streams-for-utc */
export function klineEvent(symbol: string, interval: Interval, candle: Candle, closed: boolean, eventTime: number): object {
  return {
    e: 'kline',
    E: eventTime,
    s: symbol,
    k: {
      t: candle.openTime,
      T: candle.closeTime,
      s: symbol,
      i: interval,
      // Trade ids: the candle's open time stands in for its first trade id, so ids grow and never repeat.
      f: candle.openTime,
      L: candle.openTime + candle.trades - 1,
      o: decimal(candle.open),
      c: decimal(candle.close),
      h: decimal(candle.high),
      l: decimal(candle.low),
      v: decimal(candle.volume),
      n: candle.trades,
      x: closed,
      q: decimal(candle.quoteVolume),
      V: decimal(candle.takerBuyBaseVolume),
      Q: decimal(candle.takerBuyQuoteVolume),
      B: '0',
    },
  };
}

function change(stats: TickerStats): { change: number; percent: string; weighted: number; bid: number; ask: number } {
  const delta = stats.close - stats.open;
  return {
    change: delta,
    percent: stats.open > 0 ? ((delta / stats.open) * 100).toFixed(3) : '0.000',
    weighted: stats.volume > 0 ? stats.quoteVolume / stats.volume : stats.close,
    bid: Math.max(stats.tickSize, stats.close - stats.tickSize),
    ask: stats.close + stats.tickSize,
  };
}

/** `<symbol>@ticker` payload, https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#individual-symbol-ticker-streams */
export function tickerEvent(stats: TickerStats): object {
  const derived = change(stats);
  return {
    e: '24hrTicker',
    E: stats.eventTime,
    s: stats.symbol,
    p: decimal(derived.change),
    P: derived.percent,
    w: decimal(derived.weighted),
    x: decimal(stats.open),
    c: decimal(stats.close),
    Q: decimal(stats.stepSize * 1000),
    b: decimal(derived.bid),
    B: decimal(stats.stepSize * 5000),
    a: decimal(derived.ask),
    A: decimal(stats.stepSize * 7000),
    o: decimal(stats.open),
    h: decimal(stats.high),
    l: decimal(stats.low),
    v: decimal(stats.volume),
    q: decimal(stats.quoteVolume),
    O: stats.openTime,
    C: stats.closeTime,
    F: stats.firstId,
    L: stats.lastId,
    n: stats.trades,
  };
}

/** One element of GET /api/v3/ticker/24hr (type FULL). */
export function ticker24hr(stats: TickerStats): object {
  const derived = change(stats);
  return {
    symbol: stats.symbol,
    priceChange: decimal(derived.change),
    priceChangePercent: derived.percent,
    weightedAvgPrice: decimal(derived.weighted),
    prevClosePrice: decimal(stats.open),
    lastPrice: decimal(stats.close),
    lastQty: decimal(stats.stepSize * 1000),
    bidPrice: decimal(derived.bid),
    bidQty: decimal(stats.stepSize * 5000),
    askPrice: decimal(derived.ask),
    askQty: decimal(stats.stepSize * 7000),
    openPrice: decimal(stats.open),
    highPrice: decimal(stats.high),
    lowPrice: decimal(stats.low),
    volume: decimal(stats.volume),
    quoteVolume: decimal(stats.quoteVolume),
    openTime: stats.openTime,
    closeTime: stats.closeTime,
    firstId: stats.firstId,
    lastId: stats.lastId,
    count: stats.trades,
  };
}

/** Binance's REST error body. */
export function restError(code: number, msg: string): string {
  return JSON.stringify({ code, msg });
}

/** Binance's stream control error reply: `{"error":{"code":2,"msg":"Invalid request: ..."},"id":1}`. */
export function controlError(code: number, msg: string, id: unknown): string {
  return JSON.stringify({ error: { code, msg }, id: id ?? null });
}
