// Benchmark 2, tick: 20 traders × 200 symbols × 2 timeframes × 500 candles on the sandboxed, parallel Screener beside `new Function` in one thread.
import { type Benchmark, type BenchContext, distribution, goal, medianFigure, repeat } from './benchmark.ts';
import { TickLoad } from './support/tickLoad.ts';

const GOAL_RATIO = 1.0;
const GOAL_P99_MS = 250;

export const tick: Benchmark = {
  name: 'tick',
  title: 'Tick: sandboxed and parallel vs unsandboxed in one thread',
  async run(context: BenchContext) {
    const full = context.mode === 'full';
    const size = full ? { symbols: 200, traders: 20, history: 500 } : { symbols: 12, traders: 5, history: 120 };
    // 100 measured ticks, so p99 is a percentile and not just the worst tick.
    const plan = full ? { warmup: 5, repetitions: 100 } : { warmup: 1, repetitions: 3 };
    context.progress(`tick: ${size.traders} traders × ${size.symbols} symbols × 1m/5m × ${size.history} candles`);
    const load = await TickLoad.start({ ...size, higher: ['5m'] });
    try {
      let disagreements = 0;
      const errorCodes: Record<string, number> = {};
      const samples = await repeat(plan, async (index) => {
        // Every repetition is a new closed candle, as in production: caches and mirrors see real change.
        load.advance();
        // Alternate which side goes first, so neither always runs on a warmer cache.
        const first = index % 2 === 0;
        const unsandboxedFirst = first ? load.unsandboxed() : null;
        const sandboxed = await load.sandboxed();
        const unsandboxed = unsandboxedFirst ?? load.unsandboxed();
        if (sandboxed.evaluations === 0) throw new Error(`tick: nothing evaluated (${JSON.stringify(sandboxed.errorCodes)})`);
        if (index >= 0) for (const [code, count] of Object.entries(sandboxed.errorCodes)) errorCodes[code] = (errorCodes[code] ?? 0) + count;
        // A filter timing out under load (an error) leaves nothing to compare; every other tick must agree exactly.
        if (sandboxed.errors === 0 && unsandboxed.errors === 0 && sandboxed.matchKeys.join() !== unsandboxed.matchKeys.join()) disagreements++;
        return { sandboxed, unsandboxed };
      });
      if (disagreements > 0) throw new Error(`tick: the sandboxed and unsandboxed runs disagreed on ${disagreements} ticks`);
      const sandboxed = distribution(samples.map((s) => s.sandboxed.ms));
      const unsandboxed = distribution(samples.map((s) => s.unsandboxed.ms));
      const ratio = distribution(samples.map((s) => s.sandboxed.ms / s.unsandboxed.ms));
      const evaluations = samples[0]!.sandboxed.evaluations;
      const matches = distribution(samples.map((s) => s.sandboxed.matches));
      const stats = load.screener.stats();
      const slow = samples.filter((s) => s.sandboxed.ms >= GOAL_P99_MS);
      const slowWithErrors = slow.filter((s) => s.sandboxed.errors > 0).length;
      return {
        name: 'tick',
        title: tick.title,
        figures: [
          medianFigure('sandboxed ÷ unsandboxed, per tick', ratio, '×', { goal: goal(context.mode, `≤ ${GOAL_RATIO.toFixed(1)}`, ratio.median <= GOAL_RATIO) }),
          {
            label: 'sandboxed tick, p99',
            value: sandboxed.p99,
            unit: 'ms',
            detail: `n = ${sandboxed.n}${sandboxed.n < 100 ? ' (fewer than 100 ticks: p99 is close to the max)' : ''}; ${slow.length} ticks at or over ${GOAL_P99_MS} ms, ${slowWithErrors} of them with an evaluation error`,
            goal: goal(context.mode, `< ${GOAL_P99_MS} ms`, sandboxed.p99 < GOAL_P99_MS),
          },
          medianFigure('sandboxed tick (Screener.run, parallel)', sandboxed, 'ms', { detail: `p90 ${sandboxed.p90.toFixed(1)} ms` }),
          medianFigure('unsandboxed tick (new Function, one thread)', unsandboxed, 'ms', { detail: `p90 ${unsandboxed.p90.toFixed(1)} ms, p99 ${unsandboxed.p99.toFixed(1)} ms` }),
        ],
        tables: [],
        notes: [
          `${size.traders} traders (RSI, EMA cross, volume spike, Bollinger squeeze, MACD/StochRSI filters: bench/support/filters.ts) × ${size.symbols} symbols × 1m and 5m × ${size.history} candles = ${evaluations.toLocaleString('en-US')} evaluations per tick, ${Math.round(matches.median)} matches (median); a new 1m candle closes on every symbol before each tick.`,
          `Screener with the worker's defaults: ${stats.threads} threads (one per core), 50 ms per evaluation, 32 MB per trader. Both sides read the same MarketStore and must return the same matches (they did on every tick without errors).`,
          Object.keys(errorCodes).length === 0
            ? 'No evaluation failed in the measured ticks.'
            : `Evaluation errors in the measured ticks (counted in the time, as in production): ${Object.entries(errorCodes).map(([code, count]) => `${code} × ${count}`).join(', ')}.`,
          `${plan.warmup} warm-up and ${plan.repetitions} measured ticks per side, interleaved; median with min–max; the ratio is taken per tick.`,
        ],
      };
    } finally {
      await load.stop();
    }
  },
};
