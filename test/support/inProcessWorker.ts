// One user's worker in-process, built by the composition root main.ts uses, against the simulator and the shared stack.
import type { BinanceSimulator } from '../../dev/binanceSim/index.ts';
import type { AcceleratedClock } from '../../src/clock.ts';
import { loadConfig } from '../../src/config.ts';
import { createWorker, type Worker } from '../../src/createWorker.ts';
import type { Logger } from '../../src/logger.ts';
import type { StackInfo, TestUser } from './stack.ts';

export interface InProcessWorkerOptions {
  stack: StackInfo;
  user: TestUser;
  simulator: BinanceSimulator;
  /** An accelerated clock: the timings below are scaled by its speed. */
  clock: AcceleratedClock;
  symbols: string[];
  logger: Logger;
  failureLimit?: number;
}

/** Small and fast: 60 candles of history, one screening thread, grace and readiness bars scaled to the clock's speed. */
export function inProcessWorker(options: InProcessWorkerOptions): Worker {
  const speed = options.clock.speed;
  const config = loadConfig({
    USER_ID: options.user.id,
    SUPABASE_URL: options.stack.supabaseUrl,
    SUPABASE_KEY: options.user.workerJwt,
    BINANCE_REST_URL: options.simulator.restUrl,
    BINANCE_WS_URL: options.simulator.wsUrl,
    MACHINE_ID: 'test',
    SYMBOLS: options.symbols.join(','),
    MAX_SYMBOLS: '10',
    KLINE_HISTORY: '60',
    SCREENER_THREADS: '1',
    FILTER_TIMEOUT_MS: '200',
    FILTER_MEMORY_MB: '16',
    TRADER_FAILURE_LIMIT: String(options.failureLimit ?? 3),
    TRADER_POLL_MS: '30000',
    TICK_GRACE_MS: String(speed * 100),
    READY_MIN_COVERAGE: '0.95',
    READY_MAX_LAG_MS: String(speed * 3000),
    // Half a real second, as the default is in real time.
    READY_MAX_LATENCY_MS: String(speed * 500),
  });
  // Ten real minutes: the client's default timeout is in clock time, which an accelerated clock runs through quickly.
  return createWorker({ ...config, clock: options.clock }, { logger: options.logger, workerVersion: 'test', restTimeoutMs: 600_000 });
}
