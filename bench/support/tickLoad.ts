// One screening workload, in process: a real MarketStore with synthetic candles, the real Screener, and the unsandboxed reference beside it.
import { systemClock } from '../../src/clock.ts';
import type { Interval, Trader } from '../../src/domain.ts';
import { silentLogger, type Logger } from '../../src/logger.ts';
import { MarketStore } from '../../src/market/MarketStore.ts';
import { evaluateFloor, type FloorFilter } from './floor.ts';
import { evaluateUnsandboxed } from './reference.ts';
import { Screener } from '../../src/screening/Screener.ts';
import type { ScreenerRun, TraderTickOutcome } from '../../src/ports.ts';
import { benchFilters, benchTraders } from './filters.ts';
import { SyntheticMarket } from './market.ts';

export interface TickLoadOptions {
  symbols: number;
  traders: number;
  /** Timeframes above 1m, handed to the traders in turn. */
  higher: Interval[];
  history: number;
  /** 0 = one per core, as in production. */
  threads?: number;
  logger?: Logger;
  /** Resident bytes above which the screening threads collect their isolates after each tick (a machine's budget); the machine's own when absent. */
  memoryBudgetBytes?: number;
}

export interface TickTiming {
  ms: number;
  evaluations: number;
  matches: number;
  errors: number;
  /** Error codes seen, with counts (a timeout under load is an error, not a crash). */
  errorCodes: Record<string, number>;
  /** Sorted `traderId symbol` pairs, to compare the two evaluators. */
  matchKeys: string[];
  /** Screening threads that ran the tick in the memory-saving order (0 for the in-process evaluators). */
  memorySavingThreads: number;
}

export class TickLoad {
  readonly store: MarketStore;
  readonly market: SyntheticMarket;
  readonly traders: Trader[];
  readonly screener: Screener;
  /** Each trader with its filter written by hand over columns (the compute floor). */
  private readonly floors: Array<{ trader: Trader; floor: FloorFilter; higher: Interval }>;

  private constructor(options: TickLoadOptions) {
    this.market = new SyntheticMarket({ symbols: options.symbols, intervals: ['1m', ...options.higher], history: options.history });
    this.store = new MarketStore({ history: options.history, clock: systemClock });
    const filters = benchFilters(options.traders, options.higher);
    this.traders = benchTraders(filters);
    this.floors = this.traders.map((trader, index) => ({ trader, floor: filters[index]!.floor, higher: filters[index]!.requiredTimeframes[1]! }));
    // The worker's defaults (src/config.ts): 50 ms per evaluation, 32 MB per trader, 5 failing ticks.
    this.screener = new Screener({
      threads: options.threads ?? 0,
      filterTimeoutMs: 50,
      filterMemoryMb: 32,
      failureLimit: 5,
      clock: systemClock,
      logger: options.logger ?? silentLogger(),
      ...(options.memoryBudgetBytes === undefined ? {} : { memoryBudgetBytes: options.memoryBudgetBytes }),
    });
  }

  /** Fill the store, then start the Screener; `filled` runs in between (the footprint reads memory there). */
  static async start(options: TickLoadOptions, filled?: () => void): Promise<TickLoad> {
    const load = new TickLoad(options);
    load.market.fill(load.store);
    filled?.();
    await load.screener.start();
    load.screener.setTraders(load.traders);
    return load;
  }

  /** A minute passes: the 1m candle (and any higher one due) closes on every symbol. */
  advance(): void {
    this.market.advance(this.store);
  }

  /** The 1m tick on the sandboxed Screener (on its threads: TickLoadOptions.threads). */
  async sandboxed(): Promise<TickTiming> {
    const started = performance.now();
    const result = await this.screener.run(this.tick());
    return { ...timing(performance.now() - started, result.traders), memorySavingThreads: result.memorySavingThreads };
  }

  /** The same tick with `new Function` in this thread, as the old service ran filters. */
  unsandboxed(): TickTiming {
    const started = performance.now();
    const results = evaluateUnsandboxed(this.traders, this.tick());
    return timing(performance.now() - started, results);
  }

  /** The same tick on the compute floor: the filters by hand over Float64Array columns, in this thread. */
  floor(): TickTiming {
    const started = performance.now();
    const results = evaluateFloor(this.floors, this.tick());
    return timing(performance.now() - started, results);
  }

  stop(): Promise<void> {
    return this.screener.stop();
  }

  private tick(): ScreenerRun {
    return {
      interval: '1m',
      candleOpenTime: this.market.lastClosedOpenTime('1m'),
      traderIds: this.traders.map((trader) => trader.id),
      symbols: this.market.symbols,
      market: this.store,
    };
  }
}

function timing(ms: number, traders: TraderTickOutcome[]): TickTiming {
  let evaluations = 0;
  let matches = 0;
  let errors = 0;
  const errorCodes: Record<string, number> = {};
  const matchKeys: string[] = [];
  for (const trader of traders) {
    evaluations += trader.evaluatedSymbols.length;
    matches += trader.matches.length;
    errors += trader.errors.length;
    for (const error of trader.errors) errorCodes[error.code] = (errorCodes[error.code] ?? 0) + 1;
    for (const match of trader.matches) matchKeys.push(`${trader.traderId} ${match.symbol}`);
  }
  return { ms, evaluations, matches, errors, errorCodes, matchKeys: matchKeys.sort(), memorySavingThreads: 0 };
}
