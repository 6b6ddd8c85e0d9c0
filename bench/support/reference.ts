// The unsandboxed reference evaluator: the same filters with `new Function` in one thread, as the old service ran them.
// NOT for production (a filter here can read process.env): it is the test oracle and the benchmark baseline, so it lives
// outside src/ and never ships in dist/ or the image.
import type { Trader } from '../../src/domain.ts';
import { candleToKline, HVN_LOOKBACK, hvnInterval, tickerFields } from '../../src/screening/contract.ts';
import { helperFunctions } from '../../src/screening/helpers.ts';
import { hostJudge } from '../../src/screening/runtime/judge.ts';
import type { ScreenerRun, TraderTickOutcome } from '../../src/ports.ts';

type Filter = (ticker: unknown, timeframes: unknown, helpers: unknown, hvnNodes: unknown) => unknown;

/** Evaluate every trader of the tick over its symbols; results ordered by traderId then symbol, like Screener.run. */
export function evaluateUnsandboxed(traders: Trader[], tick: ScreenerRun): TraderTickOutcome[] {
  const wanted = new Set(tick.traderIds);
  const symbols = [...new Set(tick.symbols)].sort();
  // Klines are built once per series and shared by all traders, as the old service did.
  const klineCache = new Map<string, number[][] | null>();
  const klinesOf = (symbol: string, interval: Trader['timeframes'][number]): number[][] | null => {
    const key = `${symbol}|${interval}`;
    if (!klineCache.has(key)) {
      const view = tick.market.series(symbol, interval);
      const klines: number[][] = [];
      if (view) for (let i = 0; i < view.length; i++) klines.push(candleToKline(view.get(i)));
      klineCache.set(key, klines.length > 0 ? klines : null);
    }
    return klineCache.get(key)!;
  };
  const hvnCache = new Map<string, unknown>();
  const results: TraderTickOutcome[] = [];
  for (const trader of [...traders].filter((t) => wanted.has(t.id)).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const started = performance.now();
    const result: TraderTickOutcome = { traderId: trader.id, evaluatedSymbols: [], matches: [], errors: [], warnings: [], evaluationMs: 0, disabled: null };
    let filter: Filter;
    try {
      filter = new Function('ticker', 'timeframes', 'helpers', 'hvnNodes', trader.filter.code) as Filter;
    } catch (error) {
      result.errors.push({ symbol: null, code: 'TRADER_COMPILE', message: hostJudge.describeError(error) });
      results.push(result);
      continue;
    }
    for (const symbol of symbols) {
      const timeframes: Record<string, number[][]> = {};
      let complete = true;
      for (const interval of trader.timeframes) {
        const klines = klinesOf(symbol, interval);
        if (!klines) {
          complete = false;
          break;
        }
        timeframes[interval] = klines;
      }
      if (!complete) continue;
      const refresh = timeframes[trader.filter.refreshInterval]!;
      const hvnTimeframe = hvnInterval(trader.filter);
      const library = helperFunctions(trader.filter.helpers);
      const hvnKey = `${trader.filter.helpers}|${symbol}|${hvnTimeframe}`;
      if (!hvnCache.has(hvnKey)) {
        const klines = timeframes[hvnTimeframe] ?? [];
        hvnCache.set(hvnKey, library.calculateHighVolumeNodes(klines, { lookback: Math.min(klines.length, HVN_LOOKBACK) }));
      }
      const ticker = tickerFields(symbol, tick.market.ticker(symbol), tick.market.series(symbol, tick.interval)?.lastClosed()?.close);
      try {
        const verdict = hostJudge.readVerdict(filter(ticker, timeframes, library, hvnCache.get(hvnKey)));
        result.evaluatedSymbols.push(symbol);
        if (verdict.warning !== null) result.warnings.push({ symbol, message: verdict.warning });
        if (verdict.match) result.matches.push({ symbol, conditions: verdict.conditions, price: refresh[refresh.length - 1]![4]! });
      } catch (error) {
        result.errors.push({ symbol, code: 'TRADER_RUNTIME', message: hostJudge.describeError(error) });
      }
    }
    result.evaluationMs = performance.now() - started;
    results.push(result);
  }
  return results;
}
