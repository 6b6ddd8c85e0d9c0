// MarketData over a minimal loopback exchange (deterministic candles, REST klines + combined streams).
// The full fault matrix runs against the Binance simulator in market.sim.test.ts.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { AcceleratedClock } from '../src/clock.ts';
import { candleOpenTimeAt, intervalMs, isInterval, type Candle, type Interval } from '../src/domain.ts';
import { silentLogger } from '../src/logger.ts';
import { BinanceRestClient } from '../src/market/BinanceRestClient.ts';
import { BinanceWebSocketClient } from '../src/market/BinanceWebSocketClient.ts';
import { MarketData } from '../src/market/MarketData.ts';
import { MarketStore } from '../src/market/MarketStore.ts';
import { Universe } from '../src/market/Universe.ts';
import type { CandleClosedEvent, GapFilledEvent } from '../src/ports.ts';
import { cleanupsAfterEach, until } from './support/wait.ts';

const cleanups = cleanupsAfterEach();

/** The exchange's truth: a pure function of symbol, interval and open time. */
function truth(symbol: string, interval: Interval, openTime: number): Candle {
  const seed = (openTime / 60_000 + symbol.length * 7 + intervalMs(interval) / 60_000) % 97;
  return {
    openTime,
    open: 100 + seed,
    high: 110 + seed,
    low: 90 + seed,
    close: 105 + seed,
    volume: 1000 + seed,
    closeTime: openTime + intervalMs(interval) - 1,
    quoteVolume: 100_000 + seed,
    trades: 50 + seed,
    takerBuyBaseVolume: 400 + seed,
    takerBuyQuoteVolume: 40_000 + seed,
  };
}

function row(c: Candle): unknown[] {
  return [c.openTime, String(c.open), String(c.high), String(c.low), String(c.close), String(c.volume), c.closeTime, String(c.quoteVolume), c.trades, String(c.takerBuyBaseVolume), String(c.takerBuyQuoteVolume), '0'];
}

async function exchange(clock: AcceleratedClock, symbols: string[]) {
  const http = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://x');
    response.setHeader('content-type', 'application/json');
    if (url.pathname === '/api/v3/exchangeInfo') {
      response.end(JSON.stringify({ symbols: symbols.map((symbol) => ({ symbol, status: 'TRADING', baseAsset: symbol.replace('USDT', ''), quoteAsset: 'USDT', permissionSets: [['SPOT']] })) }));
      return;
    }
    const symbol = url.searchParams.get('symbol') ?? '';
    const interval = url.searchParams.get('interval');
    if (!isInterval(interval)) {
      response.writeHead(400).end('{}');
      return;
    }
    const limit = Number(url.searchParams.get('limit') ?? 500);
    const length = intervalMs(interval);
    const current = candleOpenTimeAt(interval, clock.now());
    const start = url.searchParams.get('startTime');
    const first = start ? candleOpenTimeAt(interval, Number(start) + length - 1) : current - (limit - 1) * length;
    const rows = [];
    for (let t = first; t <= current && rows.length < limit; t += length) rows.push(row(truth(symbol, interval, t)));
    response.end(JSON.stringify(rows));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  const sockets = new Map<WebSocket, string[]>();
  wss.on('connection', (socket, request) => {
    sockets.set(socket, new URL(request.url ?? '/', 'http://x').searchParams.get('streams')?.split('/') ?? []);
    socket.on('close', () => sockets.delete(socket));
  });
  // Every 2 s of exchange time: the forming candle; at each close, the closing kline (x: true).
  let lastTick = clock.now();
  const timer = setInterval(() => {
    const now = clock.now();
    for (const [socket, streams] of sockets) {
      for (const stream of streams) {
        const [lower, kind] = stream.split('@') as [string, string];
        if (!kind.startsWith('kline_')) continue;
        const interval = kind.slice(6) as Interval;
        const symbol = lower.toUpperCase();
        const closing = candleOpenTimeAt(interval, now) - intervalMs(interval);
        const send = (candle: Candle, x: boolean) =>
          socket.send(JSON.stringify({ stream, data: { e: 'kline', E: now, s: symbol, k: { t: candle.openTime, T: candle.closeTime, s: symbol, i: interval, f: 1, L: 2, o: String(candle.open), c: String(candle.close), h: String(candle.high), l: String(candle.low), v: String(candle.volume), n: candle.trades, x, q: String(candle.quoteVolume), V: String(candle.takerBuyBaseVolume), Q: String(candle.takerBuyQuoteVolume), B: '0' } } }));
        if (closing + intervalMs(interval) > lastTick) send(truth(symbol, interval, closing), true);
        send({ ...truth(symbol, interval, candleOpenTimeAt(interval, now)), close: 1 }, false);
      }
    }
    lastTick = now;
  }, 2_000 / clock.speed);
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        clearInterval(timer);
        for (const client of wss.clients) client.terminate();
        http.close();
        wss.close(() => resolve());
      }),
  );
  return {
    restUrl: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    wsUrl: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    dropAll: () => {
      for (const socket of sockets.keys()) socket.terminate();
    },
  };
}

function held(store: MarketStore, symbol: string, interval: Interval): Candle[] {
  const series = store.series(symbol, interval)!;
  return Array.from({ length: series.length }, (_, i) => series.get(i));
}

describe('MarketData', () => {
  it('backfills, streams, fills a gap after a drop across a close, and announces every close once', async () => {
    const clock = new AcceleratedClock({ speed: 60, originRealMs: Date.now(), originClockMs: 1_700_000_000_000 });
    const symbols = ['BTCUSDT', 'ETHUSDT'];
    const ex = await exchange(clock, symbols);
    const logger = silentLogger();
    const store = new MarketStore({ history: 20, clock });
    const rest = new BinanceRestClient({ baseUrl: ex.restUrl, clock, logger, timeoutMs: 600_000 });
    const ws = new BinanceWebSocketClient({ baseUrl: ex.wsUrl, clock, logger, streamsPerConnection: 3 });
    const universe = new Universe({ rest, symbols: [...symbols, 'NOPEUSDT'], maxSymbols: 10, clock, logger });
    const market = new MarketData({ rest, ws, store, universe, history: 20, clock, logger });
    cleanups.push(() => market.stop());
    const gaps: GapFilledEvent[] = [];
    market.on('gapFilled', (event) => gaps.push(event));
    const closes: CandleClosedEvent[] = [];
    store.on('candleClosed', (event) => closes.push(event));

    const startedAt = clock.now();
    await market.start(['1m', '5m']);
    expect(market.status()).toMatchObject({ symbols: 2, intervals: 2, backfilled: true, pendingGaps: 0, connectionsExpected: 2, connectionsOpen: 2, streams: 6 });
    for (const symbol of symbols) {
      for (const interval of ['1m', '5m'] as const) {
        const candles = held(store, symbol, interval);
        expect(candles).toHaveLength(20);
        expect(candles).toEqual(candles.map((c) => truth(symbol, interval, c.openTime)));
        // A minute lasts one real second here: a candle may close while start() runs (or before this check), so the latest held
        // candle is the one closed when start began or any later closed one, never an older one and never a forming one.
        const latest = candles.at(-1)!.openTime;
        expect(latest).toBeGreaterThanOrEqual(candleOpenTimeAt(interval, startedAt) - intervalMs(interval));
        expect(latest).toBeLessThanOrEqual(candleOpenTimeAt(interval, clock.now()) - intervalMs(interval));
      }
    }

    // Drop just before a close; the close is missed by the stream and must come back by REST.
    const nextClose = candleOpenTimeAt('1m', clock.now()) + 60_000;
    await until(() => clock.now() >= nextClose - 3_000, 'the run-up to a close');
    const wasDisconnected = new Promise<void>((resolve) => ws.once('reconnected', () => resolve()));
    ex.dropAll();
    await wasDisconnected;
    await until(() => symbols.every((symbol) => market.isComplete(symbol, '1m', nextClose)), 'the close across the drop');
    const after = nextClose + 60_000;
    await until(() => symbols.every((symbol) => market.isComplete(symbol, '1m', after)), 'a streamed close after the gap');
    for (const symbol of symbols) {
      const candles = held(store, symbol, '1m');
      expect(candles).toEqual(candles.map((c) => truth(symbol, '1m', c.openTime)));
      for (let i = 1; i < candles.length; i++) expect(candles[i]!.openTime - candles[i - 1]!.openTime).toBe(60_000);
    }
    expect(gaps.length).toBeGreaterThan(0);
    const keys = closes.map((e) => `${e.symbol}|${e.interval}|${e.candle.openTime}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(market.status().pendingGaps).toBe(0);

    // Intervals change live.
    await market.setIntervals(['5m', '15m']);
    expect(store.series('BTCUSDT', '1m')).toBeUndefined();
    expect(held(store, 'ETHUSDT', '15m')).toHaveLength(20);
    expect(market.intervals()).toEqual(['5m', '15m']);
    await until(() => ws.stats().streams === 6, 'streams re-planned');
  });
});
