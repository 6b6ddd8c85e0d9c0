// Binance wire shapes parse.ts reads as typed objects (the rest it checks field by field, citing their pages); they never leave src/market/.

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
