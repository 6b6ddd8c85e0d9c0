import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { systemClock } from '../src/clock.ts';
import { silentLogger } from '../src/logger.ts';
import { BinanceWebSocketClient, type KlineEvent, type ReconnectedEvent } from '../src/market/BinanceWebSocketClient.ts';
import { cleanupsAfterEach, until } from './support/wait.ts';

// A bare loopback stream server for the connection-upkeep paths; data fidelity is covered against the simulator.
interface Peer {
  socket: WebSocket;
  url: string;
  closed: boolean;
  received: string[];
  /** Connections still open when this one arrived: > 0 proves an overlap. */
  openAtArrival: number;
}

const cleanups = cleanupsAfterEach();

/**
 * `onConnection` runs in the same tick as the upgrade, so what it sends can share a TCP packet with
 * the handshake response, as Binance may do.
 */
async function streamServer(
  onConnection?: (peer: Peer, peers: readonly Peer[]) => void,
  /** Holds each upgrade until it resolves. */
  admit: () => Promise<void> = () => Promise.resolve(),
): Promise<{ url: string; peers: Peer[] }> {
  const server = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    verifyClient: (_info, done) => {
      void admit().then(() => done(true));
    },
  });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const peers: Peer[] = [];
  server.on('connection', (socket, request) => {
    const peer: Peer = { socket, url: request.url ?? '', closed: false, received: [], openAtArrival: peers.filter((p) => !p.closed).length };
    socket.on('message', (data: Buffer) => peer.received.push(data.toString()));
    socket.on('close', () => {
      peer.closed = true;
    });
    peers.push(peer);
    onConnection?.(peer, peers);
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const client of server.clients) client.terminate();
        server.close(() => resolve());
      }),
  );
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, peers };
}

function klineFrame(symbol: string, openTime: number, closed: boolean): string {
  return JSON.stringify({
    stream: `${symbol.toLowerCase()}@kline_1m`,
    data: { e: 'kline', E: openTime + 1000, s: symbol, k: { t: openTime, T: openTime + 59_999, s: symbol, i: '1m', f: 1, L: 2, o: '1', c: '2', h: '3', l: '0.5', v: '10', n: 5, x: closed, q: '20', V: '4', Q: '8', B: '0' } },
  });
}

function client(url: string, options: Partial<ConstructorParameters<typeof BinanceWebSocketClient>[0]> = {}): BinanceWebSocketClient {
  const ws = new BinanceWebSocketClient({ baseUrl: url, clock: systemClock, logger: silentLogger(), ...options });
  cleanups.push(() => ws.stop());
  return ws;
}

describe('BinanceWebSocketClient', () => {
  it('opens combined streams, emits klines, and counts malformed frames and unknown events without dying', async () => {
    const server = await streamServer();
    const ws = client(server.url);
    const klines: KlineEvent[] = [];
    ws.on('kline', (event) => klines.push(event));
    await ws.setStreams({ symbols: ['BTCUSDT', 'ETHUSDT'], intervals: ['1m'] });
    await ws.start();
    await until(() => server.peers.length === 1, 'a connection');
    expect(server.peers[0]!.url).toBe('/stream?streams=btcusdt@ticker/btcusdt@kline_1m/ethusdt@ticker/ethusdt@kline_1m');
    const socket = server.peers[0]!.socket;
    socket.send('{oops');
    socket.send(JSON.stringify({ stream: 'btcusdt@depth', data: { e: 'depthUpdate' } }));
    socket.send(JSON.stringify({ stream: 'btcusdt@kline_1m', data: { e: 'kline', k: { i: '1m' } } }));
    socket.send(klineFrame('BTCUSDT', 1_700_000_040_000, true));
    await until(() => klines.length === 1, 'the kline');
    expect(klines[0]).toMatchObject({ symbol: 'BTCUSDT', interval: '1m', closed: true, candle: { close: 2, trades: 5 } });
    expect(ws.stats()).toMatchObject({ messages: 4, malformed: 2, unknownEvents: 1, connectionsOpen: 1, streams: 4 });
  });

  it('shards streams and changes them live with paced SUBSCRIBE/UNSUBSCRIBE', async () => {
    const server = await streamServer();
    const ws = client(server.url, { streamsPerConnection: 4 });
    await ws.setStreams({ symbols: ['AUSDT', 'BUSDT', 'CUSDT'], intervals: ['1m'] });
    await ws.start();
    await until(() => server.peers.length === 2, 'two connections');
    await ws.setStreams({ symbols: ['AUSDT', 'CUSDT', 'DUSDT'], intervals: ['1m'] });
    const first = server.peers[0]!;
    await until(() => first.received.length >= 2, 'control messages');
    const messages = first.received.map((text) => JSON.parse(text) as { method: string; params: string[] });
    expect(messages.find((m) => m.method === 'UNSUBSCRIBE')?.params).toEqual(['busdt@ticker', 'busdt@kline_1m']);
    expect(messages.find((m) => m.method === 'SUBSCRIBE')?.params).toEqual(['dusdt@ticker', 'dusdt@kline_1m']);
    expect(server.peers.length).toBe(2);
    expect(ws.stats().streams).toBe(6);
  });

  it('reconnects after a drop with the same streams and reports what may have been missed', async () => {
    const server = await streamServer();
    const ws = client(server.url);
    const reconnected: ReconnectedEvent[] = [];
    ws.on('reconnected', (event) => reconnected.push(event));
    await ws.setStreams({ symbols: ['BTCUSDT'], intervals: ['1m', '5m'] });
    await ws.start();
    const droppedAt = Date.now();
    server.peers[0]!.socket.terminate();
    await until(() => reconnected.length === 1, 'reconnected');
    expect(server.peers[1]!.url).toBe(server.peers[0]!.url);
    expect(reconnected[0]).toMatchObject({ symbols: ['BTCUSDT'], intervals: ['1m', '5m'] });
    expect(reconnected[0]!.disconnectedAt).toBeGreaterThanOrEqual(droppedAt - 5);
    expect(ws.stats()).toMatchObject({ reconnects: 1, connectionsOpen: 1 });
  });

  it('treats a silent connection as dead and replaces it', async () => {
    const server = await streamServer();
    // A second of silence, frames every 100 ms: a loaded machine that holds this process up for a few hundred ms between two
    // frames does not make a live connection look silent (with 300 ms, one such hold-up was enough).
    const ws = client(server.url, { silenceTimeoutMs: 1000 });
    const reconnected: ReconnectedEvent[] = [];
    ws.on('reconnected', (event) => reconnected.push(event));
    await ws.setStreams({ symbols: ['BTCUSDT'], intervals: ['1m'] });
    await ws.start();
    // Frames keep it alive past the timeout...
    const keepAlive = setInterval(() => server.peers[0]?.socket.send('{"result":null,"id":0}'), 100);
    await until(() => false, 'nothing', 2000).catch(() => undefined);
    clearInterval(keepAlive);
    expect(server.peers.length).toBe(1);
    // ...then silence gets it replaced.
    await until(() => reconnected.length === 1 && server.peers.length === 2, 'a replacement connection');
    expect(server.peers[0]!.closed).toBe(true);
  });

  it('moves to a new connection before closing the old one on serverShutdown', async () => {
    const server = await streamServer();
    const ws = client(server.url, { rotateAfterMs: 60_000 });
    const reconnected: ReconnectedEvent[] = [];
    ws.on('reconnected', (event) => reconnected.push(event));
    await ws.setStreams({ symbols: ['BTCUSDT'], intervals: ['1m'] });
    await ws.start();
    const old = server.peers[0]!;
    old.socket.send(JSON.stringify({ e: 'serverShutdown', E: Date.now() }));
    await until(() => old.closed && server.peers.length === 2, 'the switch');
    expect(server.peers[1]!.openAtArrival).toBe(1);
    expect(reconnected).toEqual([]);
    expect(ws.stats().connectionsOpen).toBe(1);
  });

  it('rotates a long-lived connection with overlap and no reported loss', async () => {
    const server = await streamServer();
    const ws = client(server.url, { rotateAfterMs: 300 });
    const reconnected: ReconnectedEvent[] = [];
    ws.on('reconnected', (event) => reconnected.push(event));
    await ws.setStreams({ symbols: ['BTCUSDT'], intervals: ['1m'] });
    await ws.start();
    await until(() => server.peers.length >= 3 && server.peers[0]!.closed && server.peers[1]!.closed, 'two rotations');
    expect(server.peers.filter((peer) => !peer.closed).length).toBe(1);
    expect(server.peers.slice(1).every((peer) => peer.openAtArrival === 1)).toBe(true);
    expect(reconnected).toEqual([]);
  });

  describe('frames sent right after the upgrade', () => {
    const T0 = 1_700_000_000_000;
    const opens = (from: number, count: number): number[] => Array.from({ length: count }, (_, i) => T0 + (from + i) * 60_000);
    const sendKlines = (peer: Peer, openTimes: readonly number[]): void => {
      for (const openTime of openTimes) peer.socket.send(klineFrame('BTCUSDT', openTime, true));
    };
    const received = (klines: KlineEvent[]): number[] => klines.map((event) => event.candle.openTime);

    it('delivers, in order, what a first connection receives before the client has taken it on', async () => {
      const server = await streamServer((peer) => sendKlines(peer, opens(0, 10)));
      const ws = client(server.url);
      const klines: KlineEvent[] = [];
      ws.on('kline', (event) => klines.push(event));
      await ws.setStreams({ symbols: ['BTCUSDT'], intervals: ['1m'] });
      await ws.start();
      // A marker sent once the client holds the socket: when it has arrived, so has everything before it.
      sendKlines(server.peers[0]!, opens(10, 1));
      await until(() => received(klines).includes(opens(10, 1)[0]!), 'the marker');
      expect(received(klines)).toEqual(opens(0, 11));
      expect(ws.stats()).toMatchObject({ messages: 11, duplicates: 0, discarded: 0 });
    });

    it('delivers, in order, what a reconnected socket receives before the client has taken it on', async () => {
      const server = await streamServer((peer, peers) => {
        if (peers.length === 2) sendKlines(peer, opens(0, 10));
      });
      const ws = client(server.url);
      const klines: KlineEvent[] = [];
      const reconnected: ReconnectedEvent[] = [];
      ws.on('kline', (event) => klines.push(event));
      ws.on('reconnected', (event) => reconnected.push(event));
      await ws.setStreams({ symbols: ['BTCUSDT'], intervals: ['1m'] });
      await ws.start();
      server.peers[0]!.socket.terminate();
      await until(() => reconnected.length === 1, 'reconnected');
      sendKlines(server.peers[1]!, opens(10, 1));
      await until(() => received(klines).includes(opens(10, 1)[0]!), 'the marker');
      expect(received(klines)).toEqual(opens(0, 11));
      expect(ws.stats()).toMatchObject({ reconnects: 1, duplicates: 0, discarded: 0 });
    });

    it('keeps each frame once while an old and a new socket overlap, including one only the old socket carried', async () => {
      // Both sockets get the same five events the moment the new one is up; the old one also has one the new one missed.
      const server = await streamServer((peer, peers) => {
        if (peers.length !== 2) return;
        sendKlines(peer, opens(0, 5));
        sendKlines(peers[0]!, opens(0, 5));
        sendKlines(peers[0]!, opens(5, 1));
      });
      const ws = client(server.url, { rotateAfterMs: 60_000 });
      const klines: KlineEvent[] = [];
      ws.on('kline', (event) => klines.push(event));
      await ws.setStreams({ symbols: ['BTCUSDT'], intervals: ['1m'] });
      await ws.start();
      const old = server.peers[0]!;
      old.socket.send(JSON.stringify({ e: 'serverShutdown', E: Date.now() }));
      await until(() => old.closed && server.peers.length === 2, 'the switch');
      sendKlines(server.peers[1]!, opens(6, 1));
      await until(() => received(klines).includes(opens(6, 1)[0]!), 'the marker');
      expect(received(klines)).toEqual(opens(0, 7));
      expect(ws.stats()).toMatchObject({ duplicates: 5, connectionsOpen: 1 });
    });

    it('subscribes a replacement socket to streams added while it was opening', async () => {
      let upgrades = 0;
      let release = (): void => undefined;
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      // The first upgrade goes through; the replacement's waits until the streams have changed underneath it.
      const server = await streamServer(undefined, () => (++upgrades === 1 ? Promise.resolve() : held));
      const ws = client(server.url, { rotateAfterMs: 60_000 });
      await ws.setStreams({ symbols: ['BTCUSDT'], intervals: ['1m'] });
      await ws.start();
      server.peers[0]!.socket.send(JSON.stringify({ e: 'serverShutdown', E: Date.now() }));
      await until(() => upgrades === 2, 'the replacement upgrade');
      await ws.setStreams({ symbols: ['BTCUSDT', 'ETHUSDT'], intervals: ['1m'] });
      release();
      await until(() => server.peers.length === 2 && server.peers[1]!.received.length > 0, 'a control message on the replacement');
      expect(server.peers[1]!.url).not.toContain('ethusdt');
      expect(JSON.parse(server.peers[1]!.received[0]!)).toMatchObject({ method: 'SUBSCRIBE', params: ['ethusdt@ticker', 'ethusdt@kline_1m'] });
    });
  });
});
