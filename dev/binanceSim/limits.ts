// Binance's limits, enforced and recorded: REST weight per minute with 429/418, and the websocket limits.
import type { Clock } from '../../src/clock.ts';

const MINUTE = 60_000;
/** https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits: REQUEST_WEIGHT 6000 per minute. */
export const WEIGHT_LIMIT_PER_MINUTE = 6000;
/** https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#websocket-limits */
export const WS_MESSAGES_PER_SECOND = 5;
export const WS_STREAMS_PER_CONNECTION = 1024;
export const WS_CONNECTIONS_PER_5_MINUTES = 300;
export const WS_CONNECTION_LIFETIME_MS = 24 * 60 * MINUTE;
export const WS_PONG_TIMEOUT_MS = MINUTE;
/** Binance bans "from 2 minutes to 3 days", growing for repeat offenders. */
const FIRST_BAN_MS = 2 * MINUTE;
const LONGEST_BAN_MS = 3 * 1440 * MINUTE;

export type RestVerdict =
  | { kind: 'ok'; usedWeight: number }
  | { kind: 'rateLimited'; usedWeight: number; retryAfterSec: number; msg: string }
  | { kind: 'banned'; usedWeight: number; retryAfterSec: number; msg: string };

/** Limits and their violations; `violations` is what tests read to prove a client behaved. */
export class LimitRecorder {
  readonly violations: string[] = [];
  rateLimited = 0;
  banned = 0;
  weightUsedMax = 0;
  private readonly clock: Clock;
  private readonly banAfterIgnored: number;
  private windowStart = 0;
  private windowWeight = 0;
  /** After a 429, requests before this time are ignoring Retry-After. */
  private backoffUntil = 0;
  private ignoredDuringBackoff = 0;
  private bannedUntil = 0;
  private nextBanMs = FIRST_BAN_MS;
  private forcedRateLimits = 0;
  private forcedRetryAfterSec = 1;
  private connectionAttempts: number[] = [];

  constructor(clock: Clock, options: { banAfterIgnored429?: number } = {}) {
    this.clock = clock;
    this.banAfterIgnored = options.banAfterIgnored429 ?? 10;
  }

  record(kind: string, detail: string): void {
    this.violations.push(`${kind}: ${detail}`);
  }

  usedWeight(): number {
    this.roll(this.clock.now());
    return this.windowWeight;
  }

  forceRateLimit(count: number, retryAfterSec: number): void {
    this.forcedRateLimits = count;
    this.forcedRetryAfterSec = retryAfterSec;
  }

  forceBan(retryAfterSec: number): void {
    this.bannedUntil = this.clock.now() + retryAfterSec * 1000;
  }

  /** Decide one REST request of `weight`: Binance's 429 past the limit, 418 for ignoring a 429. */
  admit(weight: number, path: string): RestVerdict {
    const now = this.clock.now();
    this.roll(now);
    if (now < this.bannedUntil) {
      this.banned++;
      return { kind: 'banned', usedWeight: this.windowWeight, retryAfterSec: Math.ceil((this.bannedUntil - now) / 1000), msg: this.banMessage() };
    }
    if (this.forcedRateLimits > 0) {
      this.forcedRateLimits--;
      this.startBackoff(now, now + this.forcedRetryAfterSec * 1000);
      this.rateLimited++;
      return { kind: 'rateLimited', usedWeight: this.windowWeight, retryAfterSec: this.forcedRetryAfterSec, msg: RATE_LIMIT_MESSAGE };
    }
    if (now < this.backoffUntil) {
      this.ignoredDuringBackoff++;
      if (this.ignoredDuringBackoff > this.banAfterIgnored) {
        this.bannedUntil = now + this.nextBanMs;
        this.record('rest_ban', `${this.ignoredDuringBackoff} requests ignored Retry-After (last ${path}); banned for ${this.nextBanMs / 1000}s`);
        this.nextBanMs = Math.min(LONGEST_BAN_MS, this.nextBanMs * 2);
        this.backoffUntil = 0;
        this.ignoredDuringBackoff = 0;
        this.banned++;
        return { kind: 'banned', usedWeight: this.windowWeight, retryAfterSec: Math.ceil((this.bannedUntil - now) / 1000), msg: this.banMessage() };
      }
      this.rateLimited++;
      return { kind: 'rateLimited', usedWeight: this.windowWeight, retryAfterSec: Math.ceil((this.backoffUntil - now) / 1000), msg: RATE_LIMIT_MESSAGE };
    }
    if (this.windowWeight + weight > WEIGHT_LIMIT_PER_MINUTE) {
      const windowEnd = this.windowStart + MINUTE;
      this.startBackoff(now, windowEnd);
      this.record('rest_weight', `${path} of weight ${weight} with ${this.windowWeight} already used this minute`);
      this.rateLimited++;
      return { kind: 'rateLimited', usedWeight: this.windowWeight, retryAfterSec: Math.max(1, Math.ceil((windowEnd - now) / 1000)), msg: RATE_LIMIT_MESSAGE };
    }
    this.windowWeight += weight;
    this.weightUsedMax = Math.max(this.weightUsedMax, this.windowWeight);
    return { kind: 'ok', usedWeight: this.windowWeight };
  }

  /** A new websocket connection: false (and recorded) past 300 per 5 minutes. */
  admitConnection(): boolean {
    const now = this.clock.now();
    this.connectionAttempts = this.connectionAttempts.filter((time) => time > now - 5 * MINUTE);
    if (this.connectionAttempts.length >= WS_CONNECTIONS_PER_5_MINUTES) {
      this.record('connection_rate', `more than ${WS_CONNECTIONS_PER_5_MINUTES} connections in 5 minutes`);
      return false;
    }
    this.connectionAttempts.push(now);
    return true;
  }

  resetStats(): void {
    this.violations.length = 0;
    this.rateLimited = 0;
    this.banned = 0;
    this.weightUsedMax = 0;
  }

  private startBackoff(now: number, until: number): void {
    if (now >= this.backoffUntil) this.ignoredDuringBackoff = 0;
    this.backoffUntil = Math.max(this.backoffUntil, until);
  }

  private roll(now: number): void {
    const start = Math.floor(now / MINUTE) * MINUTE;
    if (start !== this.windowStart) {
      this.windowStart = start;
      this.windowWeight = 0;
    }
  }

  private banMessage(): string {
    return `Way too much request weight used; IP banned until ${this.bannedUntil}. Please use WebSocket Streams for live updates to avoid bans.`;
  }
}

const RATE_LIMIT_MESSAGE = `Too much request weight used; current limit is ${WEIGHT_LIMIT_PER_MINUTE} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.`;

/** Sliding one-second count of a connection's incoming messages (control messages, pings and pongs). */
export class MessageRate {
  private readonly times: number[] = [];

  /** Count one message at `now`; true when the connection is now past the limit. */
  exceeded(now: number): boolean {
    this.times.push(now);
    while (this.times.length > 0 && this.times[0]! <= now - 1000) this.times.shift();
    return this.times.length > WS_MESSAGES_PER_SECOND;
  }
}
