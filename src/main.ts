// The worker's entry point: configuration, the worker createWorker wires, HTTP, signals, and the order they start and stop in.
import dotenv from 'dotenv';
import { loadConfig, type Config } from './config.ts';
import { ConfigError } from './errors.ts';
import { scrubSecrets } from './logger.ts';
import { createWorker } from './createWorker.ts';
import { installProcessHandlers } from './ops/processHandlers.ts';
import { WORKER_VERSION } from './version.ts';

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
  const configMs = Math.round(performance.now() - bootStarted);
  const worker = createWorker(config);
  const { logger, orchestrator, ops, stats, eventLoop } = worker;
  const { clock } = config;
  logger.info(
    { event: 'boot', step: 'config', durationMs: configMs, version: WORKER_VERSION, clockSpeed: clock.speed, shardIndex: config.shard.index, shardCount: config.shard.count },
    'boot step done',
  );

  let shuttingDown = false;
  installProcessHandlers({
    logger,
    shutdown: async () => {
      shuttingDown = true;
      // The platform kills the machine at its kill timeout anyway; exiting first at least says why.
      const hardStop = clock.setTimeout(() => {
        logger.error({ event: 'shutdown', step: 'timeout', timeoutMs: config.shutdownTimeoutMs }, 'shutdown took too long: exiting');
        process.exit(1);
      }, config.shutdownTimeoutMs + SHUTDOWN_MARGIN_MS);
      hardStop.unref();
      // The flush gets the budget minus a margin for marking the worker stopped and closing streams.
      await worker.stop(Math.max(1_000, config.shutdownTimeoutMs - SHUTDOWN_MARGIN_MS));
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
  // Replay requests from the web app, served between ticks (never before the live worker is up).
  await worker.replay.start();
}

main().catch((error: unknown) => {
  // Before the logger exists (or if wiring itself throws): one line, scrubbed by construction (no config values).
  process.stderr.write(`screener-worker: fatal: ${scrubSecrets(error instanceof Error ? error.message : String(error))}\n`);
  process.exit(1);
});
