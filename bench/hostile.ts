// Benchmark: a tick with issue #12's hostile-filter corpus loaded beside the 20 standard traders, against the same tick without it.
import { createHash } from 'node:crypto';
import { systemClock } from '../src/clock.ts';
import type { Trader } from '../src/domain.ts';
import { silentLogger } from '../src/logger.ts';
import { Screener, type ScreenerRunResult } from '../src/screening/Screener.ts';
import type { ScreenerRun } from '../src/ports.ts';
import { HOSTILE_FILTERS } from '../test/support/hostileFilters.ts';
import { type Benchmark, type BenchContext, distribution, goal, medianFigure, repeat } from './benchmark.ts';
import { TickLoad } from './support/tickLoad.ts';

/** The goal: the corpus costs the tick at most 10 %. */
const GOAL_RATIO = 1.1;
/** The worker's default (src/config.ts): the failing hostile traders are disabled after this many ticks. */
const FAILURE_LIMIT = 5;

/** The corpus as trader rows, with ids of their own (the standard traders' are numbered from 1). */
function hostileTraders(): Trader[] {
  return HOSTILE_FILTERS.filter((entry) => !entry.child).map((entry, index) => ({
    id: `00000000-0000-4000-9000-${String(index + 1).padStart(12, '0')}`,
    userId: '11111111-1111-4111-8111-111111111111',
    name: `hostile: ${entry.name}`,
    enabled: true,
    executionMode: 'cloud',
    filter: { code: entry.code, description: [], refreshInterval: '1m', requiredTimeframes: [], indicators: [], helpers: 'webapp' },
    timeframes: ['1m'],
    codeHash: createHash('sha256').update(entry.code).digest('hex'),
    updatedAt: '2026-01-01T00:00:00.000Z',
  }));
}

/** Sorted `traderId symbol` pairs of the given traders' matches. */
function matchKeys(result: ScreenerRunResult, traderIds: ReadonlySet<string>): string {
  return result.traders
    .filter((trader) => traderIds.has(trader.traderId))
    .flatMap((trader) => trader.matches.map((match) => `${trader.traderId} ${match.symbol}`))
    .sort()
    .join();
}

export const hostile: Benchmark = {
  name: 'hostile',
  title: 'Hostile corpus: a tick beside the hostile filters vs the same tick without them',
  async run(context: BenchContext) {
    const full = context.mode === 'full';
    const size = full ? { symbols: 200, traders: 20, history: 500 } : { symbols: 12, traders: 5, history: 120 };
    // Warm-up covers the failing-tick limit: a contained hostile trader is disabled by then, as it would be in production.
    const plan = full ? { warmup: FAILURE_LIMIT + 3, repetitions: 40 } : { warmup: 1, repetitions: 3 };
    const corpus = hostileTraders();
    context.progress(`hostile: ${size.traders} standard traders × ${size.symbols} symbols × 1m/5m × ${size.history} candles, with and without ${corpus.length} hostile traders`);
    const load = await TickLoad.start({ ...size, higher: ['5m'] });
    // The same Screener settings as the standard one (TickLoad: the worker's defaults), over the same store.
    const beside = new Screener({ threads: 0, filterTimeoutMs: 50, filterMemoryMb: 32, failureLimit: FAILURE_LIMIT, clock: systemClock, logger: silentLogger() });
    await beside.start();
    try {
      beside.setTraders([...load.traders, ...corpus]);
      const standardIds = new Set(load.traders.map((trader) => trader.id));
      const tickFor = (traders: Trader[]): ScreenerRun => ({
        interval: '1m',
        candleOpenTime: load.market.lastClosedOpenTime('1m'),
        traderIds: traders.map((trader) => trader.id),
        symbols: load.market.symbols,
        market: load.store,
      });
      let disagreements = 0;
      /** Evaluation ms per measured tick of each hostile trader (0 for the ticks it no longer ran). */
      const hostileMs = new Map<string, number>();
      const samples = await repeat(plan, async (index) => {
        load.advance();
        const timed = async (screener: Screener, traders: Trader[]) => {
          const started = performance.now();
          const result = await screener.run(tickFor(traders));
          return { ms: performance.now() - started, result };
        };
        // Alternate which side goes first, so neither always runs on a warmer cache.
        const plainFirst = index % 2 === 0 ? await timed(load.screener, load.traders) : null;
        const withCorpus = await timed(beside, [...load.traders, ...corpus]);
        const plain = plainFirst ?? (await timed(load.screener, load.traders));
        const standardErrors = (result: ScreenerRunResult): number => result.traders.filter((t) => standardIds.has(t.traderId)).reduce((sum, t) => sum + t.errors.length, 0);
        // The standard traders' matches must not depend on who shares their threads.
        if (standardErrors(plain.result) === 0 && standardErrors(withCorpus.result) === 0 && matchKeys(plain.result, standardIds) !== matchKeys(withCorpus.result, standardIds)) disagreements++;
        const standardMs = (result: ScreenerRunResult) => result.traders.filter((t) => standardIds.has(t.traderId)).reduce((sum, t) => sum + t.evaluationMs, 0);
        const hostileResults = withCorpus.result.traders.filter((t) => !standardIds.has(t.traderId));
        if (index >= 0) for (const t of hostileResults) hostileMs.set(t.traderId, (hostileMs.get(t.traderId) ?? 0) + t.evaluationMs / plan.repetitions);
        return { plainMs: plain.ms, withMs: withCorpus.ms, plainStandardMs: standardMs(plain.result), withStandardMs: standardMs(withCorpus.result), hostileRunning: hostileResults.length };
      });
      if (disagreements > 0) throw new Error(`hostile: the standard traders' matches changed beside the corpus on ${disagreements} ticks`);
      const ratio = distribution(samples.map((s) => s.withMs / s.plainMs));
      const plain = distribution(samples.map((s) => s.plainMs));
      const withCorpus = distribution(samples.map((s) => s.withMs));
      const standardRatio = distribution(samples.map((s) => s.withStandardMs / Math.max(s.plainStandardMs, 1e-3)));
      const running = distribution(samples.map((s) => s.hostileRunning));
      const disabled = beside.disabledTraders().filter((d) => !standardIds.has(d.traderId));
      const standardDisabled = beside.disabledTraders().filter((d) => standardIds.has(d.traderId)).length;
      if (standardDisabled > 0) throw new Error(`hostile: ${standardDisabled} standard traders were disabled beside the corpus`);
      return {
        name: 'hostile',
        title: hostile.title,
        figures: [
          medianFigure('tick with ÷ without the hostile corpus', ratio, '×', { goal: goal(context.mode, `≤ ${GOAL_RATIO.toFixed(2)}`, ratio.median <= GOAL_RATIO) }),
          medianFigure('tick with the hostile corpus', withCorpus, 'ms', { detail: `p90 ${withCorpus.p90.toFixed(1)} ms; ${Math.round(running.median)} hostile traders still running (median), ${disabled.length} disabled` }),
          medianFigure('tick without it', plain, 'ms', { detail: `p90 ${plain.p90.toFixed(1)} ms` }),
          medianFigure("standard traders' own evaluation time, with ÷ without", standardRatio, '×', { detail: 'summed evaluationMs of the standard traders: what sharing threads with the corpus costs them' }),
        ],
        tables: [
          {
            title: 'costliest hostile traders (evaluation ms per measured tick, on their thread)',
            columns: ['hostile filter', 'ms per tick', 'state at the end'],
            rows: [...hostileMs]
              .sort((a, b) => b[1] - a[1])
              .slice(0, 8)
              .map(([id, ms]) => [corpus.find((t) => t.id === id)!.name.replace(/^hostile: /, '').replaceAll('|', '/').slice(0, 90), ms.toFixed(1), disabled.some((d) => d.traderId === id) ? 'disabled' : 'running']),
          },
        ],
        notes: [
          `${size.traders} standard traders (bench/support/filters.ts) × ${size.symbols} symbols × 1m and 5m × ${size.history} candles, on two Screeners over the same MarketStore with the worker's defaults (50 ms per evaluation, 32 MB per trader, ${FAILURE_LIMIT} failing ticks disable): one with the standard traders alone, one with the ${corpus.length} in-process filters of the hostile corpus (test/support/hostileFilters.ts: host-copy amplification, tampering with intrinsics, oversized and malformed results, escapes, runaway loops, memory bombs) beside them.`,
          `${plan.warmup} warm-up ticks (a contained hostile trader fails every tick and is disabled within ${FAILURE_LIMIT}, as in production) and ${plan.repetitions} measured ticks per side, interleaved, a new 1m candle each; the ratio is taken per tick. The standard traders' matches were identical on both sides on every tick without errors.`,
          disabled.length > 0 ? `Disabled by the end: ${disabled.length} hostile traders; still running: the ones the sandbox makes harmless (tampering that no longer reaches the runtime, results bounded by the host).` : 'No hostile trader was disabled in the measured ticks (quick mode runs fewer ticks than the failing-tick limit).',
        ],
      };
    } finally {
      await beside.stop();
      await load.stop();
    }
  },
};
