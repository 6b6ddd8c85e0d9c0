// What benchmarks share within one run: the local stack, and one standard worker session that memory and latency both observe.
import { type LocalStack, startLocalStack } from '../../dev/localStack.ts';
import type { BenchMode } from '../benchmark.ts';
import { benchFilters } from './filters.ts';
import { WorkerRun, type WorkerRunOptions } from './workerRun.ts';

/** The size the issue fixes for memory and latency: 200 symbols × 4 intervals × 500 candles, 20 traders. */
export function standardSize(mode: BenchMode): { symbols: number; history: number; traders: number; speed: number } {
  // Speed: a 1m candle closes every 3 s (full) or 2 s (quick) of real time; latency is converted back to real ms.
  // Faster would shrink the worker's 10 s (clock) stream-silence timeout below what a loaded machine's pauses reach.
  return mode === 'full' ? { symbols: 200, history: 500, traders: 20, speed: 20 } : { symbols: 10, history: 60, traders: 20, speed: 30 };
}

/**
 * A new worker at the standard size in the deployed shape: one screening thread (a shared-cpu-1x
 * machine has one vCPU; SCREENER_THREADS=1) and the image's runtime settings, unless `overrides`
 * say otherwise.
 */
export function launchStandardWorker(stack: LocalStack, mode: BenchMode, overrides: Pick<WorkerRunOptions, 'env' | 'imageRuntime'> = {}): Promise<WorkerRun> {
  const size = standardSize(mode);
  return WorkerRun.launch({
    stack,
    symbols: size.symbols,
    history: size.history,
    filters: benchFilters(size.traders, ['5m', '15m', '1h']),
    speed: size.speed,
    restLatencyMs: 0,
    // Binance's cadence is 2 s / 1 s; slower here, yet at ×20 still about 8× production's message rate (~4,900 against
    // ~600 a second), every stream in the same pass. The latency benchmark switches the simulator to Binance's cadence
    // kept in real time (SimulatorOptions.cadence) for the candles it measures, beside this one.
    klineUpdateMs: 4000,
    tickerUpdateMs: 5000,
    ...overrides,
    env: { SCREENER_THREADS: '1', ...overrides.env },
  });
}

export class BenchEnvironment {
  private readonly mode: BenchMode;
  private stackStart: Promise<LocalStack> | null = null;
  private standard: Promise<WorkerRun> | null = null;

  constructor(mode: BenchMode) {
    this.mode = mode;
  }

  /** The run's local stack; each worker gets its own user, so runs never see each other's rows. */
  stack(): Promise<LocalStack> {
    this.stackStart ??= startLocalStack();
    return this.stackStart;
  }

  /**
   * The worker at the standard size on an accelerated clock, launched once per run: the memory
   * benchmark reads its RSS after ticks, the latency benchmark its signals; neither disturbs the other.
   */
  standardWorker(): Promise<WorkerRun> {
    this.standard ??= (async () => launchStandardWorker(await this.stack(), this.mode))();
    return this.standard;
  }

  /** Stop the standard worker, so later benchmarks do not share the cores with it. */
  async releaseStandardWorker(): Promise<void> {
    const standard = this.standard;
    this.standard = null;
    if (standard) await (await standard.catch(() => null))?.stop();
  }

  async close(): Promise<void> {
    await this.releaseStandardWorker();
    const starting = this.stackStart;
    this.stackStart = null;
    if (starting) await (await starting).stop();
  }
}
