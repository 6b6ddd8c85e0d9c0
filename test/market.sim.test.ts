// Market data against the Binance simulator: backfill, gaps, faults and limits, on a clock shared by both.
import { describe, expect, it } from 'vitest';
import { BinanceSimulator } from '../dev/binanceSim/index.ts';
import { AcceleratedClock } from '../src/clock.ts';
import { candleOpenTimeAt, intervalMs, type Interval } from '../src/domain.ts';
import { silentLogger } from '../src/logger.ts';
import { BinanceRestClient } from '../src/market/BinanceRestClient.ts';
import { BinanceWebSocketClient } from '../src/market/BinanceWebSocketClient.ts';
import { MarketData } from '../src/market/MarketData.ts';
import { MarketStore } from '../src/market/MarketStore.ts';
import { Universe } from '../src/market/Universe.ts';
import type { CandleClosedEvent, GapFilledEvent } from '../src/ports.ts';
import { cleanupsAfterEach, until } from './support/wait.ts';

const SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'];
const cleanups = cleanupsAfterEach();

/** 1 minute of market time per second of real time unless told otherwise. */
async function stack(
  options: { speed?: number; history?: number; symbols?: string[]; rotateAfterMs?: number; silenceTimeoutMs?: number; refreshMs?: number; restMaxRetries?: number } = {},
) {
  const clock = new AcceleratedClock({ speed: options.speed ?? 60, originRealMs: Date.now(), originClockMs: 1_700_000_000_000 });
  const sim = new BinanceSimulator({ seed: 7, clock, symbols: SYMBOLS, klineUpdateMs: 2_000, restLatencyMs: 0 });
  await sim.start();
  cleanups.push(() => sim.stop());
  const logger = silentLogger();
  const store = new MarketStore({ history: options.history ?? 30, clock });
  const rest = new BinanceRestClient({
    baseUrl: sim.restUrl,
    clock,
    logger,
    timeoutMs: 600_000,
    ...(options.restMaxRetries !== undefined ? { maxRetries: options.restMaxRetries } : {}),
  });
  const ws = new BinanceWebSocketClient({
    baseUrl: sim.wsUrl,
    clock,
    logger,
    streamsPerConnection: 4,
    silenceTimeoutMs: options.silenceTimeoutMs ?? 20_000,
    // Opening sockets takes real time, which the accelerated clock multiplies.
    openTimeoutMs: 30 * 60_000,
    ...(options.rotateAfterMs ? { rotateAfterMs: options.rotateAfterMs } : {}),
  });
  const universe = new Universe({ rest, symbols: options.symbols ?? SYMBOLS, maxSymbols: 10, clock, logger, ...(options.refreshMs ? { refreshMs: options.refreshMs } : {}) });
  const market = new MarketData({ rest, ws, store, universe, history: options.history ?? 30, clock, logger });
  cleanups.push(() => market.stop());
  const gaps: GapFilledEvent[] = [];
  market.on('gapFilled', (event) => gaps.push(event));
  return { clock, sim, store, rest, ws, universe, market, gaps };
}

type Stack = Awaited<ReturnType<typeof stack>>;

/** Every closed candle we hold equals the simulator's, cell by cell, with no hole. */
function expectExact({ sim, store }: Stack, symbol: string, interval: Interval, minLength: number): void {
  const series = store.series(symbol, interval);
  expect(series, `${symbol} ${interval}`).toBeDefined();
  expect(series!.length).toBeGreaterThanOrEqual(minLength);
  const held = Array.from({ length: series!.length }, (_, i) => series!.get(i));
  const truth = sim.candles(symbol, interval, held[0]!.openTime, held[held.length - 1]!.openTime);
  expect(held).toEqual(truth.map((candle) => ({ ...candle })));
}

function lastClosedOpenTime(clock: AcceleratedClock, interval: Interval): number {
  return candleOpenTimeAt(interval, clock.now()) - intervalMs(interval);
}

describe('MarketData against the simulator', () => {
  it('backfills every series exactly within the weight budget, then streams', async () => {
    const s = await stack({ history: 40 });
    const announced: CandleClosedEvent[] = [];
    s.store.on('candleClosed', (event) => announced.push(event));
    await s.market.start(['1m', '5m']);
    expect(s.market.status()).toMatchObject({ symbols: 3, intervals: 2, backfilled: true, pendingGaps: 0, connectionsExpected: 3, connectionsOpen: 3 });
    // 240 candles were loaded, but history is not news: nothing downstream hears about backfilled candles.
    expect(announced.filter((event) => event.origin === 'backfill')).toEqual([]);
    expect(announced.length).toBeLessThanOrEqual(SYMBOLS.length * 2);
    for (const symbol of SYMBOLS) {
      expectExact(s, symbol, '1m', 40);
      expectExact(s, symbol, '5m', 40);
      expect(s.store.series(symbol, '1m')!.originOf(s.store.series(symbol, '1m')!.get(0).openTime)).toBe('backfill');
    }
    // The next close arrives by stream and is complete.
    const next = lastClosedOpenTime(s.clock, '1m') + 60_000;
    await until(() => SYMBOLS.every((symbol) => s.market.isComplete(symbol, '1m', next)), 'the next close');
    expect(s.store.series('BTCUSDT', '1m')!.originOf(next)).toBe('stream');
    expect(s.sim.stats().violations).toEqual([]);
    expect(s.sim.stats().rateLimited).toBe(0);
  });

  it('drops mid-candle and across a close still end with exactly the simulator candles', async () => {
    const s = await stack();
    await s.market.start(['1m']);
    s.sim.faults.dropConnections('all');
    const afterDrop = lastClosedOpenTime(s.clock, '1m') + 60_000;
    await until(() => SYMBOLS.every((symbol) => s.market.isComplete(symbol, '1m', afterDrop)), 'the close after the drop');
    // Drop again just before a close so the close itself is missed by the stream.
    const nextClose = candleOpenTimeAt('1m', s.clock.now()) + 60_000;
    await until(() => s.clock.now() >= nextClose - 1_500, 'the run-up to a close');
    s.sim.faults.dropConnections('all');
    await until(() => SYMBOLS.every((symbol) => s.market.isComplete(symbol, '1m', nextClose)), 'the close across the drop');
    for (const symbol of SYMBOLS) expectExact(s, symbol, '1m', 30);
    expect(s.gaps.length).toBeGreaterThan(0);
    expect(s.ws.stats().reconnects).toBeGreaterThanOrEqual(2);
    expect(s.sim.stats().violations).toEqual([]);
  });

  it('detects a stalled connection, replaces it and fills the gap', async () => {
    const s = await stack({ silenceTimeoutMs: 10_000 });
    await s.market.start(['1m']);
    const reconnectsBefore = s.ws.stats().reconnects;
    s.sim.faults.stall(30_000);
    await until(() => s.ws.stats().reconnects > reconnectsBefore, 'a reconnect');
    s.sim.faults.clearStall();
    const next = lastClosedOpenTime(s.clock, '1m') + 60_000;
    await until(() => SYMBOLS.every((symbol) => s.market.isComplete(symbol, '1m', next)), 'a close after the stall');
    for (const symbol of SYMBOLS) expectExact(s, symbol, '1m', 30);
    expect(s.sim.stats().violations).toEqual([]);
  });

  it('rotates connections before 24 h without losing a candle', async () => {
    // At 600× a 20 s silence timeout is 33 real ms, which a busy machine can miss: rotation is the subject here.
    const s = await stack({ speed: 600, rotateAfterMs: 3 * 60_000, silenceTimeoutMs: 10 * 60_000 });
    await s.market.start(['1m']);
    const connectionsBefore = s.sim.stats().connectionsTotal;
    const target = lastClosedOpenTime(s.clock, '1m') + 8 * 60_000;
    await until(() => SYMBOLS.every((symbol) => s.market.isComplete(symbol, '1m', target)), 'eight more closes', 20_000);
    expect(s.sim.stats().connectionsTotal).toBeGreaterThan(connectionsBefore);
    for (const symbol of SYMBOLS) expectExact(s, symbol, '1m', 30);
    expect(s.ws.stats().reconnects).toBe(0);
    expect(s.sim.stats().violations).toEqual([]);
  });

  it('counts and skips malformed frames and unknown events, and moves off on serverShutdown', async () => {
    const s = await stack();
    await s.market.start(['1m']);
    s.sim.faults.sendMalformed(5);
    s.sim.faults.sendUnknownEvents(3);
    await until(() => s.ws.stats().malformed >= 5 && s.ws.stats().unknownEvents >= 3, 'the bad frames counted');
    const totalBefore = s.sim.stats().connectionsTotal;
    s.sim.faults.serverShutdown();
    await until(() => s.sim.stats().connectionsTotal > totalBefore, 'new connections');
    const next = lastClosedOpenTime(s.clock, '1m') + 60_000;
    await until(() => SYMBOLS.every((symbol) => s.market.isComplete(symbol, '1m', next)), 'a close after the shutdown');
    for (const symbol of SYMBOLS) expectExact(s, symbol, '1m', 30);
    expect(s.sim.stats().violations).toEqual([]);
  });

  it('honours 429 and 418: waits as told and sends nothing during a ban', async () => {
    const s = await stack({ speed: 30 });
    await s.market.start(['1m']);
    s.sim.faults.rateLimit(1, 2);
    await s.market.fillSeries('BTCUSDT', '1m');
    expect(s.rest.stats().rateLimited).toBe(1);
    s.sim.faults.ban(3);
    await s.market.fillSeries('ETHUSDT', '1m');
    await s.market.fillSeries('SOLUSDT', '1m');
    expect(s.rest.stats().banned).toBe(1);
    // One request discovered the ban; nothing else was sent until it ended.
    expect(s.sim.stats().banned).toBe(1);
    expect(s.sim.stats().violations).toEqual([]);
  });

  it('spreads a flood of requests over minute windows instead of exceeding the weight limit', async () => {
    const s = await stack();
    const started = s.clock.now();
    // 320 × weight 20 = 6400: more than one minute's 6000.
    await Promise.all(Array.from({ length: 320 }, () => s.rest.exchangeInfo()));
    expect(s.clock.now() - started).toBeGreaterThan(0);
    expect(s.sim.stats().weightUsedMax).toBeLessThanOrEqual(6000);
    expect(s.sim.stats().rateLimited).toBe(0);
    expect(s.sim.stats().violations).toEqual([]);
    expect(s.rest.stats().weightUsed).toBeGreaterThan(0);
  });

  it('validates SYMBOLS against exchangeInfo and drops unknown or halted symbols with a reason', async () => {
    const s = await stack({ symbols: ['BTCUSDT', 'NOPEUSDT', 'ETHUSDT'] });
    s.sim.faults.setSymbolStatus('ETHUSDT', 'BREAK');
    const resolved = await s.universe.resolve();
    expect(resolved.symbols).toEqual(['BTCUSDT']);
    expect(resolved.dropped).toEqual([
      { symbol: 'NOPEUSDT', reason: 'unknown symbol' },
      { symbol: 'ETHUSDT', reason: 'status BREAK' },
    ]);
  });

  it('picks the top USDT pairs by quote volume when SYMBOLS is unset', async () => {
    const s = await stack({ symbols: [] });
    const universe = new Universe({ rest: s.rest, maxSymbols: 2, clock: s.clock, logger: silentLogger() });
    const resolved = await universe.resolve();
    expect(resolved.symbols).toHaveLength(2);
    expect(resolved.symbols.every((symbol) => SYMBOLS.includes(symbol))).toBe(true);
  });

  it('follows universe changes live: a new listing is backfilled and streamed, a halted symbol is dropped', async () => {
    const s = await stack({ symbols: [], refreshMs: 60_000 });
    await s.market.start(['1m']);
    expect(s.market.symbols().sort()).toEqual([...SYMBOLS].sort());
    const changes: unknown[] = [];
    s.market.on('universeChanged', (change) => changes.push(change));
    s.sim.faults.addSymbol('XRPUSDT');
    s.sim.faults.setSymbolStatus('SOLUSDT', 'BREAK');
    await until(() => changes.length > 0 && s.market.status().pendingGaps === 0 && (s.store.series('XRPUSDT', '1m')?.length ?? 0) >= 30, 'the universe change applied');
    expect(s.market.symbols().sort()).toEqual(['BTCUSDT', 'ETHUSDT', 'XRPUSDT']);
    expect(s.store.series('SOLUSDT', '1m')).toBeUndefined();
    expectExact(s, 'XRPUSDT', '1m', 30);
    const next = lastClosedOpenTime(s.clock, '1m') + 60_000;
    await until(() => s.market.isComplete('XRPUSDT', '1m', next), 'a streamed close of the new symbol');
    expect(s.store.series('XRPUSDT', '1m')!.originOf(next)).toBe('stream');
    expect(s.sim.stats().violations).toEqual([]);
  });

  it('adds and removes intervals live: backfills the new one, forgets the dropped one', async () => {
    const s = await stack();
    await s.market.start(['1m']);
    await s.market.setIntervals(['1m', '15m']);
    for (const symbol of SYMBOLS) expectExact(s, symbol, '15m', 30);
    await s.market.setIntervals(['15m']);
    expect(s.store.series('BTCUSDT', '1m')).toBeUndefined();
    await until(() => s.ws.stats().streams === 6, 'the 1m streams unsubscribed');
    expect(s.sim.stats().violations).toEqual([]);
  });

  it('keeps retrying the backfill of an interval added at run time until it loads, never calling it complete before', async () => {
    const s = await stack({ restMaxRetries: 1 });
    await s.market.start(['1m']);
    // Every request fails twice (first try and its one retry): the first backfill attempt of each series fails.
    s.sim.faults.failRest(2 * SYMBOLS.length, 503);
    await s.market.setIntervals(['1m', '15m']);
    const expected15m = lastClosedOpenTime(s.clock, '15m');
    expect(s.sim.stats().faults.restFailures).toBeGreaterThanOrEqual(2);
    expect(s.market.status().pendingGaps).toBeGreaterThan(0);
    for (const symbol of SYMBOLS) {
      if (s.store.series(symbol, '15m') === undefined) expect(s.market.isComplete(symbol, '15m', expected15m)).toBe(false);
    }
    await until(() => s.market.status().pendingGaps === 0, 'the retried backfills', 30_000);
    for (const symbol of SYMBOLS) expectExact(s, symbol, '15m', 30);
    expect(s.sim.stats().violations).toEqual([]);
  });
});
