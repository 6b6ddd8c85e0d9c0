// Binance wire shapes (spot REST and WebSocket streams); they never leave src/market/.

/**
 * Kline stream payload, `<symbol>@kline_<interval>`.
 * https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#klinecandlestick-streams-for-utc
 */
export interface BinanceKlinePayload {
  e: 'kline';
  E: number;
  s: string;
  k: {
    t: number;
    T: number;
    s: string;
    i: string;
    f: number;
    L: number;
    o: string;
    c: string;
    h: string;
    l: string;
    v: string;
    n: number;
    x: boolean;
    q: string;
    V: string;
    Q: string;
    B: string;
  };
}

/**
 * Individual symbol ticker stream payload, `<symbol>@ticker`.
 * https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#individual-symbol-ticker-streams
 */
export interface BinanceTickerPayload {
  e: '24hrTicker';
  E: number;
  s: string;
  p: string;
  P: string;
  w: string;
  x: string;
  c: string;
  Q: string;
  b: string;
  B: string;
  a: string;
  A: string;
  o: string;
  h: string;
  l: string;
  v: string;
  q: string;
  O: number;
  C: number;
  F: number;
  L: number;
  n: number;
}

/** Combined stream envelope: `{"stream":"<streamName>","data":<rawPayload>}`. */
export interface BinanceCombinedEnvelope {
  stream: string;
  data: unknown;
}

/** Reply to a SUBSCRIBE / UNSUBSCRIBE control message. */
export interface BinanceControlReply {
  result: unknown;
  id: number;
}

/**
 * REST `GET /api/v3/klines` row: 12 positional fields, prices as strings.
 * https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#klinecandlestick-data
 */
export type BinanceKlineRow = [
  number,
  string,
  string,
  string,
  string,
  string,
  number,
  string,
  number,
  string,
  string,
  string,
];

/** One symbol of `GET /api/v3/exchangeInfo`; only the fields we read. */
export interface BinanceExchangeSymbol {
  symbol: string;
  status: string;
  baseAsset: string;
  quoteAsset: string;
  isSpotTradingAllowed?: boolean;
  permissions?: string[];
  permissionSets?: string[][];
}

/** One row of `GET /api/v3/ticker/24hr` (FULL type). */
export interface BinanceTicker24hRow {
  symbol: string;
  priceChange: string;
  priceChangePercent: string;
  weightedAvgPrice: string;
  openPrice: string;
  highPrice: string;
  lowPrice: string;
  lastPrice: string;
  volume: string;
  quoteVolume: string;
  closeTime: number;
  count: number;
}
