// Binance spot REST (exchangeInfo, ticker/24hr, klines) inside the IP weight budget, with rate-limit and ban handling.
import type { Clock } from '../clock.ts';
import type { Candle, Interval, Ticker } from '../domain.ts';
import { ProtocolError, TransientError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { backoffDelay } from '../backoff.ts';
import { parseExchangeInfo, parseKlineRows, parseTickers24h, type SymbolInfo } from './parse.ts';

export type { SymbolInfo } from './parse.ts';

export interface BinanceRestClientOptions {
  baseUrl: string;
  clock: Clock;
  logger: Logger;
  maxConcurrency?: number;
  weightLimitPerMinute?: number;
  timeoutMs?: number;
  maxRetries?: number;
  fetch?: typeof fetch;
}

export interface RestStats {
  requests: number;
  weightUsed: number;
  retries: number;
  rateLimited: number;
  banned: number;
  errors: number;
}

const MINUTE = 60_000;

/**
 * Request weights from https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints:
 * klines 2 whatever the limit, exchangeInfo 20, ticker/24hr without a symbol 80.
 */
const WEIGHT = { klines: 2, exchangeInfo: 20, tickers24h: 80 } as const;

/**
 * Requests in flight by default. Binance limits an IP by weight (6,000 a minute), not by open
 * requests, and the weight budget below paces every request whatever this is: a boot backfill of
 * 800 klines requests weighs 1,600. At 8 in flight that backfill waited out 100 round trips (5 s
 * at 50 ms); at 32, 25 round trips, and parsing the responses on the one core becomes the bound.
 */
export const DEFAULT_REST_CONCURRENCY = 32;

export class BinanceRestClient {
  private readonly options: Required<Omit<BinanceRestClientOptions, 'fetch'>> & { fetch: typeof fetch };
  private readonly log: Logger;
  private readonly counters: RestStats = { requests: 0, weightUsed: 0, retries: 0, rateLimited: 0, banned: 0, errors: 0 };
  /** Weight we believe used in the current minute window: our reservations, raised to what the server reports. */
  private windowStart = 0;
  private windowWeight = 0;
  /** No request leaves before this clock time (429 Retry-After or a 418 ban). */
  private blockedUntil = 0;
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  /** Safety margin under the exchange limit: other tools on the same IP, clock skew between windows. */
  private readonly budget: number;

  constructor(options: BinanceRestClientOptions) {
    this.options = {
      baseUrl: options.baseUrl.replace(/\/+$/, ''),
      clock: options.clock,
      logger: options.logger,
      maxConcurrency: options.maxConcurrency ?? DEFAULT_REST_CONCURRENCY,
      weightLimitPerMinute: options.weightLimitPerMinute ?? 6000,
      timeoutMs: options.timeoutMs ?? 10_000,
      maxRetries: options.maxRetries ?? 5,
      fetch: options.fetch ?? fetch,
    };
    this.log = options.logger;
    this.budget = Math.floor(this.options.weightLimitPerMinute * (5 / 6));
  }

  async exchangeInfo(): Promise<SymbolInfo[]> {
    return parseExchangeInfo(await this.request('/api/v3/exchangeInfo', WEIGHT.exchangeInfo));
  }

  async tickers24h(): Promise<Ticker[]> {
    return parseTickers24h(await this.request('/api/v3/ticker/24hr', WEIGHT.tickers24h));
  }

  /**
   * Klines oldest first; `closed` when the candle had closed before the request was sent. Binance
   * includes the forming candle with its values so far, and a response can arrive after that candle's
   * close time: judged by the arrival time, a half-formed candle would pass for the closed one.
   */
  async klines(symbol: string, interval: Interval, range: { startTime?: number; endTime?: number; limit?: number } = {}): Promise<Array<{ candle: Candle; closed: boolean }>> {
    const query = new URLSearchParams({ symbol, interval });
    if (range.startTime !== undefined) query.set('startTime', String(range.startTime));
    if (range.endTime !== undefined) query.set('endTime', String(range.endTime));
    if (range.limit !== undefined) query.set('limit', String(Math.min(1000, Math.max(1, range.limit))));
    const requested = { sentAt: 0 };
    const candles = parseKlineRows(await this.request(`/api/v3/klines?${query}`, WEIGHT.klines, requested));
    return candles.map((candle) => ({ candle, closed: candle.closeTime < requested.sentAt }));
  }

  stats(): RestStats {
    return { ...this.counters };
  }

  /** `sent.sentAt` is set to the clock time the successful attempt was sent (retries and waits excluded). */
  private async request(path: string, weight: number, sent: { sentAt: number } = { sentAt: 0 }): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      await this.acquire(weight);
      let response: Response;
      sent.sentAt = this.options.clock.now();
      const controller = new AbortController();
      const timer = this.options.clock.setTimeout(() => controller.abort(new TransientError(`timeout after ${this.options.timeoutMs} ms: ${path}`, { code: 'TIMEOUT' })), this.options.timeoutMs);
      try {
        this.counters.requests++;
        response = await this.options.fetch(`${this.options.baseUrl}${path}`, { signal: controller.signal });
        this.observeWeight(response);
        const outcome = await this.interpret(response, path);
        if (outcome.ok) return outcome.body;
        throw outcome.error;
      } catch (error) {
        const transient = this.asTransient(error, path);
        if (!transient) {
          this.counters.errors++;
          throw error;
        }
        if (transient.code === 'RATE_LIMITED' || transient.code === 'IP_BANNED') {
          // Not counted against maxRetries: the server told us exactly when to come back.
          attempt--;
          continue;
        }
        if (attempt >= this.options.maxRetries) {
          this.counters.errors++;
          throw transient;
        }
        this.counters.retries++;
        const delay = backoffDelay(attempt, { baseMs: 250, maxMs: 10_000 });
        this.log.debug({ event: 'rest_retry', path, attempt, delay, error: transient.message }, 'rest retry');
        await this.options.clock.sleep(delay);
      } finally {
        this.options.clock.clearTimeout(timer);
        this.release();
      }
    }
  }

  private async interpret(response: Response, path: string): Promise<{ ok: true; body: unknown } | { ok: false; error: Error }> {
    if (response.ok) {
      try {
        return { ok: true, body: await response.json() };
      } catch (error) {
        return { ok: false, error: new ProtocolError(`invalid JSON from ${path}`, { cause: error }) };
      }
    }
    const body = await response.text().catch(() => '');
    const retryAfterMs = retryAfter(response) ?? MINUTE;
    // https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits: 429 = back off as
    // Retry-After says, continuing escalates to 418 = IP banned for Retry-After seconds.
    if (response.status === 429 || response.status === 418) {
      const banned = response.status === 418;
      if (banned) this.counters.banned++;
      else this.counters.rateLimited++;
      this.blockedUntil = Math.max(this.blockedUntil, this.options.clock.now() + retryAfterMs);
      this.log.warn({ event: banned ? 'rest_banned' : 'rest_rate_limited', path, retryAfterMs }, banned ? 'rest ip banned' : 'rest rate limited');
      return {
        ok: false,
        error: new TransientError(`${response.status} from ${path}`, { code: banned ? 'IP_BANNED' : 'RATE_LIMITED', retryAfterMs }),
      };
    }
    if (response.status >= 500) return { ok: false, error: new TransientError(`${response.status} from ${path}: ${body.slice(0, 200)}`) };
    return { ok: false, error: new ProtocolError(`${response.status} from ${path}: ${body.slice(0, 200)}`) };
  }

  private asTransient(error: unknown, path: string): TransientError | null {
    if (error instanceof TransientError) return error;
    if (error instanceof ProtocolError) return null;
    // fetch rejects with TypeError on network failure and with the abort reason on timeout.
    return new TransientError(`network error on ${path}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }

  private observeWeight(response: Response): void {
    const header = response.headers.get('x-mbx-used-weight-1m');
    if (header === null) return;
    const used = Number(header);
    if (!Number.isFinite(used)) return;
    this.counters.weightUsed = used;
    this.rollWindow();
    // The server's count includes requests we did not make (other processes on this IP).
    if (used > this.windowWeight) this.windowWeight = used;
  }

  private rollWindow(): void {
    // Binance counts weight per calendar minute of its clock.
    const windowStart = Math.floor(this.options.clock.now() / MINUTE) * MINUTE;
    if (windowStart !== this.windowStart) {
      this.windowStart = windowStart;
      this.windowWeight = 0;
    }
  }

  /** Wait for a concurrency slot, any ban, and room in the minute's weight budget; then reserve. */
  private async acquire(weight: number): Promise<void> {
    // release() hands its slot straight to the next waiter, so `active` never overshoots.
    if (this.active >= this.options.maxConcurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      while (true) {
        const now = this.options.clock.now();
        if (this.blockedUntil > now) {
          await this.options.clock.sleep(this.blockedUntil - now);
          continue;
        }
        this.rollWindow();
        if (this.windowWeight + weight <= this.budget) {
          this.windowWeight += weight;
          return;
        }
        await this.options.clock.sleep(this.windowStart + MINUTE - now + 10);
      }
    } catch (error) {
      this.release();
      throw error;
    }
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}

function retryAfter(response: Response): number | undefined {
  const header = response.headers.get('retry-after');
  if (header === null) return undefined;
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}
