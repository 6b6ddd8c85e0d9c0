// A trader row that changes while a tick is in flight: the tick's matches are judged against the edge state of the version that screened them.
import { afterEach, describe, expect, it } from 'vitest';
import { intervalMs, type Signal } from '../src/domain.ts';
import { systemClock } from '../src/clock.ts';
import { silentLogger } from '../src/logger.ts';
import { RisingEdges } from '../src/orchestration/RisingEdges.ts';
import { ServiceLevel } from '../src/orchestration/ServiceLevel.ts';
import { TickRunner } from '../src/orchestration/TickRunner.ts';
import type { TickRequest } from '../src/orchestration/TickScheduler.ts';
import { TraderHealth } from '../src/orchestration/TraderHealth.ts';
import type { ScreenerRun } from '../src/ports.ts';
import { Screener } from '../src/screening/Screener.ts';
import { MarketStore } from '../src/market/MarketStore.ts';
import { SyntheticMarket } from '../bench/support/market.ts';
import { makeTrader } from './screening.support.ts';

const MINUTE = intervalMs('1m');

/** The real Screener, with a hook after each run returns: where a tick awaits, and a trader row can change. */
class HookedScreener extends Screener {
  afterRun: ((run: ScreenerRun) => void) | null = null;

  override async run(run: ScreenerRun) {
    const result = await super.run(run);
    this.afterRun?.(run);
    return result;
  }
}

const screeners: Screener[] = [];
afterEach(async () => {
  await Promise.all(screeners.splice(0).map((screener) => screener.stop()));
});

describe('a trader row that changes while a tick runs', () => {
  it('gets no signal for a match that continues, and its new version starts from a primed state, not the old version\'s verdicts', async () => {
    const synthetic = new SyntheticMarket({ symbols: 2, intervals: ['1m'], history: 60 });
    const market = new MarketStore({ history: 60, clock: systemClock });
    synthetic.fill(market);
    const SYMBOLS = synthetic.symbols;
    const [A] = SYMBOLS;
    // Both match on every candle: one episode that began before the first tick, so no signal is ever due.
    const edited = makeTrader('return true;');
    const other = makeTrader('return { match: true, conditions: [] };');
    const screener = new HookedScreener({ threads: 1, filterTimeoutMs: 2000, filterMemoryMb: 32, failureLimit: 3, clock: systemClock, logger: silentLogger() });
    screeners.push(screener);
    await screener.start();
    screener.setTraders([edited, other]);
    const edges = new RisingEdges();
    const signals: Signal[] = [];
    const runner = new TickRunner({
      userId: edited.userId,
      machineId: 'test',
      workerVersion: 'test',
      clock: systemClock,
      logger: silentLogger(),
      screener,
      market: { isComplete: () => true, candles: market },
      signals: {
        writeSignals: async (batch) => {
          signals.push(...batch);
          return { committed: batch.length, buffered: 0, committedAt: systemClock.now() };
        },
        flush: async () => undefined,
      },
      edges,
      health: new TraderHealth({ userId: edited.userId, clock: systemClock, logger: silentLogger(), screener }),
      serviceLevel: new ServiceLevel({ minCoverage: 0.9, maxLagMs: 60_000, maxLatencyMs: 60_000 }),
      traders: () => [edited, other],
    });
    const tick = (openTime: number): TickRequest => ({ kind: 'tick', interval: '1m', openTime, symbols: SYMBOLS, expected: SYMBOLS.length, closeReceivedAt: new Map(), arrivalLagsMs: [], queuedAt: systemClock.now() });
    const lastOpen = synthetic.lastClosedOpenTime('1m');

    // First tick: nothing known, both primed from the candle before; the matches continue.
    await runner.run(tick(lastOpen - 2 * MINUTE));
    expect(signals).toEqual([]);
    // The other trader's row changed before the next tick, so that tick primes it from the candle before; while
    // that priming runs (after the screening), the edited trader's row changes, as a poll of the traders does.
    edges.forgetTrader(other.id);
    screener.afterRun = (run) => {
      if (run.candleOpenTime !== lastOpen - 2 * MINUTE) return;
      screener.afterRun = null;
      edges.forgetTrader(edited.id);
    };
    await runner.run(tick(lastOpen - MINUTE));
    expect(screener.afterRun).toBeNull();
    // Judged as it was screened (its state then said the match continues): no signal.
    expect(signals).toEqual([]);
    // The earlier version's verdicts were kept out of the new version's state, whose next tick primes it.
    expect(edges.verdict(edited.id, A!, '1m', lastOpen)).toBe('unknown');
    expect(edges.verdict(other.id, A!, '1m', lastOpen)).toBe('continuing');
    await runner.run(tick(lastOpen));
    expect(signals).toEqual([]);
    expect(edges.verdict(edited.id, A!, '1m', lastOpen + MINUTE)).toBe('continuing');
  });
});
