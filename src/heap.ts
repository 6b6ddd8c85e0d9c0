// Hands spare V8 heap back to the system: the main thread's after a burst of garbage (the boot backfill), and the means to collect a trader's isolate between its runs.
import { constrainedMemory } from 'node:process';
import { totalmem } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collector = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let collector: Collector | null = null;

/**
 * Runs `create` (which creates a V8 context) with --expose-gc on, so that context gets a `gc` global,
 * then turns the flag off again so no context created later sees one. V8 flags are per process: a
 * context another thread creates in between gets `gc` as well, or misses it if that thread turns the
 * flag off first; callers take the function and remove the global at once, and treat a missing one
 * as "cannot collect". `create` must not run untrusted code.
 */
export function withGcExposed<T>(create: () => T): T {
  setFlagsFromString('--expose-gc');
  try {
    return create();
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

/**
 * V8's `gc` for the main thread, taken from a context created while --expose-gc is on; null when a
 * screening thread turned the flag off in between (see withGcExposed), to be tried again next time.
 */
function getCollector(): Collector | null {
  if (collector) return collector;
  // Started with --expose-gc (the benchmarks' children): the flag is on already and stays on.
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === 'function') return (collector = own as Collector);
  const found: unknown = withGcExposed(() => runInNewContext('globalThis.gc'));
  return typeof found === 'function' ? (collector = found as Collector) : null;
}

/**
 * One low-memory collection of the main thread's heap ('last-resort': a full collection that also shrinks
 * the young generation and returns free pages). The boot backfill parses hundreds of REST responses fast
 * enough that V8 grows the old generation to several times what stays live, and keeps it committed for
 * as long as the process runs. Costs one full collection (tens of ms), so call it after a burst, never
 * on a hot path.
 */
export function compactHeap(): void {
  getCollector()?.({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}

/**
 * Source of an expression, evaluated in a fresh isolate's context created under withGcExposed, that
 * takes `gc` away from the global (its property cannot be deleted: a declaration of the gc extension;
 * it is overwritten) and returns a function collecting that isolate, or undefined when the context
 * got no `gc`. Called with true, one low-memory collection (the heap shrinks to what is live and its
 * pages go back to the system, compiled code included); otherwise one ordinary full collection (the
 * compiled code stays). Run before any filter code, so no filter can reach it.
 */
export const ISOLATE_COLLECTOR_SOURCE = `(() => {
  'use strict';
  const gc = globalThis.gc;
  if (!Reflect.deleteProperty(globalThis, 'gc')) globalThis.gc = undefined;
  return typeof gc === 'function'
    ? (lowMemory) => { gc(lowMemory === true ? { type: 'major', execution: 'sync', flavor: 'last-resort' } : { type: 'major', execution: 'sync' }); }
    : undefined;
})()`;

/**
 * The memory this process may use: the machine's (a Fly machine is a VM, so its total memory is the
 * machine size), or its cgroup limit when lower (a container).
 */
export function machineMemoryBytes(): number {
  const limit = constrainedMemory();
  const total = totalmem();
  return limit > 0 && limit < total ? limit : total;
}

/**
 * Share of the machine's memory the worker keeps within by default (MEMORY_BUDGET_MB overrides it):
 * above it the screening threads collect isolates and run ticks in the memory-saving order
 * (src/screening/isolateCollector.ts); the memory alert fires at 80 %.
 */
export const MEMORY_BUDGET_FRACTION = 0.75;

/** The default memory budget: MEMORY_BUDGET_FRACTION of the machine's memory. */
export function defaultMemoryBudgetBytes(): number {
  return Math.floor(machineMemoryBytes() * MEMORY_BUDGET_FRACTION);
}
