import { describe, expect, it } from 'vitest';
import { AcceleratedClock, systemClock } from '../src/clock.ts';
import type { Candle, CandleOrigin, Interval } from '../src/domain.ts';
import { candleCloseTime, intervalMs } from '../src/domain.ts';
import { type Logger, silentLogger } from '../src/logger.ts';
import { collectingLogger } from './support/logs.ts';
import type { TickMarket } from '../src/ports.ts';
import { MAX_PENDING_CANDLES } from '../src/orchestration/TickQueue.ts';
import { type TickRequest, type TickFollowUps, TickScheduler } from '../src/orchestration/TickScheduler.ts';
import { closeWaitMs } from '../src/orchestration/TickRunner.ts';

// The scheduler's market port is three questions about stored candles; this in-memory stand-in
// answers them from a set of closed (symbol, interval, openTime) keys so each timing rule can be
// driven precisely. The real MarketData is exercised by the orchestrator and end-to-end tests.
class ClosedCandles implements TickMarket {
  readonly closed = new Set<string>();
  readonly fills: string[] = [];
  onFill: (symbol: string, interval: Interval) => void = () => {};
  private readonly universe: string[];
  constructor(universe: string[]) {
    this.universe = universe;
  }
  symbols(): string[] {
    return this.universe;
  }
  isComplete(symbol: string, interval: Interval, openTime: number): boolean {
    return this.closed.has(`${symbol}|${interval}|${openTime}`);
  }
  async fillSeries(symbol: string, interval: Interval): Promise<void> {
    this.fills.push(`${symbol}|${interval}`);
    this.onFill(symbol, interval);
  }
}

function candle(interval: Interval, openTime: number): Candle {
  return {
    openTime,
    open: 1,
    high: 1,
    low: 1,
    close: 1,
    volume: 1,
    closeTime: candleCloseTime(interval, openTime),
    quoteVolume: 1,
    trades: 1,
    takerBuyBaseVolume: 1,
    takerBuyQuoteVolume: 1,
  };
}

/** Polls until `check` holds; the deadline is generous because a shared CI machine can starve this process for seconds. */
async function until(check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = systemClock.now() + timeoutMs;
  while (!check()) {
    if (systemClock.now() > deadline) throw new Error('condition not met before the deadline');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function setup(options: {
  symbols: string[];
  graceMs: number;
  schedule: Map<Interval, Interval[]>;
  run?: (request: TickRequest) => Promise<TickFollowUps | void>;
  logger?: Logger;
}) {
  // Ten clock milliseconds per real one: a 1 s grace is 100 ms of test time.
  const clock = new AcceleratedClock({ speed: 10, originRealMs: systemClock.now(), originClockMs: Date.UTC(2026, 0, 5, 0, 0, 30) });
  const market = new ClosedCandles(options.symbols);
  const runs: TickRequest[] = [];
  const backlog: Array<[TickRequest, string]> = [];
  const scheduler = new TickScheduler({
    clock,
    logger: options.logger ?? silentLogger(),
    market,
    graceMs: options.graceMs,
    run: async (request) => {
      runs.push({ ...request, symbols: [...request.symbols].sort() });
      return options.run?.(request);
    },
    onBacklog: (request, outcome) => backlog.push([request, outcome]),
  });
  scheduler.setSchedule(options.schedule);
  scheduler.start();
  const close = (symbol: string, interval: Interval, openTime: number, origin: CandleOrigin = 'stream') => {
    market.closed.add(`${symbol}|${interval}|${openTime}`);
    scheduler.candleClosed({ symbol, interval, candle: candle(interval, openTime), origin, receivedAt: clock.now() });
  };
  return { clock, market, runs, backlog, scheduler, close };
}

const T = Date.UTC(2026, 0, 5, 0, 4);

describe('tick scheduler', () => {
  it('ticks as soon as every symbol of the universe has closed the candle', async () => {
    const { runs, scheduler, close } = setup({ symbols: ['A', 'B', 'C'], graceMs: 60_000, schedule: new Map([['1m', []]]) });
    close('A', '1m', T);
    close('B', '1m', T);
    expect(runs).toHaveLength(0);
    close('C', '1m', T);
    await until(() => runs.length === 1);
    expect(runs[0]).toMatchObject({ kind: 'tick', interval: '1m', openTime: T, symbols: ['A', 'B', 'C'], expected: 3 });
    await scheduler.stop();
  });

  it('tells how long the first close waited for the last one (what the earliest symbols pay for the tick waiting)', async () => {
    const { clock, runs, scheduler, close } = setup({ symbols: ['A', 'B'], graceMs: 60_000, schedule: new Map([['1m', []]]) });
    close('A', '1m', T);
    const firstAt = clock.now();
    await until(() => clock.now() >= firstAt + 400);
    const lastAt = clock.now();
    close('B', '1m', T);
    await until(() => runs.length === 1);
    const waited = closeWaitMs(runs[0]!)!;
    expect(waited).toBeGreaterThanOrEqual(lastAt - firstAt);
    expect(waited).toBeLessThan(lastAt - firstAt + 500);
    // A tick the watchdog fired with no close at all waited for nothing it saw.
    expect(closeWaitMs({ closeReceivedAt: new Map(), queuedAt: lastAt })).toBeNull();
    await scheduler.stop();
  });

  it('runs the work ahead of a close once before each boundary, its lead before it', async () => {
    // A hundred clock ms per real one: a minute is 0.6 s.
    const clock = new AcceleratedClock({ speed: 100, originRealMs: systemClock.now(), originClockMs: Date.UTC(2026, 0, 5, 0, 0, 30) });
    const near: Array<{ interval: Interval; at: number }> = [];
    const scheduler = new TickScheduler({
      clock,
      logger: silentLogger(),
      market: new ClosedCandles(['A']),
      graceMs: 1000,
      run: async () => undefined,
      onBoundaryNear: (interval) => near.push({ interval, at: clock.now() }),
      // 20 clock seconds: a timer that fires up to 200 real ms late on a loaded machine still lands before the boundary (5 s was 50 ms).
      boundaryLeadMs: 20_000,
    });
    scheduler.setSchedule(new Map([['1m', []]]));
    scheduler.start();
    await until(() => clock.now() >= Date.UTC(2026, 0, 5, 0, 3, 10));
    await scheduler.stop();
    // Boundaries 00:01, 00:02 and 00:03: one call each, inside the 20 s before it.
    expect(near.map((call) => call.interval)).toEqual(['1m', '1m', '1m']);
    near.forEach((call, index) => {
      const boundary = Date.UTC(2026, 0, 5, 0, index + 1);
      expect(call.at).toBeGreaterThanOrEqual(boundary - 20_000 - 200);
      expect(call.at).toBeLessThan(boundary);
    });
    const stoppedAt = near.length;
    await until(() => clock.now() >= Date.UTC(2026, 0, 5, 0, 4, 10));
    expect(near).toHaveLength(stoppedAt);
  });

  it('waits for a higher timeframe that closes at the same instant before ticking', async () => {
    const { runs, scheduler, close } = setup({ symbols: ['A'], graceMs: 60_000, schedule: new Map([['1m', ['5m']]]) });
    // 00:04 + 1m = 00:05 is also the close of the 5m candle opened at 00:00.
    close('A', '1m', T);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(runs).toHaveLength(0);
    close('A', '5m', T + intervalMs('1m') - intervalMs('5m'));
    await until(() => runs.length === 1);
    expect(runs[0]!.symbols).toEqual(['A']);
    await scheduler.stop();
  });

  it('screens a late symbol in a follow-up once its series is filled, never before', async () => {
    const { runs, market, scheduler, close } = setup({ symbols: ['A', 'B'], graceMs: 1000, schedule: new Map([['1m', []]]) });
    market.onFill = (symbol, interval) => setTimeout(() => close(symbol, interval, T, 'gapfill'), 20);
    close('A', '1m', T);
    await until(() => runs.length === 2);
    expect(runs[0]).toMatchObject({ kind: 'tick', symbols: ['A'], expected: 2 });
    expect(market.fills).toEqual(['B|1m']);
    expect(runs[1]).toMatchObject({ kind: 'followup', openTime: T, symbols: ['B'] });
    await scheduler.stop();
  });

  it('screens the candles a frozen process never collected, oldest first, before the next tick', async () => {
    const { runs, market, scheduler, close } = setup({ symbols: ['A', 'B'], graceMs: 1000, schedule: new Map([['1m', []]]) });
    close('A', '1m', T);
    close('B', '1m', T);
    await until(() => runs.length === 1);
    // Frozen across two boundaries: those closes were stored later by a gap fill (history, no event); then the next close streams in.
    for (const symbol of ['A', 'B']) for (const missed of [T + 60_000, T + 120_000]) market.closed.add(`${symbol}|1m|${missed}`);
    close('A', '1m', T + 180_000);
    close('B', '1m', T + 180_000);
    await until(() => runs.length === 4);
    expect(runs.map((run) => [run.kind, run.openTime, run.symbols])).toEqual([
      ['tick', T, ['A', 'B']],
      ['catchup', T + 60_000, ['A', 'B']],
      ['catchup', T + 120_000, ['A', 'B']],
      ['tick', T + 180_000, ['A', 'B']],
    ]);
    await scheduler.stop();
  });

  it('screens a late symbol whose fill failed once the market fills its series on a retry', async () => {
    const { runs, market, scheduler, close } = setup({ symbols: ['A', 'B'], graceMs: 1000, schedule: new Map([['1m', []]]) });
    // The scheduler's own fill of B fails (a REST timeout); the market's retry later stores the close and says so.
    market.fillSeries = async (symbol, interval) => {
      market.fills.push(`${symbol}|${interval}`);
      throw new Error('timeout after 10000 ms');
    };
    close('A', '1m', T);
    await until(() => runs.length === 1 && market.fills.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(runs).toHaveLength(1);
    market.closed.add(`B|1m|${T}`);
    scheduler.seriesFilled('B', '1m');
    await until(() => runs.length === 2);
    expect(runs[1]).toMatchObject({ kind: 'followup', openTime: T, symbols: ['B'] });
    await scheduler.stop();
  });

  it('a late symbol whose fill failed is followed up when another fill of its series, in flight at the retry, lands', async () => {
    const { runs, market, scheduler, close } = setup({ symbols: ['A', 'B'], graceMs: 1000, schedule: new Map([['1m', []]]) });
    let land: () => void = () => {};
    market.fillSeries = async (symbol, interval) => {
      market.fills.push(`${symbol}|${interval}`);
      // The first fill times out; the next one (for the next candle) is still in flight when the market's retry lands.
      if (market.fills.length === 1) throw new Error('timeout after 10000 ms');
      await new Promise<void>((resolve) => (land = resolve));
    };
    close('A', '1m', T);
    await until(() => runs.length === 1 && market.fills.length === 1);
    close('A', '1m', T + 60_000);
    await until(() => runs.length === 2 && market.fills.length === 2);
    market.closed.add(`B|1m|${T}`);
    market.closed.add(`B|1m|${T + 60_000}`);
    scheduler.seriesFilled('B', '1m');
    land();
    await until(() => runs.filter((run) => run.kind === 'followup').length === 2);
    const followUps = runs.filter((run) => run.kind === 'followup').map((run) => [run.openTime, run.symbols.join()]);
    expect(followUps).toEqual(expect.arrayContaining([[T, 'B'], [T + 60_000, 'B']]));
    await scheduler.stop();
  });

  it('a symbol still incomplete after every follow-up is given up with one log line, not silently', async () => {
    const logs = collectingLogger();
    // The runner keeps finding B's series incomplete (a fill that never completes it).
    const { runs, scheduler, close } = setup({
      symbols: ['A', 'B'],
      graceMs: 1000,
      schedule: new Map([['1m', []]]),
      logger: logs.logger,
      run: async (request) => ({ incomplete: request.symbols.filter((symbol) => symbol === 'B'), skipped: [] }),
    });
    close('A', '1m', T);
    close('B', '1m', T);
    await until(() => logs.events('tick_followup_dropped').length === 1);
    const [dropped] = logs.events('tick_followup_dropped');
    expect(dropped).toMatchObject({ interval: '1m', openTime: T, symbols: 1, first: ['B'], reason: expect.stringMatching(/still incomplete after \d+ follow-ups/) });
    // The first run, then one follow-up per round for B.
    expect(runs.filter((run) => run.kind === 'followup').every((run) => run.symbols.join() === 'B')).toBe(true);
    await scheduler.stop();
  });

  it('ignores closes of history replayed by a long gap fill: no tick, no collector, no fill', async () => {
    const { clock, runs, market, scheduler, close } = setup({ symbols: ['A', 'B'], graceMs: 100, schedule: new Map([['1m', []]]) });
    const latestOpen = Math.floor(clock.now() / 60_000) * 60_000 - 60_000;
    // Ten candles before the one before the latest: all history by the time they are filled.
    for (let back = 12; back >= 2; back--) {
      close('A', '1m', latestOpen - back * 60_000, 'gapfill');
      close('B', '1m', latestOpen - back * 60_000, 'gapfill');
    }
    // Long enough for a grace period (10 real ms here) to have fired many times over.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(runs).toEqual([]);
    expect(market.fills).toEqual([]);
    expect(scheduler.backlog()).toBe(0);
    await scheduler.stop();
  });

  it('screens candles that closed behind a slow tick oldest first, and sheds only past MAX_PENDING_CANDLES', async () => {
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { runs, backlog, scheduler, close } = setup({
      symbols: ['A'],
      graceMs: 60_000,
      schedule: new Map([['1m', []]]),
      run: (request) => (request.openTime === T ? gate : Promise.resolve()),
    });
    close('A', '1m', T);
    await until(() => runs.length === 1);
    const behind = Array.from({ length: MAX_PENDING_CANDLES + 1 }, (_, i) => T + (i + 1) * 60_000);
    for (const openTime of behind) close('A', '1m', openTime);
    // One candle too many waited: the oldest of them is shed, every other one is screened in order.
    expect(backlog.map(([request, outcome]) => [request.openTime, outcome])).toEqual([[behind[0], 'skipped']]);
    release();
    await until(() => runs.length === 1 + MAX_PENDING_CANDLES);
    expect(runs.map((run) => run.openTime)).toEqual([T, ...behind.slice(1)]);
    expect(scheduler.backlog()).toBe(0);
    await scheduler.stop();
  });

  it('follows up a pair skipped for an incomplete higher timeframe once that series is filled, for the owed trader only', async () => {
    const hourBefore = Date.UTC(2026, 0, 4, 23, 0);
    const { runs, market, scheduler, close } = setup({
      symbols: ['A', 'B'],
      graceMs: 60_000,
      schedule: new Map([['1m', ['1h']]]),
      // The tick finds A's 1h series incomplete for trader t2; the follow-up (1h filled by then) skips nothing.
      run: async (request) => ({
        incomplete: [],
        skipped: request.kind === 'tick' && !market.isComplete('A', '1h', hourBefore) ? [{ traderId: 't2', symbol: 'A', timeframes: ['1h' as const] }] : [],
      }),
    });
    close('A', '1m', T);
    close('B', '1m', T);
    await until(() => runs.length === 1);
    // A fill that has not made the series complete changes nothing.
    scheduler.seriesFilled('A', '1h');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(runs).toHaveLength(1);
    market.closed.add(`A|1h|${hourBefore}`);
    scheduler.seriesFilled('A', '1h');
    await until(() => runs.length === 2);
    expect(runs[1]).toMatchObject({ kind: 'followup', openTime: T, symbols: ['A'], traderIds: ['t2'] });
    // Nothing is owed any more: a second report of the same fill runs nothing.
    scheduler.seriesFilled('A', '1h');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(runs).toHaveLength(2);
    await scheduler.stop();
  });

  it('follows up owed pairs at the next tick when their series completed without a fill event', async () => {
    const hourBefore = Date.UTC(2026, 0, 4, 23, 0);
    const { runs, market, scheduler, close } = setup({
      symbols: ['A'],
      graceMs: 60_000,
      schedule: new Map([['1m', ['1h']]]),
      run: async (request) => ({
        incomplete: [],
        skipped: request.openTime === T && request.kind === 'tick' ? [{ traderId: 't2', symbol: 'A', timeframes: ['1h' as const] }] : [],
      }),
    });
    close('A', '1m', T);
    await until(() => runs.length === 1);
    market.closed.add(`A|1h|${hourBefore}`);
    close('A', '1m', T + 60_000);
    await until(() => runs.length === 3);
    // The owed candle first, then the new one: each on the market as it stood at its own close.
    expect(runs.slice(1).map((run) => [run.kind, run.openTime, run.traderIds])).toEqual([
      ['followup', T, ['t2']],
      ['tick', T + 60_000, undefined],
    ]);
    await scheduler.stop();
  });
});
