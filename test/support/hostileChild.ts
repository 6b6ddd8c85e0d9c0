// A process of its own for a filter that may take its process down: the real Screener (one thread), the filter beside
// the neighbours for a few ticks, one JSON line per tick on stdout. Run by test/security.hostile.test.ts.
// argv: a JSON array of hostile filters' code, then the tick count. Exit 0 when every tick ran; anything else (a signal)
// is what the test looks for.
import { systemClock } from '../../src/clock.ts';
import { silentLogger } from '../../src/logger.ts';
import { Screener } from '../../src/screening/Screener.ts';
import { makeTrader, TestMarket } from '../screening.support.ts';
import { NEIGHBOUR_FILTERS } from './hostileFilters.ts';

export const CHILD_SYMBOLS = ['AAAUSDT', 'BBBUSDT', 'CCCUSDT', 'DDDUSDT'];
export const CHILD_MARKET = { symbols: CHILD_SYMBOLS, intervals: ['1m' as const], candles: 200, lastCloseTime: Date.UTC(2026, 0, 10) - 1 };

/** One tick as the child reports it: per trader (the hostile ones in order, then the neighbours), or null once not run. */
export interface ChildTick {
  wallMs: number;
  traders: Array<{ matches: Array<{ symbol: string; conditions: string[] }>; errors: Array<{ code: string; message: string }>; disabled: string | null } | null>;
  /** Positions (as above) of the disabled traders. */
  disabled: number[];
}

async function main(codes: string[], ticks: number): Promise<void> {
  const market = TestMarket.build(CHILD_MARKET);
  const traders = [...codes, ...NEIGHBOUR_FILTERS].map((code) => makeTrader(code));
  const screener = new Screener({ threads: 1, filterTimeoutMs: 50, filterMemoryMb: 16, failureLimit: 2, clock: systemClock, logger: silentLogger() });
  await screener.start();
  try {
    screener.setTraders(traders);
    for (let i = 0; i < ticks; i++) {
      const started = performance.now();
      const result = await screener.run({ interval: '1m', candleOpenTime: 0, traderIds: traders.map((t) => t.id), symbols: CHILD_SYMBOLS, market });
      const wallMs = performance.now() - started;
      const line: ChildTick = {
        wallMs,
        traders: traders.map((trader) => {
          const own = result.traders.find((t) => t.traderId === trader.id);
          return own ? { matches: own.matches.map(({ symbol, conditions }) => ({ symbol, conditions })), errors: own.errors.map(({ code, message }) => ({ code, message })), disabled: own.disabled?.reason ?? null } : null;
        }),
        disabled: screener.disabledTraders().map((d) => traders.findIndex((t) => t.id === d.traderId)),
      };
      process.stdout.write(`${JSON.stringify(line)}\n`);
    }
  } finally {
    await screener.stop();
  }
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  await main(JSON.parse(process.argv[2] ?? '["return true;"]') as string[], Number(process.argv[3] ?? 3));
}
