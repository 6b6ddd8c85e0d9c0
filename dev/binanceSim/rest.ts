// The simulator's REST side: Binance spot market-data endpoints with their weights, errors and faults.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../src/clock.ts';
import { candleOpenTimeAt, intervalMs, isInterval, type Candle } from '../../src/domain.ts';
import type { Logger } from '../../src/logger.ts';
import type { SymbolSpec } from './catalog.ts';
import type { FaultState } from './faults.ts';
import { WEIGHT_LIMIT_PER_MINUTE, type LimitRecorder } from './limits.ts';
import type { MarketModel } from './market.ts';
import { decimal, klineRow, restError, ticker24hr } from './wire.ts';

const SYMBOL_PATTERN = /^[A-Z0-9-_.]{1,20}$/;
const NUMBER_PATTERN = /^-?[0-9]{1,20}$/;

class RequestError extends Error {
  readonly status: number;
  readonly code: number;
  constructor(status: number, code: number, msg: string) {
    super(msg);
    this.status = status;
    this.code = code;
  }
}

const mandatory = (name: string) => new RequestError(400, -1102, `Mandatory parameter '${name}' was not sent, was empty/null, or malformed.`);
const illegal = (name: string, range: string) => new RequestError(400, -1100, `Illegal characters found in parameter '${name}'; legal range is '${range}'.`);
const invalidSymbol = () => new RequestError(400, -1121, 'Invalid symbol.');

export interface RestDeps {
  clock: Clock;
  market: MarketModel;
  limits: LimitRecorder;
  faults: FaultState;
  logger: Logger;
}

export class RestHandler {
  requests = 0;
  private readonly deps: RestDeps;
  /** Requests held open by a 'hang' fault; destroyed on stop. */
  private readonly hanging = new Set<ServerResponse>();

  constructor(deps: RestDeps) {
    this.deps = deps;
  }

  handle(request: IncomingMessage, response: ServerResponse): void {
    this.requests++;
    void this.respond(request, response).catch((error: unknown) => {
      this.deps.logger.warn({ event: 'sim_rest_error', err: error }, 'simulator REST handler failed');
      if (!response.headersSent) this.send(response, 500, restError(-1000, 'An unknown error occured while processing the request.'), 0);
      else response.destroy();
    });
  }

  /** Drop every request a 'hang' fault is holding. */
  releaseHanging(): void {
    for (const response of this.hanging) response.destroy();
    this.hanging.clear();
  }

  private async respond(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const { clock, faults, limits } = this.deps;
    if (faults.restLatencyMs > 0) {
      faults.count('restLatency');
      await clock.sleep(faults.restLatencyMs);
    }
    const failure = faults.takeRestFailure();
    if (failure === 'hang') {
      this.hanging.add(response);
      response.on('close', () => this.hanging.delete(response));
      return;
    }
    if (failure === 500) return this.send(response, 500, restError(-1001, 'Internal error; unable to process your request. Please try again.'), limits.usedWeight());
    if (failure !== null) return this.send(response, failure, `<html><body><h1>${failure}</h1></body></html>`, undefined, 'text/html');

    const url = new URL(request.url ?? '/', 'http://simulator');
    if (url.pathname === '/api/v3/klines' && faults.klinesFail(url.searchParams.get('interval'))) {
      return this.send(response, 503, restError(-1001, 'Internal error; unable to process your request. Please try again.'), limits.usedWeight());
    }
    const route = ROUTES[url.pathname];
    if (!route || request.method !== 'GET') return this.send(response, 404, '', undefined, 'text/plain');
    const weight = route.weight(url.searchParams);
    const verdict = limits.admit(weight, url.pathname);
    if (verdict.kind !== 'ok') {
      const status = verdict.kind === 'banned' ? 418 : 429;
      return this.send(response, status, restError(-1003, verdict.msg), verdict.usedWeight, 'application/json', verdict.retryAfterSec);
    }
    try {
      const body = route.handle(this.deps, url.searchParams);
      this.send(response, 200, JSON.stringify(body), verdict.usedWeight);
    } catch (error) {
      if (!(error instanceof RequestError)) throw error;
      this.send(response, error.status, restError(error.code, error.message), verdict.usedWeight);
    }
  }

  private send(response: ServerResponse, status: number, body: string, usedWeight: number | undefined, type = 'application/json', retryAfterSec?: number): void {
    const headers: Record<string, string> = { 'content-type': `${type};charset=UTF-8` };
    if (usedWeight !== undefined) {
      headers['x-mbx-used-weight'] = String(usedWeight);
      headers['x-mbx-used-weight-1m'] = String(usedWeight);
    }
    if (retryAfterSec !== undefined) headers['retry-after'] = String(retryAfterSec);
    response.writeHead(status, headers);
    response.end(body);
  }
}

interface Route {
  weight(params: URLSearchParams): number;
  handle(deps: RestDeps, params: URLSearchParams): unknown;
}

/** Weights from https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints */
const ROUTES: Record<string, Route> = {
  '/api/v3/ping': { weight: () => 1, handle: () => ({}) },
  '/api/v3/time': { weight: () => 1, handle: (deps) => ({ serverTime: deps.clock.now() }) },
  '/api/v3/exchangeInfo': { weight: () => 20, handle: exchangeInfo },
  '/api/v3/klines': { weight: () => 2, handle: klines },
  '/api/v3/ticker/24hr': { weight: tickerWeight, handle: tickers },
};

function tickerWeight(params: URLSearchParams): number {
  if (params.has('symbol')) return 2;
  const symbols = params.get('symbols');
  if (symbols === null) return 80;
  const count = symbols.split(',').length;
  return count <= 20 ? 2 : count <= 100 ? 40 : 80;
}

/** `symbol` or `symbols` (a JSON array) as Binance takes them; undefined means every symbol. */
function selectSymbols(deps: RestDeps, params: URLSearchParams): string[] | undefined {
  const single = params.get('symbol');
  const list = params.get('symbols');
  if (single !== null && list !== null) throw new RequestError(400, -1128, 'Combination of optional parameters invalid.');
  if (single !== null) {
    if (!SYMBOL_PATTERN.test(single)) throw illegal('symbol', '^[A-Z0-9-_.]{1,20}$');
    if (!deps.market.has(single)) throw invalidSymbol();
    return [single];
  }
  if (list === null) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(list);
  } catch {
    throw illegal('symbols', '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$');
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((s) => typeof s === 'string' && SYMBOL_PATTERN.test(s))) {
    throw illegal('symbols', '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$');
  }
  for (const symbol of parsed as string[]) if (!deps.market.has(symbol)) throw invalidSymbol();
  return [...new Set(parsed as string[])];
}

function symbolInfo(spec: SymbolSpec): object {
  return {
    symbol: spec.symbol,
    status: spec.status,
    baseAsset: spec.baseAsset,
    baseAssetPrecision: 8,
    quoteAsset: spec.quoteAsset,
    quotePrecision: 8,
    quoteAssetPrecision: 8,
    baseCommissionPrecision: 8,
    quoteCommissionPrecision: 8,
    orderTypes: ['LIMIT', 'LIMIT_MAKER', 'MARKET', 'STOP_LOSS_LIMIT', 'TAKE_PROFIT_LIMIT'],
    icebergAllowed: true,
    ocoAllowed: true,
    otoAllowed: true,
    quoteOrderQtyMarketAllowed: true,
    allowTrailingStop: true,
    cancelReplaceAllowed: true,
    isSpotTradingAllowed: spec.status === 'TRADING',
    isMarginTradingAllowed: false,
    filters: [
      { filterType: 'PRICE_FILTER', minPrice: decimal(spec.tickSize), maxPrice: '1000000.00000000', tickSize: decimal(spec.tickSize) },
      { filterType: 'LOT_SIZE', minQty: decimal(spec.stepSize), maxQty: '9000000000.00000000', stepSize: decimal(spec.stepSize) },
      { filterType: 'NOTIONAL', minNotional: '5.00000000', applyMinToMarket: true, maxNotional: '9000000.00000000', applyMaxToMarket: false, avgPriceMins: 5 },
    ],
    permissions: [],
    permissionSets: [['SPOT']],
    defaultSelfTradePreventionMode: 'EXPIRE_MAKER',
    allowedSelfTradePreventionModes: ['EXPIRE_TAKER', 'EXPIRE_MAKER', 'EXPIRE_BOTH'],
  };
}

function exchangeInfo(deps: RestDeps, params: URLSearchParams): object {
  const selected = selectSymbols(deps, params);
  const specs = selected ? selected.map((symbol) => deps.market.spec(symbol)!) : deps.market.specs();
  return {
    timezone: 'UTC',
    serverTime: deps.clock.now(),
    rateLimits: [
      { rateLimitType: 'REQUEST_WEIGHT', interval: 'MINUTE', intervalNum: 1, limit: WEIGHT_LIMIT_PER_MINUTE },
      { rateLimitType: 'ORDERS', interval: 'SECOND', intervalNum: 10, limit: 100 },
      { rateLimitType: 'ORDERS', interval: 'DAY', intervalNum: 1, limit: 200000 },
      { rateLimitType: 'RAW_REQUESTS', interval: 'MINUTE', intervalNum: 5, limit: 61000 },
    ],
    exchangeFilters: [],
    symbols: specs.map(symbolInfo),
  };
}

function tickers(deps: RestDeps, params: URLSearchParams): unknown {
  const now = deps.clock.now();
  const single = params.get('symbol');
  const selected = selectSymbols(deps, params) ?? deps.market.specs().map((spec) => spec.symbol);
  const rows = selected.map((symbol) => ticker24hr(deps.market.ticker(symbol, now)));
  return single !== null ? rows[0] : rows;
}

function integerParam(params: URLSearchParams, name: string): number | undefined {
  const raw = params.get(name);
  if (raw === null) return undefined;
  if (!NUMBER_PATTERN.test(raw)) throw illegal(name, '^[0-9]{1,20}$');
  return Number(raw);
}

/**
 * Binance selects klines by open time within [startTime, endTime]; without startTime it returns the
 * latest `limit` up to endTime (or now). The candle forming now is included, with its values so far.
 */
function klines(deps: RestDeps, params: URLSearchParams): unknown[] {
  const symbol = params.get('symbol');
  if (!symbol) throw mandatory('symbol');
  if (!SYMBOL_PATTERN.test(symbol)) throw illegal('symbol', '^[A-Z0-9-_.]{1,20}$');
  const interval = params.get('interval');
  if (!interval) throw mandatory('interval');
  if (!isInterval(interval)) throw new RequestError(400, -1120, 'Invalid interval.');
  if (!deps.market.has(symbol)) throw invalidSymbol();
  const startTime = integerParam(params, 'startTime');
  const endTime = integerParam(params, 'endTime');
  const requested = integerParam(params, 'limit') ?? 500;
  if (requested < 1) throw new RequestError(400, -1130, "Data sent for parameter 'limit' is not valid.");
  const limit = Math.min(requested, 1000);
  if (startTime !== undefined && endTime !== undefined && startTime > endTime) {
    throw new RequestError(400, -1023, 'Start time is greater than end time.');
  }
  const now = deps.clock.now();
  const length = intervalMs(interval);
  const formingOpen = candleOpenTimeAt(interval, now);
  const last = Math.min(formingOpen, endTime !== undefined ? candleOpenTimeAt(interval, endTime) : formingOpen);
  let first: number;
  if (startTime !== undefined) {
    const aligned = candleOpenTimeAt(interval, startTime);
    first = aligned < startTime ? aligned + length : aligned;
  } else {
    first = last - (limit - 1) * length;
  }
  const rows: unknown[] = [];
  for (let open = first; open <= last && rows.length < limit; open += length) {
    const candle: Candle = open === formingOpen ? deps.market.forming(symbol, interval, open, now) : deps.market.candle(symbol, interval, open);
    rows.push(klineRow(candle));
  }
  return rows;
}
