// Binance's connection limits, enforced by the simulator and respected by the stream client: the 24 h
// connection lifetime, the one-minute pong deadline and 300 new connections per 5 minutes per IP.
// https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { BinanceSimulator, type SimulatorOptions } from '../dev/binanceSim/index.ts';
import { AcceleratedClock } from '../src/clock.ts';
import { intervalMs } from '../src/domain.ts';
import { silentLogger } from '../src/logger.ts';
import { BinanceWebSocketClient, type KlineEvent } from '../src/market/BinanceWebSocketClient.ts';
import { cleanupsAfterEach, until } from './support/wait.ts';

const HOUR = 3_600_000;
const MINUTE = 60_000;
/** A whole hour, so the 1h candles of the 24 h test line up with the start. */
const T0 = 1_700_002_800_000;

const cleanups = cleanupsAfterEach();

async function simulator(speed: number, options: SimulatorOptions = {}) {
  const clock = new AcceleratedClock({ speed, originRealMs: Date.now(), originClockMs: T0 + 1_000 });
  const sim = new BinanceSimulator({ seed: 3, symbols: ['BTCUSDT', 'ETHUSDT'], ...options, clock });
  await sim.start();
  cleanups.push(() => sim.stop());
  return { sim, clock };
}

function streamClient(baseUrl: string, clock: AcceleratedClock, options: Partial<ConstructorParameters<typeof BinanceWebSocketClient>[0]> = {}) {
  const ws = new BinanceWebSocketClient({ baseUrl, clock, logger: silentLogger(), ...options });
  cleanups.push(() => ws.stop());
  return ws;
}

interface RawSocket {
  socket: WebSocket;
  pings: number;
  closed: { code: number; at: number } | null;
}

/** A bare socket, optionally one that never answers pings (ws answers them by itself unless told not to). */
async function rawSocket(url: string, clock: AcceleratedClock, options: { autoPong?: boolean } = {}): Promise<RawSocket> {
  const socket = new WebSocket(url, { autoPong: options.autoPong ?? true });
  const raw: RawSocket = { socket, pings: 0, closed: null };
  socket.on('ping', () => raw.pings++);
  socket.on('close', (code) => (raw.closed = { code, at: clock.now() }));
  socket.on('error', () => {});
  cleanups.push(() => socket.terminate());
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return raw;
}

describe('Binance connection limits', () => {
  it('the simulator ends a connection at 24 h; the client rotates before that and misses no candle', async () => {
    // One simulated day in about 25 real seconds. Pings are rare and the silence timeout long so that a
    // scheduling hiccup of a few real milliseconds is not mistaken for a dead peer at this speed.
    const speed = 3600;
    const { sim, clock } = await simulator(speed, { pingIntervalMs: HOUR });
    const started = clock.now();
    const bystander = await rawSocket(`${sim.wsUrl}/stream?streams=ethusdt@kline_1h`, clock);
    const ws = streamClient(sim.wsUrl, clock, { silenceTimeoutMs: 30 * MINUTE, openTimeoutMs: HOUR });
    const closes = new Set<number>();
    ws.on('kline', (event: KlineEvent) => {
      if (event.closed && event.symbol === 'BTCUSDT') closes.add(event.candle.openTime);
    });
    await ws.setStreams({ symbols: ['BTCUSDT'], intervals: ['1h'] });
    await ws.start();

    await until(() => clock.now() >= started + 25 * HOUR, 'a simulated day and an hour', 60_000);

    // The server cut the connection that did not rotate, at the 24 h mark and not before.
    expect(bystander.closed).not.toBeNull();
    expect(bystander.closed!.code).toBe(1001);
    expect(bystander.closed!.at - started).toBeGreaterThanOrEqual(24 * HOUR);
    expect(sim.stats().connectionsRotated).toBe(1);
    // The client moved to a fresh connection on its own (23 h by default), with overlap: no reconnect, no gap.
    expect(sim.stats().connectionsTotal).toBeGreaterThanOrEqual(3);
    expect(ws.stats().reconnects).toBe(0);
    expect(ws.stats().connectionsOpen).toBe(1);
    const openTimes = [...closes].sort((a, b) => a - b);
    expect(openTimes.length).toBeGreaterThanOrEqual(24);
    for (let i = 1; i < openTimes.length; i++) expect(openTimes[i]! - openTimes[i - 1]!).toBe(intervalMs('1h'));
    expect(sim.stats().violations).toEqual([]);
  }, 90_000);

  it('the simulator cuts a connection that leaves a ping unanswered past a minute; the client answers every ping', async () => {
    const { sim, clock } = await simulator(60, { pingIntervalMs: 20_000 });
    const silent = await rawSocket(`${sim.wsUrl}/stream?streams=ethusdt@kline_1m`, clock, { autoPong: false });
    const ws = streamClient(sim.wsUrl, clock);
    await ws.setStreams({ symbols: ['BTCUSDT'], intervals: ['1m'] });
    await ws.start();
    const started = clock.now();

    await until(() => silent.closed !== null, 'the unanswered connection to be cut');
    expect(silent.pings).toBeGreaterThanOrEqual(1);
    // Terminated (no close frame) a minute after the first unanswered ping, which came 20 s in.
    expect(silent.closed!.code).toBe(1006);
    expect(sim.stats().violations).toEqual([expect.stringMatching(/^pong_timeout:/)]);

    // The client, pinged all along, keeps its one connection for several ping periods.
    await until(() => clock.now() >= started + 4 * MINUTE, 'four simulated minutes');
    expect(sim.stats().violations).toHaveLength(1);
    expect(sim.stats().connectionsTotal).toBe(2);
    expect(ws.stats().reconnects).toBe(0);
    expect(ws.stats().connectionsOpen).toBe(1);
  });

  it('the simulator refuses the 301st connection in 5 minutes', async () => {
    const { sim, clock } = await simulator(1);
    const url = `${sim.wsUrl}/stream?streams=btcusdt@ticker`;
    for (let batch = 0; batch < 6; batch++) await Promise.all(Array.from({ length: 50 }, () => rawSocket(url, clock)));
    expect(sim.stats().violations).toEqual([]);
    await expect(rawSocket(url, clock)).rejects.toThrow(/429/);
    expect(sim.stats().violations).toEqual([expect.stringMatching(/^connection_rate:/)]);
  });

  it('the client paces more than 300 new connections over 5 minutes instead of breaking the limit', async () => {
    // Symbols the simulator does not list are valid stream names that carry no data: 155 of them with
    // one kline stream and a ticker each, one stream per connection, is 310 connections to open.
    const speed = 60;
    const { sim, clock } = await simulator(speed, { pingIntervalMs: HOUR });
    const symbols = Array.from({ length: 155 }, (_, i) => `ZZ${i}USDT`);
    // Opening a few hundred sockets at once takes real time, which this clock multiplies by 60.
    const ws = streamClient(sim.wsUrl, clock, { streamsPerConnection: 1, silenceTimeoutMs: HOUR, openTimeoutMs: HOUR });
    await ws.setStreams({ symbols, intervals: ['1h'] });
    const started = clock.now();
    await ws.start();

    expect(ws.stats().connectionsOpen).toBe(310);
    expect(sim.stats().violations).toEqual([]);
    // The last ones had to wait for the first ones to leave the 5-minute window.
    expect(clock.now() - started).toBeGreaterThanOrEqual(5 * MINUTE);
    expect(sim.stats().connectionsTotal).toBe(310);
  }, 90_000);
});
