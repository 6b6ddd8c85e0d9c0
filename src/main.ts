// The worker's entry point: configuration, wiring adapters to the core, HTTP, signals. The only module that knows every part.
import dotenv from 'dotenv';
import { loadConfig, type Config } from './config.ts';
import { ConfigError } from './errors.ts';
import { createLogger, type Logger, scrubSecrets } from './logger.ts';
import { Orchestrator } from './Orchestrator.ts';
import { EventLoopMonitor } from './ops/EventLoopMonitor.ts';
import { WorkerMetrics } from './ops/metrics.ts';
import { OpsServer } from './ops/OpsServer.ts';
import { installProcessSignals } from './ops/processSignals.ts';
import { StatsReporter } from './ops/StatsReporter.ts';
import { WORKER_VERSION } from './version.ts';
import { BinanceRestClient } from './market/BinanceRestClient.ts';
import { BinanceWebSocketClient } from './market/BinanceWebSocketClient.ts';
import { MarketData } from './market/MarketData.ts';
import { MarketStore } from './market/MarketStore.ts';
import { Universe } from './market/Universe.ts';
import type { MetricsSources } from './ops/metrics.ts';
import { Screener } from './screening/Screener.ts';
import { StateSynchronizer } from './traders/StateSynchronizer.ts';

/** /health fails when the event loop has not run for this long: the worker is alive but not working. */
const HEALTH_MAX_STALL_MS = 5_000;
/** Part of SHUTDOWN_TIMEOUT_MS kept for what follows the flush; also the grace before a forced exit. */
const SHUTDOWN_MARGIN_MS = 3_000;

function readConfig(): Config {
  dotenv.config({ quiet: true });
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      // One line naming the variables and why; loadConfig never includes a value.
      process.stderr.write(`screener-worker: invalid configuration: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}

async function main(): Promise<void> {
  const bootStarted = performance.now();
  const config = readConfig();
  const logger: Logger = createLogger({
    level: config.logLevel,
    userId: config.userId,
    machineId: config.machineId,
    secrets: [config.supabaseKey],
    pretty: config.logPretty,
  });
  const { clock } = config;
  logger.info(
    { event: 'boot', step: 'config', durationMs: Math.round(performance.now() - bootStarted), version: WORKER_VERSION, clockSpeed: clock.speed },
    'boot step done',
  );

  const database = new StateSynchronizer({
    supabaseUrl: config.supabaseUrl,
    supabaseKey: config.supabaseKey,
    userId: config.userId,
    machineId: config.machineId,
    clock,
    logger,
    bufferSize: config.writeBufferSize,
  });
  const rest = new BinanceRestClient({ baseUrl: config.binanceRestUrl, clock, logger });
  const ws = new BinanceWebSocketClient({ baseUrl: config.binanceWsUrl, clock, logger });
  const store = new MarketStore({
    history: config.klineHistory,
    clock,
    onListenerError: (error, event) =>
      logger.error({ event: 'market_listener_failed', symbol: event.symbol, interval: event.interval, err: error }, 'a candle-close consumer failed'),
  });
  const universe = new Universe({ rest, symbols: config.symbols, maxSymbols: config.maxSymbols, clock, logger });
  const market = new MarketData({ rest, ws, store, universe, history: config.klineHistory, clock, logger });
  const screener = new Screener({
    threads: config.screenerThreads,
    filterTimeoutMs: config.filterTimeoutMs,
    filterMemoryMb: config.filterMemoryMb,
    filterTickBudgetMs: config.filterTickBudgetMs,
    failureLimit: config.traderFailureLimit,
    clock,
    logger,
    ...(config.faultInjection ? { faults: config.faultInjection } : {}),
  });
  const orchestrator = new Orchestrator({
    userId: config.userId,
    machineId: config.machineId,
    workerVersion: WORKER_VERSION,
    tickGraceMs: config.tickGraceMs,
    traderPollMs: config.traderPollMs,
    readyMinCoverage: config.readyMinCoverage,
    readyMaxLagMs: config.readyMaxLagMs,
    readyMaxLatencyMs: config.readyMaxLatencyMs,
    clock,
    logger,
    traders: database,
    signals: database,
    status: database,
    database,
    market,
    store,
    screener,
  });
  const sources: MetricsSources = {
    stream: () => ws.stats(),
    rest: () => rest.stats(),
    sink: () => database.stats(),
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

  let shuttingDown = false;
  installProcessSignals({
    logger,
    shutdown: async () => {
      shuttingDown = true;
      // The platform kills the machine at its kill timeout anyway; exiting first at least says why.
      const hardStop = clock.setTimeout(() => {
        logger.error({ event: 'shutdown', step: 'timeout', timeoutMs: config.shutdownTimeoutMs }, 'shutdown took too long: exiting');
        process.exit(1);
      }, config.shutdownTimeoutMs + SHUTDOWN_MARGIN_MS);
      hardStop.unref();
      stats.stop();
      // The flush gets the budget minus a margin for marking the worker stopped and closing streams.
      await orchestrator.stop(Math.max(1_000, config.shutdownTimeoutMs - SHUTDOWN_MARGIN_MS));
      await ops.stop();
      eventLoop.stop();
      clock.clearTimeout(hardStop);
    },
    exit: (code) => process.exit(code),
  });

  eventLoop.start();
  // Up before boot, so the platform's health checks pass during a long backfill.
  try {
    await ops.start();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    // `npm run local` on a machine where 8080 is taken is the usual way to get here.
    logger.fatal({ event: 'boot_failed', step: 'http', port: config.port }, 'port in use');
    process.stderr.write(`screener-worker: PORT ${config.port} is already in use: stop what listens there or set PORT to a free port\n`);
    process.exit(1);
  }
  try {
    await orchestrator.start();
  } catch (error) {
    // A signal during boot interrupts it on purpose; the shutdown in progress decides the exit code.
    if (shuttingDown) return;
    logger.fatal({ event: 'boot_failed', err: error }, 'boot failed');
    await ops.stop();
    process.exit(1);
  }
  stats.start();
}

main().catch((error: unknown) => {
  // Before the logger exists (or if wiring itself throws): one line, scrubbed by construction (no config values).
  process.stderr.write(`screener-worker: fatal: ${scrubSecrets(error instanceof Error ? error.message : String(error))}\n`);
  process.exit(1);
});
