// Scaling: tick time and memory as the universe grows (50–400 symbols) and as traders are added (5–50), each size in a fresh process.
import { type Benchmark, type BenchContext, distribution, type Table } from './benchmark.ts';
import { type FootprintReport, MB, measureFootprint } from './support/footprint.ts';

const HIGHER = ['5m', '15m', '1h'];

export const scaling: Benchmark = {
  name: 'scaling',
  title: 'Scaling: tick time and memory vs symbols and traders',
  async run(context: BenchContext) {
    const full = context.mode === 'full';
    const history = full ? 500 : 100;
    const ticks = full ? { warmupTicks: 3, ticks: 8 } : { warmupTicks: 1, ticks: 2 };
    const symbolSizes = full ? [50, 100, 200, 400] : [10, 20];
    const traderSizes = full ? [5, 20, 50] : [2, 5];
    const baseSymbols = full ? 200 : 20;
    const baseTraders = full ? 20 : 5;
    const reports = new Map<string, FootprintReport>();
    const measure = async (symbols: number, traders: number): Promise<FootprintReport> => {
      const key = `${symbols}×${traders}`;
      let report = reports.get(key);
      if (!report) {
        context.progress(`scaling: ${symbols} symbols × ${traders} traders`);
        report = await measureFootprint({ symbols, traders, higher: HIGHER, history, ...ticks });
        reports.set(key, report);
      }
      return report;
    };
    const columns = ['tick median (ms)', 'tick min–max (ms)', 'µs per evaluation', 'RSS (MB)', 'of which store (MB)', 'of which Screener (MB)'];
    const row = (first: number, report: FootprintReport, evaluations: number): Array<string | number> => {
      const tick = distribution(report.tickMs);
      return [
        first,
        tick.median.toFixed(0),
        `${tick.min.toFixed(0)}–${tick.max.toFixed(0)}`,
        ((tick.median * 1000) / evaluations).toFixed(1),
        (report.afterTicksRss / MB).toFixed(0),
        ((report.filledRss - report.baselineRss) / MB).toFixed(0),
        ((report.afterTicksRss - report.filledRss) / MB).toFixed(0),
      ];
    };
    const bySymbols: Table = { title: `vs symbols (${baseTraders} traders)`, columns: ['symbols', ...columns], rows: [] };
    for (const symbols of symbolSizes) bySymbols.rows.push(row(symbols, await measure(symbols, baseTraders), symbols * baseTraders));
    const byTraders: Table = { title: `vs traders (${baseSymbols} symbols)`, columns: ['traders', ...columns], rows: [] };
    for (const traders of traderSizes) byTraders.rows.push(row(traders, await measure(baseSymbols, traders), baseSymbols * traders));
    const base = await measure(baseSymbols, baseTraders);
    return {
      name: 'scaling',
      title: scaling.title,
      figures: [],
      tables: [bySymbols, byTraders],
      notes: [
        `Each size in a fresh child process (bench/support/footprintChild.ts): a MarketStore with 1m, 5m, 15m and 1h × ${history} candles per symbol, the Screener with the worker's defaults (${base.threads} threads), each trader seeing 1m plus one higher timeframe; ${ticks.warmupTicks} warm-up and ${ticks.ticks} measured 1m ticks, each after a new candle closed.`,
        `RSS after the ticks and a GC; "store" is the RSS growth from filling the store, "Screener" the growth from starting it and running the ticks (threads, isolates, the series they read). Baseline RSS of the child before any data: ${(base.baselineRss / MB).toFixed(0)} MB.`,
      ],
    };
  },
};
