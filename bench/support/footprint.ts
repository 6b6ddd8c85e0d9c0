// Tick time and memory of the store plus the Screener at one size, measured in a fresh child process (bench/support/footprintChild.ts).
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { imageRuntimeEnv } from './image.ts';

export interface FootprintOptions {
  symbols: number;
  traders: number;
  /** Timeframes above 1m; the store holds 1m plus these. */
  higher: string[];
  history: number;
  warmupTicks: number;
  ticks: number;
  /** Screening threads; 1 is the deployed shape (a shared-cpu-1x machine has one vCPU). */
  threads: number;
  /** Resident bytes above which the screening thread collects its isolates after each tick: a machine's budget (75 % of its memory). */
  memoryBudgetBytes?: number;
}

export interface FootprintReport {
  /** RSS of the child after its imports, before any market data. */
  baselineRss: number;
  /** RSS once the store holds every series (after a GC), before the Screener starts. */
  filledRss: number;
  /** RSS after the store was filled, the Screener started and the ticks ran (after a GC). */
  afterTicksRss: number;
  peakRss: number;
  /** Peak RSS (VmHWM) while the measured ticks ran: the peak counter is reset after the warm-up ticks. */
  tickPeakRss: number;
  /** Main-thread V8 heap in use. */
  heapUsed: number;
  /** ArrayBuffer memory: the store's Float64Array rings and the screener's shared series. */
  arrayBuffers: number;
  /** Exact bytes of the store's candle buffers. */
  storeBytes: number;
  threads: number;
  tickMs: number[];
  /** CPU ms per measured tick of every thread but the child's main one (the screening thread and V8's helpers), from one tick's start to the next's. */
  tickCpuMs: number[];
  /** The order each measured tick ran in ('traders': the memory-saving one). */
  orders: string[];
  /** RSS right after each measured tick's reply, and the peak RSS (VmHWM) of the measured ticks up to it. */
  tickRss: number[];
  tickPeaks: number[];
}

export function measureFootprint(options: FootprintOptions): Promise<FootprintReport> {
  const child = fork(join(import.meta.dirname, 'footprintChild.ts'), [JSON.stringify(options)], {
    execArgv: [...process.execArgv, '--expose-gc'],
    // The image's runtime settings (NODE_OPTIONS, MALLOC_ARENA_MAX) shape memory as much as the code does.
    env: { ...process.env, ...imageRuntimeEnv() },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    let report: FootprintReport | undefined;
    child.once('message', (message) => (report = message as FootprintReport));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (report) resolve(report);
      else reject(new Error(`footprint child for ${JSON.stringify(options)} exited (${code ?? signal}) without a report`));
    });
  });
}

export const MB = 1024 * 1024;
