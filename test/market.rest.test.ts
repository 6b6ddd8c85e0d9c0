import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AcceleratedClock, type Clock } from '../src/clock.ts';
import { ProtocolError } from '../src/errors.ts';
import { silentLogger } from '../src/logger.ts';
import { BinanceRestClient } from '../src/market/BinanceRestClient.ts';

// A hand-written loopback stub for the REST error paths; the simulator covers the happy path.
type Handler = (request: IncomingMessage, response: ServerResponse, clockNow: number) => void;

const servers: Array<{ close: () => void }> = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

async function serve(handler: Handler, clock: Clock): Promise<string> {
  const server = createServer((request, response) => handler(request, response, clock.now()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push({ close: () => server.close() });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function klineRow(openTime: number): unknown[] {
  return [openTime, '1', '2', '0.5', '1.5', '10', openTime + 59_999, '15', 3, '4', '6', '0'];
}

function fastClock(speed: number): AcceleratedClock {
  return new AcceleratedClock({ speed, originRealMs: Date.now(), originClockMs: 1_700_000_000_000 });
}

describe('BinanceRestClient', () => {
  it('marks klines closed by close time and never spends more weight per minute than its budget', async () => {
    // Slow enough that a few real milliseconds of latency are not a large share of a simulated minute.
    const clock = fastClock(120);
    const weightByMinute = new Map<number, number>();
    const url = await serve((_request, response, now) => {
      const minute = Math.floor(now / 60_000);
      const used = (weightByMinute.get(minute) ?? 0) + 2;
      weightByMinute.set(minute, used);
      response.writeHead(200, { 'content-type': 'application/json', 'x-mbx-used-weight-1m': String(used) });
      // One candle long closed and one that closes a day from now: neither can change state while in flight.
      const openTime = Math.floor(now / 60_000) * 60_000;
      response.end(JSON.stringify([klineRow(openTime - 600_000), klineRow(openTime + 86_400_000)]));
    }, clock);
    const rest = new BinanceRestClient({ baseUrl: url, clock, logger: silentLogger(), weightLimitPerMinute: 60, maxConcurrency: 4, timeoutMs: 3_600_000 });
    const results = await Promise.all(Array.from({ length: 60 }, () => rest.klines('BTCUSDT', '1m', { limit: 2 })));
    expect(results[0]!.map((row) => row.closed)).toEqual([true, false]);
    expect(Math.max(...weightByMinute.values())).toBeLessThanOrEqual(60);
    expect(rest.stats().requests).toBe(60);
  });

  it('waits out a 429 as Retry-After says, then succeeds', async () => {
    const clock = fastClock(20);
    let calls = 0;
    let retriedAt = 0;
    let limitedAt = 0;
    const url = await serve((_request, response, now) => {
      calls++;
      if (calls === 1) {
        limitedAt = now;
        response.writeHead(429, { 'retry-after': '3' }).end('{"code":-1003}');
        return;
      }
      retriedAt = now;
      response.writeHead(200, { 'content-type': 'application/json' }).end('[]');
    }, clock);
    const rest = new BinanceRestClient({ baseUrl: url, clock, logger: silentLogger() });
    await expect(rest.klines('BTCUSDT', '1m')).resolves.toEqual([]);
    expect(retriedAt - limitedAt).toBeGreaterThanOrEqual(3_000);
    expect(rest.stats()).toMatchObject({ rateLimited: 1, requests: 2 });
  });

  it('sends no request at all while an IP ban (418) lasts, then resumes', async () => {
    const clock = fastClock(20);
    let bannedUntil = 0;
    let requestsDuringBan = 0;
    let banned = false;
    const url = await serve((_request, response, now) => {
      if (now < bannedUntil) requestsDuringBan++;
      if (!banned) {
        banned = true;
        bannedUntil = now + 4_000;
        response.writeHead(418, { 'retry-after': '4' }).end('{"code":-1003}');
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('[]');
    }, clock);
    const rest = new BinanceRestClient({ baseUrl: url, clock, logger: silentLogger(), maxConcurrency: 1 });
    await Promise.all(Array.from({ length: 5 }, () => rest.klines('BTCUSDT', '1m')));
    expect(requestsDuringBan).toBe(0);
    expect(clock.now()).toBeGreaterThanOrEqual(bannedUntil);
    expect(rest.stats()).toMatchObject({ banned: 1, requests: 6 });
  });

  it('retries 5xx with backoff but never retries another 4xx', async () => {
    const clock = fastClock(50);
    let calls = 0;
    const url = await serve((request, response) => {
      calls++;
      if (request.url?.includes('BADSYM')) {
        response.writeHead(400).end('{"code":-1121,"msg":"Invalid symbol."}');
        return;
      }
      if (calls <= 2) {
        response.writeHead(503).end('busy');
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('[]');
    }, clock);
    const rest = new BinanceRestClient({ baseUrl: url, clock, logger: silentLogger() });
    await expect(rest.klines('BTCUSDT', '1m')).resolves.toEqual([]);
    expect(rest.stats().retries).toBe(2);
    const before = calls;
    await expect(rest.klines('BADSYM', '1m')).rejects.toThrow(ProtocolError);
    expect(calls - before).toBe(1);
  });

  it('times out a hanging request and gives up after maxRetries', async () => {
    const clock = fastClock(50);
    const url = await serve(() => undefined, clock);
    const rest = new BinanceRestClient({ baseUrl: url, clock, logger: silentLogger(), timeoutMs: 2_000, maxRetries: 1 });
    await expect(rest.klines('BTCUSDT', '1m')).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(rest.stats()).toMatchObject({ requests: 2, retries: 1, errors: 1 });
  });
});
