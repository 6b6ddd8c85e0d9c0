// The simulator's instruments: which symbols exist, their status, and the parameters of their price walk.
import { hashString, mix, uniform } from './random.ts';

export interface SymbolSpec {
  symbol: string;
  baseAsset: string;
  quoteAsset: string;
  /** Binance's symbol status: TRADING, BREAK, HALT, END_OF_DAY, CANCEL_ONLY, ... */
  status: string;
  /** Stable 32-bit key mixing the seed and the symbol: the address of every draw for this symbol. */
  key: number;
  /** Level the walk reverts to. */
  basePrice: number;
  /** Standard deviation of the log return over one minute. */
  sigma1m: number;
  /** Typical 24 h volume in the quote asset; sets the ranking of the default universe. */
  dailyQuoteVolume: number;
  /** Average size of one trade in the quote asset; turns volume into a trade count. */
  averageTradeQuote: number;
  tickSize: number;
  /** Volume unit: volumes are whole multiples of it, so splitting a candle's volume is exact. */
  stepSize: number;
}

/** Well-known pairs first, so tests read naturally; prices and volatility roughly as on Binance. */
const KNOWN: Record<string, { price: number; sigma: number }> = {
  BTC: { price: 65_000, sigma: 0.0007 },
  ETH: { price: 3_200, sigma: 0.0009 },
  BNB: { price: 580, sigma: 0.0009 },
  SOL: { price: 150, sigma: 0.0013 },
  XRP: { price: 0.55, sigma: 0.0012 },
  DOGE: { price: 0.15, sigma: 0.0016 },
  ADA: { price: 0.45, sigma: 0.0014 },
  TRX: { price: 0.12, sigma: 0.001 },
  AVAX: { price: 30, sigma: 0.0016 },
  LINK: { price: 15, sigma: 0.0015 },
};

const QUOTE_ASSETS = ['USDT', 'FDUSD', 'USDC', 'BTC', 'ETH', 'BNB'];
const TOP_DAILY_QUOTE_VOLUME = 2e9;
/** Adjacent ranks differ by 7 %: more than a day's volume noise, so the ranking is stable. */
const VOLUME_DECAY = 0.93;

/** Extra symbols in the default catalogue: other quote assets and statuses a client must filter out. */
const DEFAULT_EXTRAS: Array<{ symbol: string; status: string; rank: number }> = [
  { symbol: 'ETHBTC', status: 'TRADING', rank: 1 },
  { symbol: 'BNBBTC', status: 'TRADING', rank: 4 },
  { symbol: 'BTCFDUSD', status: 'TRADING', rank: 0 },
  { symbol: 'SIMBRKUSDT', status: 'BREAK', rank: 2 },
  { symbol: 'SIMHLTUSDT', status: 'HALT', rank: 3 },
  { symbol: 'SIMEODUSDT', status: 'END_OF_DAY', rank: 5 },
  { symbol: 'SIMCXLUSDT', status: 'CANCEL_ONLY', rank: 6 },
];

export function splitSymbol(symbol: string): { baseAsset: string; quoteAsset: string } {
  for (const quote of QUOTE_ASSETS) {
    if (symbol.length > quote.length && symbol.endsWith(quote)) {
      return { baseAsset: symbol.slice(0, -quote.length), quoteAsset: quote };
    }
  }
  return { baseAsset: symbol.slice(0, -3), quoteAsset: symbol.slice(-3) };
}

function powerOfTen(value: number, min: number, max: number): number {
  const exponent = Math.round(Math.log10(value));
  return Math.min(max, Math.max(min, Number(`1e${exponent}`)));
}

/** Build the spec of one symbol; `rank` orders the volumes (0 = most traded). */
export function specFor(symbol: string, seed: number, rank: number, status = 'TRADING'): SymbolSpec {
  const { baseAsset, quoteAsset } = splitSymbol(symbol);
  const key = mix(hashString(symbol) ^ mix(seed >>> 0));
  const known = KNOWN[baseAsset];
  let basePrice = known ? known.price : 10 ** (-3 + 6 * uniform(key, 1, 0));
  // A pair quoted in BTC or ETH trades at the ratio of the two USD prices.
  const quoteKnown = quoteAsset === 'BTC' || quoteAsset === 'ETH' ? KNOWN[quoteAsset] : undefined;
  if (quoteKnown) basePrice = basePrice / quoteKnown.price;
  const sigma1m = known ? known.sigma : 0.0012 + 0.002 * uniform(key, 2, 0);
  const quoteScale = quoteKnown ? 1 / quoteKnown.price : 1;
  const dailyQuoteVolume = TOP_DAILY_QUOTE_VOLUME * VOLUME_DECAY ** rank * quoteScale;
  const tickSize = Math.max(1e-8, Number(`1e${Math.floor(Math.log10(basePrice)) - 6}`));
  // About 1e12 volume units per week: exact integer splits, and enough resolution for 2 s slices.
  const stepSize = powerOfTen((dailyQuoteVolume * 7) / basePrice / 1e12, 1e-8, 1000);
  return {
    symbol,
    baseAsset,
    quoteAsset,
    status,
    key,
    basePrice,
    sigma1m,
    dailyQuoteVolume,
    averageTradeQuote: 300 * quoteScale,
    tickSize,
    stepSize,
  };
}

/** `count` TRADING USDT pairs: the known ones, then SIM001USDT, SIM002USDT, ... */
export function defaultUsdtSymbols(count: number): string[] {
  const known = Object.keys(KNOWN).map((base) => `${base}USDT`);
  const symbols = known.slice(0, count);
  for (let i = 1; symbols.length < count; i++) symbols.push(`SIM${String(i).padStart(3, '0')}USDT`);
  return symbols;
}

/**
 * The initial catalogue. A number gives that many TRADING USDT pairs plus a few other quote assets and
 * non-TRADING statuses; a list gives exactly those symbols, all TRADING, ranked by list order.
 */
export function buildCatalog(symbols: number | string[], seed: number): SymbolSpec[] {
  if (Array.isArray(symbols)) return symbols.map((symbol, rank) => specFor(symbol.toUpperCase(), seed, rank));
  const specs = defaultUsdtSymbols(symbols).map((symbol, rank) => specFor(symbol, seed, rank));
  for (const extra of DEFAULT_EXTRAS) specs.push(specFor(extra.symbol, seed, extra.rank + 0.5, extra.status));
  return specs;
}
