// The memory-saving tick order: a screening thread short of memory runs its traders one after another, each isolate collected right after its run, with the very answers and charges of the normal order.
import { afterEach, describe, expect, it } from 'vitest';
import type { Interval, Trader } from '../src/domain.ts';
import { intervalMs } from '../src/domain.ts';
import type { ScreenerRun } from '../src/ports.ts';
import { evaluateUnsandboxed } from '../bench/support/reference.ts';
import { benchFilters, benchTraders } from '../bench/support/filters.ts';
import type { ThreadOptions, ThreadTraderResult } from '../src/screening/protocol.ts';
import { ThreadScreener, type TraderRun } from '../src/screening/worker.ts';
import { makeTrader, randomWalk, TestMarket, threadSpec, ThreadTickFeed } from './screening.support.ts';
import { Screener } from '../src/screening/Screener.ts';
import { systemClock } from '../src/clock.ts';
import { WorkerMetrics } from '../src/ops/metrics.ts';
import { collectingLogger } from './support/logs.ts';

const MB = 1024 * 1024;
const LAST_CLOSE = Date.UTC(2026, 0, 10) - 1;
// Three batches of 16 (the last one short), so the board holds several batches at once in the memory-saving order.
const SYMBOLS = Array.from({ length: 40 }, (_, i) => `T${String(i).padStart(2, '0')}USDT`);
const INTERVALS: Interval[] = ['1m', '5m', '1h'];
const market = TestMarket.build({ symbols: SYMBOLS, intervals: INTERVALS, candles: 300, lastCloseTime: LAST_CLOSE, seed: 11 });
const tick: ScreenerRun = { interval: '1m', candleOpenTime: LAST_CLOSE + 1 - intervalMs('1m'), traderIds: [], symbols: SYMBOLS, market };
/** A budget every process is above: the thread goes to the memory-saving order after its first tick and stays. */
const PRESSED = { memoryBudgetBytes: 1 };
/** A budget no process reaches here: the normal order throughout. */
const AMPLE = { memoryBudgetBytes: 1024 * 1024 * MB };

/** A thread that records, right before each collection after a run, every watched isolate's heap, and each one's heap right after its own collection. */
class WatchedThread extends ThreadScreener {
  watched: string[] = [];
  readonly beforeCollection: Array<{ running: string; heaps: Map<string, number> }> = [];
  readonly collectedHeap = new Map<string, number>();

  protected override collectAfterRun(run: TraderRun, grownBytes: number): void {
    this.beforeCollection.push({ running: run.result.traderId, heaps: new Map(this.watched.map((id) => [id, this.isolateHeapBytes(id)])) });
    super.collectAfterRun(run, grownBytes);
    this.collectedHeap.set(run.result.traderId, this.isolateHeapBytes(run.result.traderId));
  }
}

const threads: ThreadScreener[] = [];
afterEach(() => {
  for (const thread of threads.splice(0)) thread.stop();
});

/** One screening thread driven directly as the worker's thread entry does: a tick, then its rebuilds and collections. */
function startThread(traders: Trader[], options: Partial<ThreadOptions>, budgetMs = 120_000) {
  const thread = new WatchedThread({ filterTimeoutMs: 2000, filterMemoryMb: 32, filterTickBudgetMs: budgetMs, ...options }, (message) => {
    throw new Error(message);
  });
  threads.push(thread);
  thread.watched = traders.map((t) => t.id);
  thread.setTraders(traders.map(threadSpec), []);
  const feed = new ThreadTickFeed();
  let tickId = 0;
  return {
    thread,
    /** One tick; `between` runs after the reply, before the thread's after-tick collections. */
    run(between?: () => void): { results: ThreadTraderResult[]; order: string; memoCallbacks: number } {
      const { slots, buffers, tickers } = feed.inputs(market, SYMBOLS, INTERVALS);
      const ids = traders.map((t) => t.id);
      const reply = thread.tick({ type: 'tick', tickId: ++tickId, traderIds: ids, symbols: SYMBOLS, tickers, buffers, dropped: [], slots });
      between?.();
      thread.recycleGrownIsolates();
      thread.collectIsolates(ids);
      return { results: reply.traders, order: reply.order, memoCallbacks: reply.memoCallbacks };
    },
  };
}

/** What a thread's result says about its trader, without the time it took. */
function answers(results: ThreadTraderResult[]) {
  return results.map(({ evaluationMs: _ms, ...rest }) => rest).sort((a, b) => (a.traderId < b.traderId ? -1 : 1));
}

describe('the memory-saving tick order', () => {
  it('is taken once the process is above its budget, and gives the answers of the normal order and of the unsandboxed reference', () => {
    const filters = benchFilters(10, ['5m', '1h']);
    const traders = benchTraders(filters);
    const pressed = startThread(traders, PRESSED);
    const ample = startThread(traders, AMPLE);
    const reference = evaluateUnsandboxed(traders, { ...tick, traderIds: traders.map((t) => t.id) });
    const want = traders.map((trader) => reference.find((r) => r.traderId === trader.id)!.matches.map(({ symbol, conditions }) => ({ symbol, conditions })));
    const orders: string[] = [];
    for (let i = 0; i < 4; i++) {
      const saving = pressed.run();
      const normal = ample.run();
      orders.push(saving.order);
      expect(normal.order).toBe('symbols');
      expect(answers(saving.results)).toEqual(answers(normal.results));
      for (const [index, trader] of traders.entries()) {
        const result = saving.results.find((r) => r.traderId === trader.id)!;
        expect(result.errors).toEqual([]);
        expect(result.evaluated).toHaveLength(SYMBOLS.length);
        expect(result.matches.map(({ symbol, conditions }) => ({ symbol, conditions }))).toEqual(want[index]);
      }
      // From the third tick the board answers every call, in either order.
      if (i >= 2) expect(saving.memoCallbacks).toBe(0);
    }
    expect(orders).toEqual(['symbols', 'traders', 'traders', 'traders']);
    // Some of the bench filters match on this market, so equal answers are not merely empty ones.
    expect(want.flat().length).toBeGreaterThan(0);
  });

  it('has at most one isolate grown at any point of the tick, where the normal order has all of them grown at its end', () => {
    // Each evaluation keeps ~4 MB alive while it runs, so an isolate that ran holds it (as garbage) until it is collected.
    // (Rows of numbers alone: read from the kline array, each row cost a trap of its proxy, and the test 33 s.)
    const code = `const rows = []; for (let i = 0; i < 50000; i++) rows.push({ i, close: i * 1.5 }); return rows.length === 0;`;
    const traders = Array.from({ length: 4 }, () => makeTrader(code));
    const pressed = startThread(traders, PRESSED);
    pressed.run();
    pressed.thread.beforeCollection.length = 0;
    for (let i = 0; i < 2; i++) expect(pressed.run().order).toBe('traders');
    const { beforeCollection, collectedHeap } = pressed.thread;
    expect(beforeCollection.map((seen) => seen.running)).toEqual([...traders, ...traders].map((t) => t.id));
    for (const { running, heaps } of beforeCollection) {
      for (const [id, heap] of heaps) {
        // The running trader's isolate has grown; every other one is at (or within 0.5 MB of) its collected size.
        if (id === running) expect(heap).toBeGreaterThan(collectedHeap.get(id)! + 1.5 * MB);
        else expect(heap).toBeLessThan(collectedHeap.get(id)! + MB / 2);
      }
    }
    // The same traders in the normal order: all grown at once when the tick ends.
    const ample = startThread(traders, AMPLE);
    for (let i = 0; i < 2; i++) {
      ample.run(() => {
        for (const trader of traders) expect(ample.thread.isolateHeapBytes(trader.id)).toBeGreaterThan(collectedHeap.get(trader.id)! + 1.5 * MB);
      });
    }
  });

  it('charges a trader the board work done ahead for it and stops it at its tick budget, as the normal order does', () => {
    // Forty distinct heavy calls per symbol, read back from the board: only the charge makes this trader spend its budget.
    const heavy = makeTrader(`
      const k = timeframes['1m'];
      let nodes = 0;
      for (let i = 0; i < 40; i++) nodes += helpers.calculateHighVolumeNodes(k, { bins: 1000, lookback: 300 - i }).length;
      return nodes < 0;`);
    const light = makeTrader(`return helpers.getLatestRSI(timeframes['1m'], 14) !== null;`);
    const pressed = startThread([heavy, light], PRESSED);
    // The same traders in the normal order, run on the same candles right after each memory-saving tick: the charge each order makes for the same work.
    const ample = startThread([heavy, light], AMPLE);
    // The 1m candles move before each later tick, so the board computes the nodes again (results of series that did not change are carried, and cost their copy: carriedResults.ts).
    const saved = SYMBOLS.map((symbol) => market.series(symbol, '1m')!.since(0));
    const moved = <T>(run: () => T): T => {
      for (const symbol of SYMBOLS) {
        const last = market.series(symbol, '1m')!.lastClosed()!;
        market.append(symbol, '1m', randomWalk({ seed: 11, count: 1, interval: '1m', lastOpenTime: last.openTime + intervalMs('1m') })[0]!);
      }
      return run();
    };
    try {
      const both = () => ({ saving: pressed.run(), normal: ample.run() });
      const ticks = [both(), moved(both), moved(both)];
      expect(ticks.map((t) => t.saving.order)).toEqual(['symbols', 'traders', 'traders']);
      expect(ticks.map((t) => t.normal.order)).toEqual(['symbols', 'symbols', 'symbols']);
      expect(ticks[2]!.saving.memoCallbacks).toBe(0);
      // Compared warm with warm: the first tick of a thread also pays its isolates' compilation, so it is no yardstick (CI once saw 2.1 s on it against 0.45 s two ticks later).
      const heavyNormal = ticks[2]!.normal.results.find((r) => r.traderId === heavy.id)!;
      const heavyThird = ticks[2]!.saving.results.find((r) => r.traderId === heavy.id)!;
      expect(heavyThird.errors).toEqual([]);
      // Uncharged, the board's answers would cost this trader only their copy, a small fraction of the nodes' arithmetic.
      expect(heavyThird.evaluationMs).toBeGreaterThan(heavyNormal.evaluationMs * 0.25);
      // With a budget well below what the board's work for it costs, the heavy trader is stopped part-way; the light one is not.
      // A tenth: the budget is judged on CPU time, and a loaded machine can stretch the wall time measured above several times over it.
      const tight = startThread([heavy, light], PRESSED, Math.max(10, heavyThird.evaluationMs / 10));
      const tightTicks = [tight.run(), moved(() => tight.run()), moved(() => tight.run())];
      const stopped = tightTicks[2]!.results.find((r) => r.traderId === heavy.id)!;
      expect(tightTicks[2]!.order).toBe('traders');
      expect(stopped.errors.map((e) => e.code)).toEqual(['TRADER_TIMEOUT']);
      expect(stopped.evaluated.length).toBeLessThan(SYMBOLS.length);
      expect(tightTicks[2]!.results.find((r) => r.traderId === light.id)!.evaluated).toHaveLength(SYMBOLS.length);
    } finally {
      SYMBOLS.forEach((symbol, i) => market.setSeries(symbol, '1m', saved[i]!));
    }
  });

  it('is reported by the Screener on its thread\'s ticks, logged when it changes and exported as a metric', async () => {
    const logs = collectingLogger({ level: 'info' });
    const screener = new Screener({ threads: 1, filterTimeoutMs: 2000, filterMemoryMb: 32, failureLimit: 3, clock: systemClock, logger: logs.logger, memoryBudgetBytes: 1 });
    await screener.start();
    try {
      const traders = [makeTrader(`return helpers.getLatestRSI(timeframes['1m'], 14) !== null;`), makeTrader(`return timeframes['1m'].length > 0;`)];
      screener.setTraders(traders);
      const metrics = new WorkerMetrics({ sources: { screener: () => screener.stats() } });
      const run = () => screener.run({ ...tick, traderIds: traders.map((t) => t.id) });
      expect((await run()).memorySavingThreads).toBe(0);
      expect((await metrics.render()).body).toMatch(/^screener_memory_saving_threads 0$/m);
      // The thread decides after the reply: the next tick runs in the memory-saving order.
      const second = await run();
      expect(second.memorySavingThreads).toBe(1);
      expect(second.traders.every((t) => t.evaluatedSymbols.length === SYMBOLS.length)).toBe(true);
      expect((await run()).memorySavingThreads).toBe(1);
      expect(screener.stats()).toMatchObject({ memorySavingThreads: 1, memoryBudgetBytes: 1 });
      const body = (await metrics.render()).body;
      expect(body).toMatch(/^screener_memory_saving_threads 1$/m);
      expect(body).toMatch(/^screener_memory_budget_bytes 1$/m);
      // Logged once, when the order changed.
      expect(logs.events('screener_tick_order')).toEqual([expect.objectContaining({ thread: 0, order: 'traders', memoryBudgetBytes: 1 })]);
    } finally {
      await screener.stop();
    }
  });
});
