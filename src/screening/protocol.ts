// Messages between the Screener (main thread) and its screening threads.
import type { HelpersVersion, Interval } from '../domain.ts';
import type { SeriesBuffer, SeriesSlot } from './sharedSeries.ts';
import type { TickOrder } from './isolateCollector.ts';

/** What a thread needs to know of a trader. */
export interface TraderSpec {
  id: string;
  code: string;
  codeHash: string;
  updatedAt: string;
  refreshInterval: Interval;
  timeframes: Interval[];
  /** The timeframe `hvnNodes` is computed on (contract.ts hvnInterval); one of `timeframes`. */
  hvnInterval: Interval;
  /** The helper library the filter runs against (`filter.helpers`). */
  helpers: HelpersVersion;
}

export interface ThreadOptions {
  filterTimeoutMs: number;
  filterMemoryMb: number;
  /** Evaluation ms one trader may spend on this thread per tick; DEFAULT_FILTER_TICK_BUDGET_MS when absent. */
  filterTickBudgetMs?: number;
  /**
   * Int32Array(2) over shared memory: [tickId, 1 + index in the tick's traderIds] of the trader whose
   * code the thread is running, 0 between traders. Written before each evaluation, so a thread that
   * dies leaves behind who was running (InFlight).
   */
  inFlight?: SharedArrayBuffer;
  /** Resident bytes of the process above which the thread collects its isolates after each tick and runs its ticks in the memory-saving order (IsolateCollector); defaultMemoryBudgetBytes() (heap.ts) when absent. */
  memoryBudgetBytes?: number;
  /** Screening threads sharing that budget (1 when absent). */
  threads?: number;
  /** Test-only fault injection (config FAULT_INJECTION): what a screening thread does when a filter's code holds a marker. */
  faults?: ThreadFaults;
}

export interface ThreadFaults {
  /** The thread exits, as a native crash of the thread would look. */
  threadExitMarker?: string;
  /** The whole process aborts (SIGABRT), as a native abort inside isolated-vm would. */
  processAbortMarker?: string;
}

/**
 * A healthy trader costs about 40 µs per symbol (200 symbols: ~8 ms a tick); 500 ms is 60 times
 * that, room for heavy but honest filters, and is the close-to-commit latency goal: a trader that
 * needs more cannot answer within it anyway, and it holds every other trader on its thread back by
 * at most this much.
 */
export const DEFAULT_FILTER_TICK_BUDGET_MS = 500;

export type ToThread =
  | { type: 'traders'; upsert: TraderSpec[]; remove: string[] }
  | {
      type: 'tick';
      tickId: number;
      traderIds: string[];
      symbols: string[];
      /** Binance 24h ticker fields per symbol, strings as the stream sends them. */
      tickers: Record<string, Record<string, string>>;
      /** Shared row buffers the thread has not been handed yet (new series, or grown ones). */
      buffers: SeriesBuffer[];
      /** Series the main thread no longer keeps. */
      dropped: number[];
      /** Where each series of the tick is, by series key. */
      slots: Record<string, SeriesSlot>;
    }
  | { type: 'stop' };

export interface ThreadTraderResult {
  traderId: string;
  evaluated: string[];
  /** `values`: the filter's explain values of a match (sandboxRuntime's Verdict.values), when it returned any. */
  matches: Array<{ symbol: string; conditions: string[]; values?: Record<string, number> }>;
  errors: Array<{ symbol: string | null; code: string; message: string }>;
  /** Off-contract results read by their truthiness, as the browser does: recorded, never a failure. */
  warnings: Array<{ symbol: string; message: string }>;
  evaluationMs: number;
  /** A compile error, timeout or exhausted memory happened: the tick counts as failing for this trader. */
  severe: boolean;
  /** Not evaluated through no fault of its own (its thread crashed on another trader): the tick counts neither way. */
  lost?: boolean;
}

export type FromThread =
  | { type: 'ready' }
  | {
      type: 'tickResult';
      tickId: number;
      traders: ThreadTraderResult[];
      /** Helper results the memo served from its cache, and computed (for the results board ahead of a batch, or for a callback). */
      memoHits: number;
      memoMisses: number;
      /** Helper calls that crossed out of an isolate (the results board did not hold them). */
      memoCallbacks: number;
      heapBytes: number;
      /** The order the tick ran its traders in: 'traders' is the memory-saving one (IsolateCollector). */
      order: TickOrder;
    }
  | { type: 'catastrophic'; message: string };
