// The simulator's stream side: combined and raw Binance streams, live (un)subscription, keep-alive and limits.
import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Clock, TimerHandle } from '../../src/clock.ts';
import { candleOpenTimeAt, intervalMs, isInterval, type Interval } from '../../src/domain.ts';
import type { Logger } from '../../src/logger.ts';
import type { FaultState } from './faults.ts';
import {
  MessageRate,
  WS_CONNECTION_LIFETIME_MS,
  WS_PONG_TIMEOUT_MS,
  WS_STREAMS_PER_CONNECTION,
  type LimitRecorder,
} from './limits.ts';
import type { MarketModel } from './market.ts';
import { hashString } from './random.ts';
import { controlError, klineEvent, tickerEvent } from './wire.ts';

/**
 * How the periodic payloads (forming klines, `@ticker`) are paced; candle closes go at each candle's end either way.
 * - `clock`: every `klineUpdateMs` / `tickerUpdateMs` of the simulator's clock, every stream in the same pass. On an
 *   accelerated clock the message rate grows with the speed.
 * - `real`: every `klineUpdateMs` / `tickerUpdateMs` of REAL time whatever the clock's speed, each stream on its own
 *   fixed phase within its period, as Binance's streams reach a client (a steady trickle, not one burst per period):
 *   a client on a clock ×20 hears production's message rate, while its candles still close every 3 s.
 */
export interface StreamCadence {
  pace: 'clock' | 'real';
  klineUpdateMs: number;
  tickerUpdateMs: number;
}

export interface StreamDeps {
  clock: Clock;
  market: MarketModel;
  limits: LimitRecorder;
  faults: FaultState;
  logger: Logger;
  cadence: StreamCadence;
  pingIntervalMs: number;
}

type StreamKind = { kind: 'kline'; symbol: string; interval: Interval } | { kind: 'ticker'; symbol: string } | { kind: 'silent' };

/** Whether a stream's periodic payload is due in the pass at `now` (the previous pass ran at `last`). */
type Due = (stream: string, kind: 'kline' | 'ticker') => boolean;

interface Connection {
  id: number;
  socket: WebSocket;
  combined: boolean;
  streams: Set<string>;
  /** Per kline stream, the open time of the candle this connection is being sent. */
  klineOpen: Map<string, number>;
  openedAt: number;
  lastPingAt: number;
  awaitingPongSince: number | null;
  rate: MessageRate;
}

/** Stream names Binance serves; only klines and tickers carry data here, the others are accepted and silent. */
const STREAM_NAME = /^([a-z0-9]+)@(kline_[0-9]+[smhdwM]|ticker|miniTicker|aggTrade|trade|bookTicker|avgPrice|depth(?:5|10|20)?(?:@100ms)?)$/;
const METHODS = '`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`';
/** Finals re-sent at most for this many candles closed while a connection was not being served. */
const MAX_CATCH_UP_CLOSES = 5;

export function parseStreamName(name: string): StreamKind | null {
  const match = STREAM_NAME.exec(name);
  if (!match) return null;
  const symbol = match[1]!.toUpperCase();
  const type = match[2]!;
  if (type === 'ticker') return { kind: 'ticker', symbol };
  if (type.startsWith('kline_')) {
    const interval = type.slice('kline_'.length);
    return isInterval(interval) ? { kind: 'kline', symbol, interval } : { kind: 'silent' };
  }
  return { kind: 'silent' };
}

export class StreamServer {
  messagesSent = 0;
  controlMessagesReceived = 0;
  connectionsTotal = 0;
  connectionsRotated = 0;
  private readonly deps: StreamDeps;
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly connections = new Map<number, Connection>();
  private readonly shutdownTimers = new Set<TimerHandle>();
  private nextConnectionId = 1;
  private tickTimer: TimerHandle | undefined;
  private lastTickAt = 0;
  private cadence: StreamCadence;
  /** Per stream, its phase within a real-paced period (clock ms), fixed by its name. */
  private readonly phases = new Map<string, number>();
  private readonly parsedStreams = new Map<string, StreamKind | null>();
  private stalledLastTick = false;
  private running = false;

  constructor(deps: StreamDeps) {
    this.deps = deps;
    this.cadence = { ...deps.cadence };
  }

  /** Change the pacing of the periodic payloads from the next pass on (a benchmark compares both on one client). */
  setCadence(cadence: StreamCadence): void {
    this.cadence = { ...cadence };
    this.deps.clock.clearTimeout(this.tickTimer);
    this.scheduleTick();
  }

  get openConnections(): number {
    return this.connections.size;
  }

  start(): void {
    this.running = true;
    this.lastTickAt = this.deps.clock.now();
    this.scheduleTick();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.deps.clock.clearTimeout(this.tickTimer);
    for (const timer of this.shutdownTimers) this.deps.clock.clearTimeout(timer);
    this.shutdownTimers.clear();
    for (const connection of this.connections.values()) connection.socket.terminate();
    this.connections.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(request.url ?? '/', 'ws://simulator');
    let streams: string[];
    let combined: boolean;
    if (url.pathname === '/stream' || url.pathname === '/stream/') {
      combined = true;
      streams = (url.searchParams.get('streams') ?? '').split('/').filter(Boolean);
    } else if (url.pathname === '/ws' || url.pathname.startsWith('/ws/')) {
      combined = false;
      streams = url.pathname.slice('/ws'.length).split('/').filter(Boolean);
    } else {
      return reject(socket, 404, '');
    }
    if (!this.deps.limits.admitConnection()) return reject(socket, 429, controlError(-1003, 'Too many new connections', null));
    if (streams.length > WS_STREAMS_PER_CONNECTION) {
      this.deps.limits.record('stream_limit', `${streams.length} streams requested at connect`);
      return reject(socket, 400, controlError(2, 'Invalid request: too many streams', null));
    }
    const invalid = streams.find((stream) => parseStreamName(stream) === null);
    if (invalid !== undefined) return reject(socket, 400, controlError(2, `Invalid request: invalid stream name \`${invalid}\``, null));
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, streams, combined));
  }

  /** Abruptly destroy sockets, no close frame: 'all' or the index among open connections (oldest first). */
  dropConnections(which: 'all' | number): void {
    const open = [...this.connections.values()];
    const victims = which === 'all' ? open : open.slice(which, which + 1);
    for (const connection of victims) {
      connection.socket.terminate();
      this.deps.faults.count('connectionsDropped');
    }
  }

  /** Invalid JSON, wrong types and missing fields, in turn, `count` frames to every connection. */
  sendMalformed(count: number): void {
    const now = this.deps.clock.now();
    for (const connection of this.connections.values()) {
      const stream = this.klineStreamOf(connection);
      const parsed = parseStreamName(stream);
      const symbol = parsed && parsed.kind === 'kline' ? parsed.symbol : 'BTCUSDT';
      const interval = parsed && parsed.kind === 'kline' ? parsed.interval : '1m';
      const candle = this.deps.market.has(symbol)
        ? this.deps.market.forming(symbol, interval, candleOpenTimeAt(interval, now), now)
        : null;
      for (let i = 0; i < count; i++) {
        let data: string;
        const variant = i % 3;
        if (variant === 0 || !candle) data = '{"e":"kline","E":' + now + ',"s":"' + symbol + '","k":{"t":';
        else {
          const event = klineEvent(symbol, interval, candle, false, now) as { k: Record<string, unknown> };
          if (variant === 1) Object.assign(event.k, { t: 'soon', o: 1.5, x: 'no' });
          else for (const field of ['c', 'h', 'x']) delete event.k[field];
          data = JSON.stringify(event);
        }
        this.send(connection, stream, data);
        this.deps.faults.count('malformedFrames');
      }
    }
  }

  /** Well-formed events of types the client has never seen. */
  sendUnknownEvents(count: number): void {
    const now = this.deps.clock.now();
    const types = ['marketStatus', 'priceBand', 'listingUpdate'];
    for (const connection of this.connections.values()) {
      const symbol = (this.klineStreamOf(connection).split('@')[0] ?? 'btcusdt').toLowerCase();
      for (let i = 0; i < count; i++) {
        const type = types[i % types.length]!;
        this.send(connection, `${symbol}@${type}`, JSON.stringify({ e: type, E: now, s: symbol.toUpperCase(), v: i }));
        this.deps.faults.count('unknownEvents');
      }
    }
  }

  /** Binance's `serverShutdown` event to every connection, then close them after `closeAfterMs`. */
  serverShutdown(closeAfterMs: number): void {
    const data = JSON.stringify({ e: 'serverShutdown', E: this.deps.clock.now() });
    const targets = [...this.connections.values()];
    for (const connection of targets) this.send(connection, '!serverShutdown', data);
    const timer = this.deps.clock.setTimeout(() => {
      this.shutdownTimers.delete(timer);
      for (const connection of targets) connection.socket.close(1001, 'server shutdown');
    }, closeAfterMs);
    this.shutdownTimers.add(timer);
  }

  private klineStreamOf(connection: Connection): string {
    for (const stream of connection.streams) if (parseStreamName(stream)?.kind === 'kline') return stream;
    return 'btcusdt@kline_1m';
  }

  private accept(socket: WebSocket, streams: string[], combined: boolean): void {
    const now = this.deps.clock.now();
    const connection: Connection = {
      id: this.nextConnectionId++,
      socket,
      combined,
      streams: new Set(),
      klineOpen: new Map(),
      openedAt: now,
      lastPingAt: now,
      awaitingPongSince: null,
      rate: new MessageRate(),
    };
    this.subscribe(connection, streams, now);
    this.connections.set(connection.id, connection);
    this.connectionsTotal++;
    socket.on('message', (data, isBinary) => this.onMessage(connection, isBinary ? '' : data.toString()));
    socket.on('ping', () => this.countIncoming(connection));
    socket.on('pong', () => {
      connection.awaitingPongSince = null;
      this.countIncoming(connection);
    });
    socket.on('close', () => this.connections.delete(connection.id));
    socket.on('error', (error) => this.deps.logger.debug({ event: 'sim_ws_error', err: error, connection: connection.id }, 'simulator socket error'));
  }

  private subscribe(connection: Connection, streams: string[], now: number): void {
    for (const stream of streams) {
      if (connection.streams.has(stream)) continue;
      connection.streams.add(stream);
      const parsed = parseStreamName(stream);
      if (parsed?.kind === 'kline') connection.klineOpen.set(stream, candleOpenTimeAt(parsed.interval, now));
    }
  }

  /** Binance counts pings, pongs and control messages against 5 per second, and disconnects past it. */
  private countIncoming(connection: Connection): boolean {
    if (!connection.rate.exceeded(this.deps.clock.now())) return true;
    if (connection.socket.readyState === WebSocket.OPEN) {
      this.deps.limits.record('message_rate', `connection ${connection.id} sent more than 5 messages in one second`);
      connection.socket.close(1008, 'Too many messages');
    }
    return false;
  }

  private onMessage(connection: Connection, text: string): void {
    this.controlMessagesReceived++;
    if (!this.countIncoming(connection)) return;
    const reply = this.control(connection, text);
    if (!this.deps.faults.isStalled()) this.sendRaw(connection, reply);
  }

  /** https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#live-subscribingunsubscribing-to-streams */
  private control(connection: Connection, text: string): string {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return controlError(3, 'Invalid JSON: expected value at line 1 column 1', null);
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      return controlError(2, 'Invalid request: expected a JSON object', null);
    }
    const { method, params, id } = message as { method?: unknown; params?: unknown; id?: unknown };
    const validId = id === null || (typeof id === 'number' && Number.isInteger(id)) || (typeof id === 'string' && /^[A-Za-z0-9]{1,36}$/.test(id));
    if (!validId) return controlError(2, 'Invalid request: request ID must be an unsigned integer', null);
    if (method === undefined) return controlError(2, 'Invalid request: missing field `method` at line 1 column 1', id);
    const result = (value: unknown) => JSON.stringify({ result: value, id });
    switch (method) {
      case 'SUBSCRIBE':
      case 'UNSUBSCRIBE': {
        if (!Array.isArray(params) || !params.every((param) => typeof param === 'string')) {
          return controlError(2, 'Invalid request: params must be a list of stream names', id);
        }
        const invalid = (params as string[]).find((stream) => parseStreamName(stream) === null);
        if (invalid !== undefined) return controlError(2, `Invalid request: invalid stream name \`${invalid}\``, id);
        if (method === 'UNSUBSCRIBE') {
          for (const stream of params as string[]) {
            connection.streams.delete(stream);
            connection.klineOpen.delete(stream);
          }
          return result(null);
        }
        const added = new Set((params as string[]).filter((stream) => !connection.streams.has(stream)));
        if (connection.streams.size + added.size > WS_STREAMS_PER_CONNECTION) {
          this.deps.limits.record('stream_limit', `connection ${connection.id} asked for ${connection.streams.size + added.size} streams`);
          return controlError(2, `Invalid request: too many streams, at most ${WS_STREAMS_PER_CONNECTION} per connection`, id);
        }
        this.subscribe(connection, [...added], this.deps.clock.now());
        return result(null);
      }
      case 'LIST_SUBSCRIPTIONS':
        return result([...connection.streams]);
      case 'SET_PROPERTY':
      case 'GET_PROPERTY': {
        const list = Array.isArray(params) ? params : [];
        if (typeof list[0] !== 'string') return controlError(2, 'Invalid request: property name must be a string', id);
        if (list[0] !== 'combined') return controlError(0, 'Unknown property', id);
        if (method === 'GET_PROPERTY') return result(connection.combined);
        if (typeof list[1] !== 'boolean') return controlError(1, 'Invalid value type: expected Boolean', id);
        connection.combined = list[1];
        return result(null);
      }
      default:
        return controlError(2, `Invalid request: unknown variant \`${String(method)}\`, expected one of ${METHODS} at line 1 column 28`, id);
    }
  }

  private scheduleTick(): void {
    if (!this.running) return;
    const now = this.deps.clock.now();
    const { pace, klineUpdateMs, tickerUpdateMs } = this.cadence;
    // Real pacing spreads the streams over their periods: a pass every clock second (closes land on one) sends the
    // streams whose phase it crossed.
    const next = pace === 'real' ? nextMultiple(now, 1000) : Math.min(nextMultiple(now, klineUpdateMs), nextMultiple(now, tickerUpdateMs), nextMultiple(now, 1000));
    this.tickTimer = this.deps.clock.setTimeout(() => this.tick(next), next - now);
  }

  /** Which streams' periodic payloads the pass at `now` sends. */
  private dueIn(last: number, now: number): Due {
    const { pace, klineUpdateMs, tickerUpdateMs } = this.cadence;
    if (pace === 'clock') {
      const klineDue = Math.floor(now / klineUpdateMs) > Math.floor(last / klineUpdateMs);
      const tickerDue = Math.floor(now / tickerUpdateMs) > Math.floor(last / tickerUpdateMs);
      return (_stream, kind) => (kind === 'kline' ? klineDue : tickerDue);
    }
    // Periods in real ms, so in clock ms they stretch with the clock's speed.
    const speed = this.deps.clock.speed;
    return (stream, kind) => {
      const period = Math.max(1, Math.round((kind === 'kline' ? klineUpdateMs : tickerUpdateMs) * speed));
      const phase = this.phaseOf(stream) % period;
      return Math.floor((now - phase) / period) > Math.floor((last - phase) / period);
    };
  }

  /** parseStreamName, remembered: a pass runs every clock second over every stream. */
  private parsed(stream: string): StreamKind | null {
    let parsed = this.parsedStreams.get(stream);
    if (parsed === undefined) {
      parsed = parseStreamName(stream);
      if (this.parsedStreams.size >= 100_000) this.parsedStreams.clear();
      this.parsedStreams.set(stream, parsed);
    }
    return parsed;
  }

  private phaseOf(stream: string): number {
    let phase = this.phases.get(stream);
    if (phase === undefined) {
      // A hash of the name: the same stream keeps its phase across connections and runs.
      phase = hashString(stream);
      this.phases.set(stream, phase);
    }
    return phase;
  }

  /**
   * The time of the last pass: every close up to it has been sent as final, although the clock may
   * still be a hair behind it (a pass takes its due time when its timer fires early).
   */
  get sentUntil(): number {
    return this.lastTickAt;
  }

  /** One pass over every connection: lifetime, keep-alive, candle closes and the periodic payloads. */
  private tick(due: number): void {
    // Timers may fire a hair early on an accelerated clock; the due time is the tick's time.
    const now = Math.max(this.deps.clock.now(), due);
    try {
      if (this.deps.faults.isStalled()) {
        this.stalledLastTick = true;
        return;
      }
      if (this.stalledLastTick) {
        // Nothing was sent during the stall, pings included; do not blame the client for missing pongs.
        for (const connection of this.connections.values()) {
          connection.lastPingAt = now;
          connection.awaitingPongSince = null;
        }
        this.stalledLastTick = false;
      }
      const due = this.dueIn(this.lastTickAt, now);
      this.lastTickAt = now;
      const payloads = new Map<string, string>();
      for (const connection of this.connections.values()) {
        if (connection.socket.readyState !== WebSocket.OPEN) continue;
        if (!this.keepAlive(connection, now)) continue;
        for (const stream of connection.streams) this.serve(connection, stream, now, due, payloads);
      }
    } catch (error) {
      this.deps.logger.error({ event: 'sim_tick_failed', err: error }, 'simulator stream tick failed');
    } finally {
      this.scheduleTick();
    }
  }

  private keepAlive(connection: Connection, now: number): boolean {
    if (now - connection.openedAt >= WS_CONNECTION_LIFETIME_MS) {
      // Binance: "A single connection is only valid for 24 hours; expect to be disconnected at the 24 hour mark."
      this.connectionsRotated++;
      connection.socket.close(1001, 'connection lifetime exceeded');
      return false;
    }
    if (connection.awaitingPongSince !== null && now - connection.awaitingPongSince > WS_PONG_TIMEOUT_MS) {
      this.deps.limits.record('pong_timeout', `connection ${connection.id} did not answer a ping within a minute`);
      connection.socket.terminate();
      return false;
    }
    if (now - connection.lastPingAt >= this.deps.pingIntervalMs) {
      connection.socket.ping();
      connection.lastPingAt = now;
      connection.awaitingPongSince ??= now;
    }
    return true;
  }

  private serve(connection: Connection, stream: string, now: number, due: Due, payloads: Map<string, string>): void {
    const parsed = this.parsed(stream);
    if (!parsed || parsed.kind === 'silent') return;
    const { market } = this.deps;
    // A symbol that is not TRADING (break, halt, delisted) has no trades, so its streams fall silent.
    if (market.spec(parsed.symbol)?.status !== 'TRADING') return;
    if (parsed.kind === 'ticker') {
      if (!due(stream, 'ticker')) return;
      this.send(connection, stream, cached(payloads, `${stream}|t`, () => JSON.stringify(tickerEvent(market.ticker(parsed.symbol, now)))));
      return;
    }
    const { symbol, interval } = parsed;
    const length = intervalMs(interval);
    const current = candleOpenTimeAt(interval, now);
    const previous = connection.klineOpen.get(stream) ?? current;
    if (current > previous) {
      for (let open = Math.max(previous, current - MAX_CATCH_UP_CLOSES * length); open < current; open += length) {
        const data = cached(payloads, `${stream}|${open}`, () => JSON.stringify(klineEvent(symbol, interval, market.candle(symbol, interval, open), true, now)));
        this.send(connection, stream, data);
      }
      connection.klineOpen.set(stream, current);
    }
    if (due(stream, 'kline')) {
      this.send(connection, stream, cached(payloads, `${stream}|u`, () => JSON.stringify(klineEvent(symbol, interval, market.forming(symbol, interval, current, now), false, now))));
    }
  }

  private send(connection: Connection, stream: string, data: string): void {
    this.sendRaw(connection, connection.combined ? `{"stream":${JSON.stringify(stream)},"data":${data}}` : data);
  }

  private sendRaw(connection: Connection, frame: string): void {
    if (connection.socket.readyState !== WebSocket.OPEN) return;
    connection.socket.send(frame);
    this.messagesSent++;
  }
}

function cached(payloads: Map<string, string>, key: string, build: () => string): string {
  let payload = payloads.get(key);
  if (payload === undefined) {
    payload = build();
    payloads.set(key, payload);
  }
  return payload;
}

function nextMultiple(time: number, step: number): number {
  return (Math.floor(time / step) + 1) * step;
}

function reject(socket: Duplex, status: number, body: string): void {
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  socket.once('finish', () => socket.destroy());
}
