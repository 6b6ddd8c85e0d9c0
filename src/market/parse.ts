// Pure translation of Binance wire payloads into domain types; every failure is a ProtocolError naming the field and value.
import { z } from 'zod';
import { isInterval, type Candle, type Interval, type Ticker } from '../domain.ts';
import { ProtocolError } from '../errors.ts';
import type { BinanceExchangeSymbol } from './messages.ts';

/** A symbol as the exchange lists it, reduced to what the universe needs. */
export interface SymbolInfo {
  symbol: string;
  status: string;
  baseAsset: string;
  quoteAsset: string;
  spotTrading: boolean;
}

export interface KlineUpdate {
  symbol: string;
  interval: Interval;
  candle: Candle;
  closed: boolean;
  eventTime: number;
}

/** One decoded stream frame. Unknown events are reported, not thrown: Binance adds events over time. */
export type DecodedFrame =
  | { kind: 'kline'; stream: string; kline: KlineUpdate }
  | { kind: 'ticker'; stream: string; ticker: Ticker }
  | { kind: 'control'; id: number; result: unknown; error?: unknown }
  | { kind: 'serverShutdown'; eventTime: number }
  | { kind: 'unknown'; stream: string; eventType: string };

const RAW_LIMIT = 80;

function describe(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > RAW_LIMIT ? `${text.slice(0, RAW_LIMIT)}…` : text;
}

function fail(field: string, value: unknown): never {
  throw new ProtocolError(`invalid ${field}: ${describe(value)}`);
}

// The hot path (about 2,000 frames/s for the whole USDT universe) uses hand-written checks: zod is
// an order of magnitude slower per object, which the ingest benchmark would show.
function decimal(value: unknown, field: string): number {
  if (typeof value !== 'string' && typeof value !== 'number') fail(field, value);
  const parsed = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(parsed) || (parsed === 0 && typeof value === 'string' && isBlank(value))) fail(field, value);
  return parsed;
}

/** Number('') and Number(' ') are 0: a blank numeral is a missing value, not a zero price. */
function isBlank(text: string): boolean {
  return !/[0-9]/.test(text);
}

/** A REST numeral (string or number) as a number; NaN when it is blank or not a finite numeral. */
function numeral(value: string | number): number {
  if (typeof value === 'number') return value;
  const parsed = Number(value);
  return parsed === 0 && isBlank(value) ? Number.NaN : parsed;
}

function integer(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) fail(field, value);
  return value;
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) fail(field, value);
  return value;
}

function record(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(field, value);
  return value as Record<string, unknown>;
}

/**
 * Payload of `<symbol>@kline_<interval>`.
 * https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#klinecandlestick-streams-for-utc
 */
function parseKlinePayload(payload: unknown): KlineUpdate {
  const data = record(payload, 'kline payload');
  const k = record(data.k, 'k');
  const interval = k.i;
  if (!isInterval(interval)) fail('k.i', interval);
  const closed = k.x;
  if (typeof closed !== 'boolean') fail('k.x', closed);
  return {
    symbol: text(k.s ?? data.s, 'k.s'),
    interval,
    closed,
    eventTime: integer(data.E, 'E'),
    candle: {
      openTime: integer(k.t, 'k.t'),
      open: decimal(k.o, 'k.o'),
      high: decimal(k.h, 'k.h'),
      low: decimal(k.l, 'k.l'),
      close: decimal(k.c, 'k.c'),
      volume: decimal(k.v, 'k.v'),
      closeTime: integer(k.T, 'k.T'),
      quoteVolume: decimal(k.q, 'k.q'),
      trades: integer(k.n, 'k.n'),
      takerBuyBaseVolume: decimal(k.V, 'k.V'),
      takerBuyQuoteVolume: decimal(k.Q, 'k.Q'),
    },
  };
}

/**
 * Payload of `<symbol>@ticker` (event `24hrTicker`).
 * https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#individual-symbol-ticker-streams
 */
function parseTickerPayload(payload: unknown): Ticker {
  const data = record(payload, 'ticker payload');
  return {
    symbol: text(data.s, 's'),
    eventTime: integer(data.E, 'E'),
    lastPrice: decimal(data.c, 'c'),
    priceChange: decimal(data.p, 'p'),
    priceChangePercent: decimal(data.P, 'P'),
    weightedAvgPrice: decimal(data.w, 'w'),
    openPrice: decimal(data.o, 'o'),
    highPrice: decimal(data.h, 'h'),
    lowPrice: decimal(data.l, 'l'),
    volume: decimal(data.v, 'v'),
    quoteVolume: decimal(data.q, 'q'),
    tradeCount: integer(data.n, 'n'),
  };
}

/**
 * One text frame of a combined-stream connection: an envelope `{stream, data}`, a control reply
 * `{result, id}`, or a bare event such as `serverShutdown`.
 * https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#general-wss-information
 */
export function decodeFrame(frame: string): DecodedFrame {
  let message: unknown;
  try {
    message = JSON.parse(frame);
  } catch (error) {
    throw new ProtocolError(`invalid frame JSON: ${describe(frame)}`, { cause: error });
  }
  const body = record(message, 'frame');
  if (typeof body.stream === 'string') {
    const data = record(body.data, 'data');
    const eventType = data.e;
    if (eventType === 'kline') return { kind: 'kline', stream: body.stream, kline: parseKlinePayload(data) };
    if (eventType === '24hrTicker') return { kind: 'ticker', stream: body.stream, ticker: parseTickerPayload(data) };
    if (eventType === 'serverShutdown') return { kind: 'serverShutdown', eventTime: Number(data.E) || 0 };
    return { kind: 'unknown', stream: body.stream, eventType: typeof eventType === 'string' ? eventType : describe(eventType) };
  }
  if ('id' in body && ('result' in body || 'error' in body)) {
    return { kind: 'control', id: Number(body.id), result: body.result, error: body.error };
  }
  if (body.e === 'serverShutdown') return { kind: 'serverShutdown', eventTime: Number(body.E) || 0 };
  if (typeof body.e === 'string') return { kind: 'unknown', stream: '', eventType: body.e };
  return fail('frame', message);
}

// ---- REST: low volume, so zod gives precise errors at no measurable cost ----

const numericString = z.union([z.string(), z.number()]);

const klineRowSchema = z
  .array(z.unknown())
  .min(11)
  .transform((row, ctx) => {
    try {
      return {
        openTime: integer(row[0], 'openTime'),
        open: decimal(row[1], 'open'),
        high: decimal(row[2], 'high'),
        low: decimal(row[3], 'low'),
        close: decimal(row[4], 'close'),
        volume: decimal(row[5], 'volume'),
        closeTime: integer(row[6], 'closeTime'),
        quoteVolume: decimal(row[7], 'quoteVolume'),
        trades: integer(row[8], 'trades'),
        takerBuyBaseVolume: decimal(row[9], 'takerBuyBaseVolume'),
        takerBuyQuoteVolume: decimal(row[10], 'takerBuyQuoteVolume'),
      } satisfies Candle;
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
      return z.NEVER;
    }
  });

/**
 * Body of `GET /api/v3/klines`: rows of 12 positional fields, prices as strings.
 * https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#klinecandlestick-data
 */
export function parseKlineRows(body: unknown): Candle[] {
  return parseWith(z.array(klineRowSchema), body, 'klines');
}

const exchangeSymbolSchema = z
  .object({
    symbol: z.string().min(1),
    // Any status string: Binance has added statuses before (e.g. END_OF_DAY), unknown ones are simply not TRADING.
    status: z.string().catch('UNKNOWN'),
    baseAsset: z.string().catch(''),
    quoteAsset: z.string().catch(''),
    isSpotTradingAllowed: z.boolean().optional().catch(undefined),
    permissions: z.array(z.string()).optional().catch(undefined),
    permissionSets: z.array(z.array(z.string())).optional().catch(undefined),
  })
  .loose();

/**
 * Body of `GET /api/v3/exchangeInfo`. Spot trading is read from `isSpotTradingAllowed`, else from
 * `permissionSets` (current) or `permissions` (older responses), which Binance moved between.
 * https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-endpoints#exchange-information
 */
export function parseExchangeInfo(body: unknown): SymbolInfo[] {
  const parsed = parseWith(z.object({ symbols: z.array(z.unknown()) }).loose(), body, 'exchangeInfo');
  const symbols: SymbolInfo[] = [];
  for (const raw of parsed.symbols) {
    const result = exchangeSymbolSchema.safeParse(raw);
    if (!result.success) continue; // One broken entry must not hide the rest of the exchange.
    symbols.push(toSymbolInfo(result.data));
  }
  return symbols;
}

function toSymbolInfo(entry: BinanceExchangeSymbol): SymbolInfo {
  let spotTrading: boolean;
  if (typeof entry.isSpotTradingAllowed === 'boolean') spotTrading = entry.isSpotTradingAllowed;
  else if (entry.permissionSets) spotTrading = entry.permissionSets.some((set) => set.includes('SPOT'));
  else if (entry.permissions) spotTrading = entry.permissions.includes('SPOT');
  else spotTrading = true;
  return { symbol: entry.symbol, status: entry.status, baseAsset: entry.baseAsset, quoteAsset: entry.quoteAsset, spotTrading };
}

const tickerRowSchema = z
  .object({
    symbol: z.string().min(1),
    priceChange: numericString,
    priceChangePercent: numericString,
    weightedAvgPrice: numericString,
    openPrice: numericString,
    highPrice: numericString,
    lowPrice: numericString,
    lastPrice: numericString,
    volume: numericString,
    quoteVolume: numericString,
    closeTime: z.number(),
    count: z.number(),
  })
  .loose();

const TICKER_NUMBERS = [
  'eventTime',
  'lastPrice',
  'priceChange',
  'priceChangePercent',
  'weightedAvgPrice',
  'openPrice',
  'highPrice',
  'lowPrice',
  'volume',
  'quoteVolume',
  'tradeCount',
] as const satisfies ReadonlyArray<keyof Ticker>;

/**
 * Body of `GET /api/v3/ticker/24hr` without a symbol: an array of every symbol's ticker.
 * https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#24hr-ticker-price-change-statistics
 */
export function parseTickers24h(body: unknown): Ticker[] {
  const rows = parseWith(z.array(z.unknown()), body, 'ticker/24hr');
  const tickers: Ticker[] = [];
  for (const raw of rows) {
    const result = tickerRowSchema.safeParse(raw);
    if (!result.success) continue;
    const row = result.data;
    const ticker: Ticker = {
      symbol: row.symbol,
      eventTime: row.closeTime,
      lastPrice: numeral(row.lastPrice),
      priceChange: numeral(row.priceChange),
      priceChangePercent: numeral(row.priceChangePercent),
      weightedAvgPrice: numeral(row.weightedAvgPrice),
      openPrice: numeral(row.openPrice),
      highPrice: numeral(row.highPrice),
      lowPrice: numeral(row.lowPrice),
      volume: numeral(row.volume),
      quoteVolume: numeral(row.quoteVolume),
      tradeCount: row.count,
    };
    // One garbled field would reach filters as NaN ("NaN" in ticker.P): the row is skipped like any other broken entry.
    if (!TICKER_NUMBERS.every((field) => Number.isFinite(ticker[field]))) continue;
    tickers.push(ticker);
  }
  return tickers;
}

function parseWith<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue?.path ?? [];
  let value: unknown = body;
  for (const key of path) value = (value as Record<PropertyKey, unknown> | undefined)?.[key as PropertyKey];
  const field = [what, ...path.map(String)].join('.');
  throw new ProtocolError(`invalid ${field}: ${issue?.message ?? 'unexpected shape'} (got ${describe(value)})`);
}
