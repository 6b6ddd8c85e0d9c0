// Child process entry: load a market of a given size into a MarketStore, run the Screener on it, report tick times and memory by stage.
// A fresh process per size, so each reading holds nothing from another size or from the harness.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Interval } from '../../src/domain.ts';
import type { FootprintOptions, FootprintReport } from './footprint.ts';
import { TickLoad } from './tickLoad.ts';

const options = JSON.parse(process.argv[2] ?? '{}') as FootprintOptions;

function settledRss(): number {
  // --expose-gc is passed by the parent: collect first so the reading is what is kept, not garbage.
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss;
}


const baselineRss = settledRss();
let filledRss = 0;
/** VmHWM of this process (all threads), after `resetPeak` the highest RSS since then. */
function peakRss(): number {
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) * 1024;
}

/** Start the peak counter again from the current RSS (Linux: writing 5 to clear_refs resets VmHWM). */
function resetPeak(): void {
  writeFileSync('/proc/self/clear_refs', '5');
}

const load = await TickLoad.start({ symbols: options.symbols, traders: options.traders, higher: options.higher as Interval[], history: options.history, threads: options.threads, ...(options.memoryBudgetBytes === undefined ? {} : { memoryBudgetBytes: options.memoryBudgetBytes }) }, () => {
  filledRss = settledRss();
});
const storeBytes = load.store.memoryBytes();
const tickMs: number[] = [];
const tickCpuMs: number[] = [];
const orders: string[] = [];
/** RSS right after each measured tick's reply, and the peak (VmHWM) up to then. */
const tickRss: number[] = [];
const tickPeaks: number[] = [];
/** CPU ms of every thread but this one (the screening thread, and V8's helper threads working for it). */
function othersCpuMs(): number {
  const all = process.cpuUsage();
  const main = process.threadCpuUsage();
  return (all.user + all.system - main.user - main.system) / 1000;
}
let cycleStart = 0;
// One more tick than measured: a tick's CPU runs from its start to the next one's, so the collections
// the thread does after replying (IsolateCollector) count with the tick that caused them.
for (let i = 0; i < options.warmupTicks + options.ticks + 1; i++) {
  if (i === options.warmupTicks) resetPeak();
  // The last measured tick's after-work (collections) runs after the thread answered: let it finish.
  if (i === options.warmupTicks + options.ticks) await new Promise((resolve) => setTimeout(resolve, 1000));
  const now = othersCpuMs();
  if (i > options.warmupTicks) tickCpuMs.push(now - cycleStart);
  cycleStart = now;
  if (i === options.warmupTicks + options.ticks) break;
  load.advance();
  const result = await load.sandboxed();
  if (result.evaluations === 0) throw new Error(`footprint: nothing evaluated (${JSON.stringify(result.errorCodes)})`);
  if (i >= options.warmupTicks) {
    tickMs.push(result.ms);
    tickRss.push(process.memoryUsage.rss());
    tickPeaks.push(peakRss());
    orders.push(result.memorySavingThreads > 0 ? 'traders' : 'symbols');
  }
}
const tickPeakRss = peakRss();
const memory = process.memoryUsage();
const afterTicksRss = settledRss();
await load.stop();
const report: FootprintReport = {
  baselineRss,
  filledRss,
  afterTicksRss,
  peakRss: process.resourceUsage().maxRSS * 1024,
  tickPeakRss,
  heapUsed: memory.heapUsed,
  arrayBuffers: memory.arrayBuffers,
  storeBytes,
  threads: load.screener.stats().threads,
  tickMs,
  tickCpuMs,
  orders,
  tickRss,
  tickPeaks,
};
process.send!(report, () => process.exit(0));
