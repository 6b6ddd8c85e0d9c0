// Binance combined streams for a set of symbols and intervals: sharding, live (un)subscribe, decoding, events.
import { EventEmitter } from 'node:events';
import type { Clock } from '../clock.ts';
import type { Candle, Interval, Ticker } from '../domain.ts';
import { ProtocolError } from '../errors.ts';
import { LifecycleGuard } from '../lifecycle.ts';
import type { Logger } from '../logger.ts';
import type { ConnectionStateEvent, Lifecycle, LifecycleState } from '../ports.ts';
import { StreamConnection } from './connection.ts';
import { decodeFrame } from './parse.ts';
import { DEFAULT_STREAMS_PER_CONNECTION, parseStreamName, planSubscriptions, streamsFor } from './subscriptions.ts';

export interface KlineEvent {
  symbol: string;
  interval: Interval;
  candle: Candle;
  closed: boolean;
  receivedAt: number;
}

export interface ReconnectedEvent {
  connectionId: string;
  symbols: string[];
  intervals: Interval[];
  disconnectedAt: number;
}

export interface WebSocketStats {
  messages: number;
  malformed: number;
  unknownEvents: number;
  reconnects: number;
  /** Frames dropped as exact copies of what an overlapping socket of the same connection delivered. */
  duplicates: number;
  /** Frames dropped because their socket was no longer wanted (stopped, or closed before it was adopted). */
  discarded: number;
  connectionsOpen: number;
  streams: number;
}

export interface BinanceWebSocketClientOptions {
  baseUrl: string;
  clock: Clock;
  logger: Logger;
  streamsPerConnection?: number;
  silenceTimeoutMs?: number;
  rotateAfterMs?: number;
  /** Worker-clock ms a socket may take to open before the attempt counts as failed. Default 10 s. */
  openTimeoutMs?: number;
  /**
   * New connections allowed per window. Binance allows 300 per 5 minutes per IP
   * (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams); we keep a margin.
   */
  connectPacing?: { maxPerWindow?: number; windowMs?: number };
}

type Events = {
  kline: [KlineEvent];
  ticker: [Ticker];
  connection: [ConnectionStateEvent];
  reconnected: [ReconnectedEvent];
};

const LOG_EVERY_MS = 10_000;

export class BinanceWebSocketClient extends EventEmitter<Events> implements Lifecycle {
  private readonly options: BinanceWebSocketClientOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly lifecycle = new LifecycleGuard('BinanceWebSocketClient');
  private readonly perConnection: number;
  private readonly connections: StreamConnection[] = [];
  private desired = { symbols: [] as string[], intervals: [] as Interval[] };
  private nextConnectionId = 1;
  /** Recent connection attempts, each stamped when it was granted and re-stamped when it settled. */
  private readonly connectAttempts: Array<{ at: number }> = [];
  private connectQueue: Promise<void> = Promise.resolve();
  private readonly counters = { messages: 0, malformed: 0, unknownEvents: 0 };
  private lastSkipLogAt = 0;
  private applying: Promise<void> = Promise.resolve();
  /** Dropped frames of connections already removed, so the totals never go backwards. */
  private readonly retiredDrops = { duplicates: 0, discarded: 0, reconnects: 0 };

  constructor(options: BinanceWebSocketClientOptions) {
    super();
    this.options = options;
    this.clock = options.clock;
    this.log = options.logger.child({ component: 'ws' });
    this.perConnection = options.streamsPerConnection ?? DEFAULT_STREAMS_PER_CONNECTION;
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  /** Opens the connections for the streams set so far (if any). */
  start(): Promise<void> {
    return this.lifecycle.start(() => this.apply());
  }

  stop(): Promise<void> {
    return this.lifecycle.stop(async () => {
      await this.applying.catch(() => undefined);
      const connections = this.connections.splice(0);
      await Promise.all(connections.map((connection) => this.retire(connection)));
    });
  }

  /** Diff-based: unchanged streams stay where they are; resolves when new connections are open. */
  setStreams(target: { symbols: string[]; intervals: Interval[] }): Promise<void> {
    this.desired = { symbols: [...target.symbols], intervals: [...target.intervals] };
    if (this.state !== 'running' && this.state !== 'starting') return Promise.resolve();
    return this.apply();
  }

  stats(): WebSocketStats {
    let streams = 0;
    let connectionsOpen = 0;
    let { duplicates, discarded, reconnects } = this.retiredDrops;
    for (const connection of this.connections) {
      streams += connection.streams.size;
      if (connection.isOpen) connectionsOpen++;
      reconnects += connection.reconnects;
      duplicates += connection.duplicates;
      discarded += connection.discarded;
    }
    return { ...this.counters, reconnects, duplicates, discarded, connectionsOpen, streams };
  }

  /** Connections expected to be open for the current streams. */
  connectionCount(): number {
    return this.connections.length;
  }

  /**
   * Decode one raw frame and emit what it carries. Public so the ingest benchmark can drive the
   * parse path without a socket. Malformed frames and unknown events are counted and skipped.
   */
  handleFrame(text: string, receivedAt: number = this.clock.now(), connectionId?: string): void {
    this.counters.messages++;
    let frame;
    try {
      frame = decodeFrame(text);
    } catch (error) {
      this.counters.malformed++;
      this.logSkip('malformed frame', error instanceof ProtocolError ? error.message : String(error));
      return;
    }
    switch (frame.kind) {
      case 'kline': {
        const { symbol, interval, candle, closed } = frame.kline;
        this.emit('kline', { symbol, interval, candle, closed, receivedAt });
        return;
      }
      case 'ticker':
        this.emit('ticker', frame.ticker);
        return;
      case 'control':
        if (frame.error !== undefined) this.log.warn({ event: 'stream_control_error', id: frame.id, error: frame.error }, 'control message rejected');
        return;
      case 'serverShutdown': {
        // https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams: the server
        // announces maintenance with `serverShutdown`; move to a new connection right away.
        const connection = this.connections.find((c) => c.id === connectionId);
        this.log.info({ event: 'stream_server_shutdown', connectionId }, 'server shutdown announced');
        if (connection) void connection.replace('serverShutdown');
        return;
      }
      case 'unknown':
        this.counters.unknownEvents++;
        this.logSkip('unknown event', frame.eventType);
        return;
    }
  }

  private logSkip(message: string, detail: string): void {
    const now = this.clock.now();
    if (now - this.lastSkipLogAt < LOG_EVERY_MS) return;
    this.lastSkipLogAt = now;
    this.log.debug({ event: 'stream_frame_skipped', detail, malformed: this.counters.malformed, unknownEvents: this.counters.unknownEvents }, message);
  }

  private apply(): Promise<void> {
    // Serialise changes so two quick setStreams calls cannot plan against the same snapshot.
    const run = this.applying.catch(() => undefined).then(() => this.applyNow());
    this.applying = run;
    return run;
  }

  private async applyNow(): Promise<void> {
    const desired = streamsFor(this.desired.symbols, this.desired.intervals);
    const plan = planSubscriptions(
      this.connections.map((connection) => connection.streams),
      desired,
      this.perConnection,
    );
    plan.changes.forEach((change, index) => {
      const connection = this.connections[index]!;
      if (change.unsubscribe.length > 0) connection.unsubscribe(change.unsubscribe);
      if (change.subscribe.length > 0) connection.subscribe(change.subscribe);
    });
    const emptied = this.connections.filter((connection) => connection.streams.size === 0);
    for (const connection of emptied) this.connections.splice(this.connections.indexOf(connection), 1);
    const opened = plan.newConnections.map((streams) => this.createConnection(streams));
    this.connections.push(...opened);
    const results = await Promise.allSettled([...emptied.map((connection) => this.retire(connection)), ...opened.map((connection) => connection.start())]);
    const failed = results.find((result) => result.status === 'rejected');
    if (!failed) return;
    // Failed connections keep retrying on their own; at boot the caller must know, later a log is enough.
    if (this.state === 'starting') throw failed.reason;
    this.log.warn({ event: 'stream_connect_failed', error: String((failed.reason as Error)?.message ?? failed.reason) }, 'stream connection failed, retrying');
  }

  /** Stop a connection that is no longer listed, keeping its counts in the totals so they never go backwards. */
  private async retire(connection: StreamConnection): Promise<void> {
    await connection.stop();
    this.retiredDrops.duplicates += connection.duplicates;
    this.retiredDrops.discarded += connection.discarded;
    this.retiredDrops.reconnects += connection.reconnects;
  }

  private createConnection(streams: string[]): StreamConnection {
    const id = `c${this.nextConnectionId++}`;
    const connection: StreamConnection = new StreamConnection({
      id,
      baseUrl: this.options.baseUrl,
      clock: this.clock,
      logger: this.log,
      streams,
      silenceTimeoutMs: this.options.silenceTimeoutMs ?? 10_000,
      rotateAfterMs: this.options.rotateAfterMs ?? 23 * 3_600_000,
      openTimeoutMs: this.options.openTimeoutMs ?? 10_000,
      connectGate: () => this.connectGate(),
      onFrame: (text, receivedAt, connectionId) => this.handleFrame(text, receivedAt, connectionId),
      onState: (event) => this.emit('connection', event),
      onReconnected: (disconnectedAt) => this.emit('reconnected', { connectionId: id, ...describeStreams(connection.streams), disconnectedAt }),
    });
    return connection;
  }

  /**
   * Paces new connections under the per-IP connection-rate limit, one at a time. Resolves with a
   * function to call once the attempt has settled (opened or failed): the server counts the attempt
   * somewhere between our grant and that moment, so the later stamp keeps our window from expiring
   * before the server's does. After a burst of slow opens, that difference alone would otherwise push
   * the next burst over the limit.
   */
  private connectGate(): Promise<() => void> {
    const maxPerWindow = this.options.connectPacing?.maxPerWindow ?? 250;
    const windowMs = this.options.connectPacing?.windowMs ?? 300_000;
    const turn = this.connectQueue.then(async () => {
      while (true) {
        const now = this.clock.now();
        let earliest = Number.POSITIVE_INFINITY;
        for (let i = this.connectAttempts.length - 1; i >= 0; i--) {
          const at = this.connectAttempts[i]!.at;
          if (at <= now - windowMs) this.connectAttempts.splice(i, 1);
          else earliest = Math.min(earliest, at);
        }
        if (this.connectAttempts.length < maxPerWindow) {
          const attempt = { at: now };
          this.connectAttempts.push(attempt);
          return () => {
            attempt.at = Math.max(attempt.at, this.clock.now());
          };
        }
        await this.clock.sleep(earliest + windowMs - now + 1);
      }
    });
    this.connectQueue = turn.then(() => undefined);
    return turn;
  }
}

function describeStreams(streams: ReadonlySet<string>): { symbols: string[]; intervals: Interval[] } {
  const symbols = new Set<string>();
  const intervals = new Set<Interval>();
  for (const name of streams) {
    const ref = parseStreamName(name);
    if (!ref) continue;
    symbols.add(ref.symbol);
    if (ref.kind === 'kline') intervals.add(ref.interval);
  }
  return { symbols: [...symbols], intervals: [...intervals] };
}
