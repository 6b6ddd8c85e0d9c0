// A local Binance spot simulator (REST + streams on one loopback port) with fault switches, for tests and demos.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock, type Clock } from '../../src/clock.ts';
import { intervalMs, type Candle, type Interval } from '../../src/domain.ts';
import { LifecycleGuard } from '../../src/lifecycle.ts';
import { silentLogger, type Logger } from '../../src/logger.ts';
import type { Lifecycle, LifecycleState } from '../../src/ports.ts';
import { buildCatalog, specFor } from './catalog.ts';
import { FaultState, type RestFailure } from './faults.ts';
import { LimitRecorder } from './limits.ts';
import { MarketModel } from './market.ts';
import { RestHandler } from './rest.ts';
import { type StreamCadence, StreamServer } from './ws.ts';

export { parseStreamName } from './ws.ts';
export type { StreamCadence } from './ws.ts';
export type { ScriptedValues } from './market.ts';

export interface SimulatorOptions {
  /** Seed of every price walk; the same seed gives the same candles. Default 1. */
  seed?: number;
  clock?: Clock;
  /** A count of generated TRADING USDT pairs (plus a few other quotes and statuses), or an exact list. Default 50. */
  symbols?: number | string[];
  /** Sim-ms between updates of a forming kline (Binance: 2000). */
  klineUpdateMs?: number;
  /** Sim-ms between `@ticker` payloads (Binance: 1000). */
  tickerUpdateMs?: number;
  /**
   * `clock` (default): the two periods above are in the simulator's clock and every stream goes in one pass.
   * `real`: they are in real ms whatever the clock's speed, each stream on its own phase, as Binance paces them: on an
   * accelerated clock a client then parses production's message rate instead of the speed's multiple of it. Closes
   * are sent at each candle's end either way, in the same wire format.
   */
  cadence?: StreamCadence['pace'];
  /** Sim-ms between server pings (Binance: 20 s). */
  pingIntervalMs?: number;
  /** Sim-ms added before every REST response. */
  restLatencyMs?: number;
  /** 0 (default) picks a free port. */
  port?: number;
  logger?: Logger;
  /** Requests ignoring a 429's Retry-After before the simulated IP is banned (418). Default 10. */
  banAfterIgnored429?: number;
}

export interface SimulatorStats {
  connectionsOpen: number;
  connectionsTotal: number;
  /** Connections the server closed at the 24 h mark. */
  connectionsRotated: number;
  messagesSent: number;
  controlMessagesReceived: number;
  restRequests: number;
  weightUsedMax: number;
  /** Binance limits a client broke, `kind: detail`; kinds: rest_weight, rest_ban, message_rate, stream_limit, connection_rate, pong_timeout. */
  violations: string[];
  rateLimited: number;
  banned: number;
  faults: Record<string, number>;
}

export interface SimulatorFaults {
  dropConnections(which?: 'all' | number): void;
  stall(durationMs?: number): void;
  clearStall(): void;
  sendMalformed(count: number): void;
  sendUnknownEvents(count: number): void;
  setRestLatency(ms: number): void;
  failRest(count: number, status?: RestFailure): void;
  /** REST klines of this interval answer 503 for `durationMs` sim-ms (other intervals and endpoints are unaffected). */
  failKlines(interval: Interval, durationMs: number): void;
  rateLimit(count: number, retryAfterSec: number): void;
  ban(retryAfterSec: number): void;
  /** Send `serverShutdown` to every connection, then close them after `closeAfterMs` sim-ms (default 5 s). */
  serverShutdown(closeAfterMs?: number): void;
  setSymbolStatus(symbol: string, status: string): void;
  addSymbol(symbol: string): void;
}

export class BinanceSimulator implements Lifecycle {
  readonly clock: Clock;
  readonly faults: SimulatorFaults;
  private readonly lifecycle = new LifecycleGuard('BinanceSimulator');
  private readonly options: SimulatorOptions;
  private readonly logger: Logger;
  private readonly market: MarketModel;
  private readonly limits: LimitRecorder;
  private readonly faultState: FaultState;
  private readonly rest: RestHandler;
  private readonly streams: StreamServer;
  private readonly seed: number;
  private server: Server | null = null;
  private port = 0;

  constructor(options: SimulatorOptions = {}) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger();
    this.seed = options.seed ?? 1;
    this.market = new MarketModel(buildCatalog(options.symbols ?? 50, this.seed));
    this.limits = new LimitRecorder(this.clock, options.banAfterIgnored429 === undefined ? {} : { banAfterIgnored429: options.banAfterIgnored429 });
    this.faultState = new FaultState(this.clock, options.restLatencyMs ?? 0);
    const shared = { clock: this.clock, market: this.market, limits: this.limits, faults: this.faultState, logger: this.logger };
    this.rest = new RestHandler(shared);
    this.streams = new StreamServer({
      ...shared,
      cadence: { pace: options.cadence ?? 'clock', klineUpdateMs: options.klineUpdateMs ?? 2000, tickerUpdateMs: options.tickerUpdateMs ?? 1000 },
      pingIntervalMs: options.pingIntervalMs ?? 20_000,
    });
    this.faults = this.buildFaults();
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  get restUrl(): string {
    return `http://127.0.0.1:${this.listeningPort()}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.listeningPort()}`;
  }

  start(): Promise<void> {
    return this.lifecycle.start(async () => {
      const server = createServer((request, response) => this.rest.handle(request, response));
      server.on('upgrade', (request, socket, head) => this.streams.handleUpgrade(request, socket, head));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.options.port ?? 0, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
      this.server = server;
      this.port = (server.address() as AddressInfo).port;
      this.streams.start();
      this.logger.info({ event: 'sim_started', port: this.port, symbols: this.market.specs().length }, 'binance simulator started');
    });
  }

  stop(): Promise<void> {
    return this.lifecycle.stop(async () => {
      await this.streams.stop();
      this.rest.releaseHanging();
      const server = this.server;
      this.server = null;
      if (server) {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
      }
      this.logger.info({ event: 'sim_stopped' }, 'binance simulator stopped');
    });
  }

  /** TRADING USDT symbols, by 24 h quote volume, highest first (as a client ranking ticker/24hr would). */
  symbols(): string[] {
    const now = this.clock.now();
    return this.market
      .specs()
      .filter((spec) => spec.status === 'TRADING' && spec.quoteAsset === 'USDT')
      .map((spec) => ({ symbol: spec.symbol, volume: this.market.ticker(spec.symbol, now).quoteVolume }))
      .sort((a, b) => b.volume - a.volume)
      .map((entry) => entry.symbol);
  }

  /**
   * Pace the periodic stream payloads differently from the next pass on (see SimulatorOptions.cadence): the latency
   * benchmark alternates the two on one worker to measure both side by side.
   */
  setCadence(cadence: StreamCadence): void {
    this.streams.setCadence(cadence);
  }

  /** Final values of one candle, closed or not yet: what REST returns and the closing kline carries. */
  candle(symbol: string, interval: Interval, openTime: number): Candle {
    return this.market.candle(symbol, interval, openTime);
  }

  /** Closed candles with open times in [fromOpenTime, toOpenTime], oldest first. */
  candles(symbol: string, interval: Interval, fromOpenTime: number, toOpenTime: number): Candle[] {
    // Closed as the streams have told it: a pass stamped at its due time may have sent a close the clock has not quite reached.
    const now = Math.max(this.clock.now(), this.streams.sentUntil);
    const length = intervalMs(interval);
    const result: Candle[] = [];
    for (let open = fromOpenTime; open <= toOpenTime && open + length <= now; open += length) {
      result.push(this.market.candle(symbol, interval, open));
    }
    return result;
  }

  /** The candle as it stands now (the forming one shows its values so far). Addition to the brief's API. */
  formingCandle(symbol: string, interval: Interval, openTime: number): Candle {
    return this.market.forming(symbol, interval, openTime, this.clock.now());
  }

  scriptCandle(symbol: string, interval: Interval, openTime: number, values: Partial<Pick<Candle, 'open' | 'high' | 'low' | 'close' | 'volume'>>): void {
    this.market.script(symbol, interval, openTime, values);
  }

  stats(): SimulatorStats {
    return {
      connectionsOpen: this.streams.openConnections,
      connectionsTotal: this.streams.connectionsTotal,
      connectionsRotated: this.streams.connectionsRotated,
      messagesSent: this.streams.messagesSent,
      controlMessagesReceived: this.streams.controlMessagesReceived,
      restRequests: this.rest.requests,
      weightUsedMax: this.limits.weightUsedMax,
      violations: [...this.limits.violations],
      rateLimited: this.limits.rateLimited,
      banned: this.limits.banned,
      faults: { ...this.faultState.counts },
    };
  }

  resetStats(): void {
    this.streams.connectionsTotal = this.streams.openConnections;
    this.streams.connectionsRotated = 0;
    this.streams.messagesSent = 0;
    this.streams.controlMessagesReceived = 0;
    this.rest.requests = 0;
    this.limits.resetStats();
    this.faultState.resetCounts();
  }

  private listeningPort(): number {
    if (!this.server) throw new Error('BinanceSimulator: not started, no URL yet');
    return this.port;
  }

  private buildFaults(): SimulatorFaults {
    const faults = this.faultState;
    return {
      dropConnections: (which = 'all') => {
        faults.count('dropConnections');
        this.streams.dropConnections(which);
      },
      stall: (durationMs) => faults.stall(durationMs),
      clearStall: () => faults.clearStall(),
      sendMalformed: (count) => this.streams.sendMalformed(count),
      sendUnknownEvents: (count) => this.streams.sendUnknownEvents(count),
      setRestLatency: (ms) => {
        faults.restLatencyMs = ms;
      },
      failRest: (count, status = 500) => faults.failRest(count, status),
      failKlines: (interval, durationMs) => {
        faults.klinesFailingUntil.set(interval, this.clock.now() + durationMs);
      },
      rateLimit: (count, retryAfterSec) => {
        faults.count('rateLimit');
        this.limits.forceRateLimit(count, retryAfterSec);
      },
      ban: (retryAfterSec) => {
        faults.count('ban');
        this.limits.forceBan(retryAfterSec);
      },
      serverShutdown: (closeAfterMs = 5_000) => {
        faults.count('serverShutdown');
        this.streams.serverShutdown(closeAfterMs);
      },
      setSymbolStatus: (symbol, status) => {
        faults.count('setSymbolStatus');
        this.market.setStatus(symbol, status);
      },
      addSymbol: (symbol) => {
        faults.count('addSymbol');
        this.market.add(specFor(symbol.toUpperCase(), this.seed, this.market.specs().length));
      },
    };
  }
}
