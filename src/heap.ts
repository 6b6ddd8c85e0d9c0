// Hands the main thread's spare V8 heap back to the system after a burst of garbage (the boot backfill), which V8 would otherwise keep committed.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collector = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let collector: Collector | null = null;

/**
 * V8's `gc`, taken from a context created while --expose-gc is on, then the flag is turned off again so
 * no context created later (a trader's isolate above all) sees a `gc` global. V8 flags are per process.
 */
function getCollector(): Collector {
  if (collector) return collector;
  // Started with --expose-gc (the benchmarks' children): the flag is on already and stays on.
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === 'function') return (collector = own as Collector);
  setFlagsFromString('--expose-gc');
  try {
    collector = runInNewContext('gc') as Collector;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
  return collector;
}

/**
 * One low-memory collection of the main thread's heap ('last-resort': a full collection that also shrinks
 * the young generation and returns free pages). The boot backfill parses hundreds of REST responses fast
 * enough that V8 grows the old generation to several times what stays live, and keeps it committed for
 * as long as the process runs. Costs one full collection (tens of ms), so call it after a burst, never
 * on a hot path.
 */
export function compactHeap(): void {
  getCollector()({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}
