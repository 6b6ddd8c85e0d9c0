// The composition root: every adapter wired to the core from one Config. main.ts runs what it builds; tests build the same worker in-process.
import type { Config } from './config.ts';
import { createLogger, type Logger } from './logger.ts';
import { BinanceRestClient } from './market/BinanceRestClient.ts';
import { BinanceWebSocketClient } from './market/BinanceWebSocketClient.ts';
import { MarketData } from './market/MarketData.ts';
import { MarketStore } from './market/MarketStore.ts';
import { Universe } from './market/Universe.ts';
import { EventLoopMonitor } from './ops/EventLoopMonitor.ts';
import { type MetricsSources, WorkerMetrics } from './ops/metrics.ts';
import { OpsServer } from './ops/OpsServer.ts';
import { StatsReporter } from './ops/StatsReporter.ts';
import { Orchestrator } from './Orchestrator.ts';
import { KlineCache } from './replay/KlineCache.ts';
import { LiveTickGate } from './replay/LiveTickGate.ts';
import { ReplayService } from './replay/ReplayService.ts';
import { StoreCandles } from './replay/StoreCandles.ts';
import { Screener } from './screening/Screener.ts';
import { createWorkerClient } from './database/client.ts';
import { ReplayRequests } from './database/ReplayRequests.ts';
import { StateSynchronizer } from './database/StateSynchronizer.ts';
import { WORKER_VERSION } from './version.ts';

/** /health fails when the event loop has not run for this long: the worker is alive but not working. */
const HEALTH_MAX_STALL_MS = 5_000;

/**
 * Replay on request (src/replay/ReplayService.ts) yields to live ticks: a replay candle (one slice) gets at most this
 * CPU budget on its own screening thread (wall backstop 5x), and no slice starts within REPLAY_GUARD_MS of a candle
 * close, nor within REPLAY_QUIET_MS of a live screening run, so none is running when a tick begins.
 */
const REPLAY_TICK_BUDGET_MS = 200;
const REPLAY_GUARD_MS = 2_000;
const REPLAY_QUIET_MS = 250;
/** An edited trader's previous and new code are compared over this many candles after the edit (with look-backs on). */
const REPLAY_SHADOW_CANDLES = 10;

/** What a caller may set that the environment does not: tests, bench and the chaos harness. */
export interface WorkerOverrides {
  /** Every part logs here; by default a logger built from the config (level, pretty, the key redacted). */
  logger?: Logger;
  /** The version written to worker_status and each signal's provenance; WORKER_VERSION by default. */
  workerVersion?: string;
  /** A Binance REST request's timeout in clock ms (an accelerated clock needs a longer one); the client's default otherwise. */
  restTimeoutMs?: number;
}

/** One worker's parts, built and wired but not started. */
export interface Worker {
  readonly logger: Logger;
  readonly database: StateSynchronizer;
  readonly rest: BinanceRestClient;
  readonly ws: BinanceWebSocketClient;
  readonly store: MarketStore;
  readonly market: MarketData;
  readonly screener: Screener;
  readonly orchestrator: Orchestrator;
  readonly eventLoop: EventLoopMonitor;
  readonly metrics: WorkerMetrics;
  readonly stats: StatsReporter;
  readonly ops: OpsServer;
  /** Serves replay_requests between live ticks; main.ts starts it once the worker is up. */
  readonly replay: ReplayService;
  /** Watches the live screener's runs; replay slices start only between them. */
  readonly liveTicks: LiveTickGate;
  /** Stop in reverse order of start: the replay service, the stats line, the orchestrator (flushing within `flushDeadlineMs`), the ops server, the event-loop monitor. */
  stop(flushDeadlineMs: number): Promise<void>;
}

/** The screener as the configuration sets it up: the live worker's, and replay's, so a replayed verdict is the live one. */
export function createScreener(config: Config, logger: Logger): Screener {
  return new Screener({
    threads: config.screenerThreads,
    filterTimeoutMs: config.filterTimeoutMs,
    filterMemoryMb: config.filterMemoryMb,
    filterTickBudgetMs: config.filterTickBudgetMs,
    failureLimit: config.traderFailureLimit,
    clock: config.clock,
    logger,
    ...(config.faultInjection ? { faults: config.faultInjection } : {}),
    ...(config.memoryBudgetBytes === undefined ? {} : { memoryBudgetBytes: config.memoryBudgetBytes }),
  });
}

export function createWorker(config: Config, overrides: WorkerOverrides = {}): Worker {
  const { clock } = config;
  const logger =
    overrides.logger ??
    createLogger({ level: config.logLevel, userId: config.userId, machineId: config.machineId, secrets: [config.supabaseKey], pretty: config.logPretty });
  const database = new StateSynchronizer({
    supabaseUrl: config.supabaseUrl,
    supabaseKey: config.supabaseKey,
    userId: config.userId,
    machineId: config.machineId,
    shard: config.shard,
    clock,
    logger,
    bufferSize: config.writeBufferSize,
  });
  const rest = new BinanceRestClient({
    baseUrl: config.binanceRestUrl,
    clock,
    logger,
    ...(overrides.restTimeoutMs !== undefined ? { timeoutMs: overrides.restTimeoutMs } : {}),
  });
  const ws = new BinanceWebSocketClient({ baseUrl: config.binanceWsUrl, clock, logger });
  const store = new MarketStore({
    history: config.klineHistory,
    clock,
    onListenerError: (error, event) =>
      logger.error({ event: 'market_listener_failed', symbol: event.symbol, interval: event.interval, err: error }, 'a candle-close consumer failed'),
  });
  const universe = new Universe({ rest, symbols: config.symbols, maxSymbols: config.maxSymbols, clock, logger });
  const market = new MarketData({ rest, ws, store, universe, history: config.klineHistory, clock, logger });
  const screener = createScreener(config, logger);
  const liveTicks = new LiveTickGate({ clock, guardMs: REPLAY_GUARD_MS, tickGraceMs: config.tickGraceMs, quietMs: REPLAY_QUIET_MS });
  const orchestrator = new Orchestrator({
    userId: config.userId,
    machineId: config.machineId,
    workerVersion: overrides.workerVersion ?? WORKER_VERSION,
    tickGraceMs: config.tickGraceMs,
    traderPollMs: config.traderPollMs,
    readyMinCoverage: config.readyMinCoverage,
    readyMaxLagMs: config.readyMaxLagMs,
    readyMaxLatencyMs: config.readyMaxLatencyMs,
    clock,
    logger,
    database,
    market,
    screener: liveTicks.watch(screener),
  });
  // One thread and a small per-candle budget: a slice ends within REPLAY_GUARD_MS, before the next close.
  const replayScreenerConfig = { ...config, screenerThreads: 1, filterTickBudgetMs: Math.min(config.filterTickBudgetMs, REPLAY_TICK_BUDGET_MS) };
  const replay = new ReplayService({
    queue: new ReplayRequests({ client: createWorkerClient(config.supabaseUrl, config.supabaseKey, 10_000), userId: config.userId, clock }),
    machineId: config.machineId,
    live: () => orchestrator.readiness().state === 'ready',
    gate: liveTicks,
    createScreener: () => createScreener(replayScreenerConfig, logger),
    createCandles: (dir) => new KlineCache({ dir, sourceUrl: config.binanceRestUrl, rest, clock }),
    history: config.klineHistory,
    clock,
    logger,
    shadowCandles: config.replayLookbackCandles > 0 ? REPLAY_SHADOW_CANDLES : 0,
    ...(config.replayLookbackCandles > 0
      ? { lookback: { candles: Math.min(config.replayLookbackCandles, Math.floor(config.klineHistory / 2)), source: new StoreCandles(store), traders: () => orchestrator.runningTraders(), symbols: () => market.symbols() } }
      : {}),
  });
  const sources: MetricsSources = {
    stream: () => ws.stats(),
    rest: () => rest.stats(),
    sink: () => database.stats(),
    screener: () => screener.stats(),
    worker: () => orchestrator.readiness(),
  };
  const eventLoop = new EventLoopMonitor();
  const metrics = new WorkerMetrics({ sources, eventLoop });
  metrics.observeTicks(orchestrator);
  metrics.observeGaps(market);
  const stats = new StatsReporter({ clock, logger, market: () => market.status(), sources, ticks: orchestrator, eventLoop, backlog: () => orchestrator.backlog() });
  const ops = new OpsServer({
    port: config.port,
    logger,
    health: () => {
      const stalledMs = Math.round(eventLoop.stalledMs());
      return { healthy: stalledMs < HEALTH_MAX_STALL_MS, eventLoopStalledMs: stalledMs, state: orchestrator.readiness().state };
    },
    readiness: () => orchestrator.readiness(),
    metrics: () => metrics.render(),
  });
  return {
    logger,
    database,
    rest,
    ws,
    store,
    market,
    screener,
    orchestrator,
    eventLoop,
    metrics,
    stats,
    ops,
    replay,
    liveTicks,
    async stop(flushDeadlineMs) {
      // Live ticks stop at once: waiting for the replay service first let ticks (and their signals) run
      // for most of a second after SIGTERM. The replay's request is failed or resumed at the next start.
      stats.stop();
      await Promise.all([replay.stop(), orchestrator.stop(flushDeadlineMs)]);
      await ops.stop();
      eventLoop.stop();
    },
  };
}
