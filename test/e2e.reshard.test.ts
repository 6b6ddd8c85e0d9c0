// Signals stay exactly-once through a reshard 1 → 3 → 2 while ticks run: real worker processes (the built
// dist/main.js) against the shared local stack and the Binance simulator on an accelerated clock, judged by the chaos
// suite's independent oracle (test/chaos/support/oracle.ts), which fires what one machine running every trader would.
//
// 1 → 3 goes the way the fleet controller does it (src/fleet/plan.ts): shards 1 and 2 boot while shard 0 still runs
// every trader (an overlap: two machines screen the traders that move, and the signals' unique key absorbs the
// second write), then shard 0 restarts with SHARD_COUNT=3. 3 → 2 goes the other way, as when a machine dies first:
// shard 2 stops, nobody runs its traders for a few candles, then shards 0 and 1 restart with SHARD_COUNT=2 and catch
// the gap up from trader_status.last_evaluated_at, priming each rising edge on the candle before.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BinanceSimulator } from '../dev/binanceSim/index.ts';
import { buildWorker, ROOT, spawnWorker, waitFor, workerEnv, type WorkerProcess } from '../dev/workerProcess.ts';
import type { AcceleratedClock } from '../src/clock.ts';
import { type Interval, intervalMs } from '../src/domain.ts';
import { shardOfTrader } from '../src/database/shard.ts';
import { runOracle, type SignalRow } from './chaos/support/oracle.ts';
import { startSimulatedMarket } from './support/simulatedMarket.ts';
import { createTestUser, sharedStack, type TestUser } from './support/stack.ts';

/** Worker-clock ms per real ms: a 1m candle closes every 2 s. */
const SPEED = 30;
const MINUTE = 60_000;
const SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'];
const HISTORY = 120;

/** Kline-only filters (no ticker, no helpers), so the oracle can replay them as plain JavaScript; each flips often. */
function filters(): Array<{ name: string; code: string }> {
  const green = (basisPoints: number) => ({
    name: `green candle +${basisPoints}bp`,
    code: `const k = timeframes['1m']; const last = k[k.length - 1]; return parseFloat(last[4]) > parseFloat(last[1]) * ${1 + basisPoints / 10_000};`,
  });
  const aboveAverage = (length: number) => ({
    name: `close above SMA${length}`,
    code: `const k = timeframes['1m']; if (k.length < ${length}) return false; let sum = 0; for (let i = k.length - ${length}; i < k.length; i++) sum += parseFloat(k[i][4]); return { match: parseFloat(k[k.length - 1][4]) > sum / ${length}, conditions: ['above SMA${length}'] };`,
  });
  const volumeSpike = (length: number, factor: number) => ({
    name: `volume over ${factor}x avg${length}`,
    code: `const k = timeframes['1m']; if (k.length < ${length + 1}) return false; let sum = 0; for (let i = k.length - 1 - ${length}; i < k.length - 1; i++) sum += parseFloat(k[i][5]); return parseFloat(k[k.length - 1][5]) > (sum / ${length}) * ${factor};`,
  });
  return [green(0), green(2), green(5), green(10), aboveAverage(3), aboveAverage(5), aboveAverage(8), aboveAverage(13), volumeSpike(5, 1), volumeSpike(10, 1.1), volumeSpike(8, 0.9), volumeSpike(20, 1.2)];
}

/** Trader ids such that every shard of 3 and of 2 runs at least two traders: each phase exercises every machine. */
function traderIds(count: number): string[] {
  for (;;) {
    const ids = Array.from({ length: count }, () => crypto.randomUUID());
    const balanced = (shards: number) => Array.from({ length: shards }, (_, index) => ids.filter((id) => shardOfTrader(id, shards) === index).length).every((n) => n >= 2);
    if (balanced(3) && balanced(2)) return ids;
  }
}

describe('resharding while ticks run', () => {
  const stack = sharedStack();
  let user: TestUser;
  let simulator: BinanceSimulator;
  let clock: AcceleratedClock;
  let build: { dir: string; entry: string };
  const processes: Array<{ label: string; worker: WorkerProcess }> = [];
  const traders: Array<{ id: string; name: string; code: string }> = [];

  const spawnShard = (index: number, count: number): WorkerProcess => {
    const label = `shard-${index}-of-${count}`;
    const worker = spawnWorker(
      build.entry,
      {
        ...workerEnv({ userId: user.id, supabaseUrl: stack.supabaseUrl, key: user.workerJwt, market: simulator, symbols: SYMBOLS, history: HISTORY, clock }),
        MACHINE_ID: label,
        SHARD_INDEX: String(index),
        SHARD_COUNT: String(count),
        TRADER_POLL_MS: '30000',
      },
      build.dir,
    );
    processes.push({ label, worker });
    return worker;
  };
  const ready = (worker: WorkerProcess, label: string) => waitFor(`${label} ready`, () => worker.lines.find((line) => line.event === 'ready'), 60_000, 50);
  /** SIGTERM, as Fly stops a machine it updates or destroys: the worker flushes its signals and trader_status first. */
  const stop = async (worker: WorkerProcess) => {
    worker.child.kill('SIGTERM');
    return (await worker.exited).code;
  };
  const untilClock = (time: number) => waitFor(`clock ${new Date(time).toISOString()}`, () => clock.now() >= time, 60_000, 20);
  const candlesLater = (count: number) => untilClock((Math.floor(clock.now() / MINUTE) + count) * MINUTE + 1000);

  beforeAll(async () => {
    build = buildWorker('e2e-reshard');
    user = await createTestUser(stack);
    ({ clock, simulator } = await startSimulatedMarket(SPEED, { seed: 23, symbols: SYMBOLS, klineUpdateMs: 2000, tickerUpdateMs: 5000, restLatencyMs: 20 }));
    const specs = filters();
    const ids = traderIds(specs.length);
    for (const [index, spec] of specs.entries()) {
      const filter = { refreshInterval: '1m', requiredTimeframes: ['1m'], code: spec.code };
      await stack.sql`insert into public.traders (id, user_id, name, enabled, execution_mode, filter) values (${ids[index]!}, ${user.id}, ${spec.name}, true, 'cloud', ${stack.sql.json(filter)})`;
      traders.push({ id: ids[index]!, ...spec });
    }
  }, 120_000);

  afterAll(async () => {
    // Kept for a failing run: each process's own account of what happened.
    writeFileSync(
      join(ROOT, '.tmp', 'e2e-reshard', 'workers.log'),
      processes.map(({ label, worker }) => `==== ${label}\n${worker.stdout.join('\n')}\n${worker.stderr.join('')}`).join('\n'),
    );
    await Promise.all(processes.map(({ worker }) => worker.stop()));
    await simulator?.stop();
  });

  it('writes every signal one machine would, once, through 1 → 3 (overlap) and 3 → 2 (gap)', async () => {
    // One machine runs everything.
    const from = clock.now();
    let shard0 = spawnShard(0, 1);
    await ready(shard0, 'shard 0 of 1');
    // Traders that never ran start at the latest candle of their first boot, as in the browser: earlier closes are
    // not owed.
    const firstReadyAt = clock.now();
    await candlesLater(2);

    // 1 → 3: new shards first, then shard 0 restarts with the new count.
    const shard1 = spawnShard(1, 3);
    const shard2 = spawnShard(2, 3);
    await Promise.all([ready(shard1, 'shard 1 of 3'), ready(shard2, 'shard 2 of 3')]);
    await candlesLater(1);
    expect(await stop(shard0)).toBe(0);
    shard0 = spawnShard(0, 3);
    await ready(shard0, 'shard 0 of 3');
    await candlesLater(2);

    // 3 → 2: shard 2 goes first; its traders have no machine for two candles.
    expect(await stop(shard2)).toBe(0);
    const gapFrom = clock.now();
    await candlesLater(2);
    expect(await stop(shard0)).toBe(0);
    expect(await stop(shard1)).toBe(0);
    const survivors = [spawnShard(0, 2), spawnShard(1, 2)];
    const gapTo = clock.now();
    await Promise.all(survivors.map((worker, index) => ready(worker, `shard ${index} of 2`)));
    await candlesLater(2);
    // Every candle that closed by `requiredUntil` has had time to be screened and committed before the end; later ones
    // may close as the workers stop, so their signals are optional (but must be right).
    const requiredUntil = clock.now();
    await candlesLater(2);
    // On a loaded machine a tick can run seconds late (a minute is two real seconds here): the survivors stop only once
    // each has logged the tick (logged after its insert) of the last candle that closed by `requiredUntil`.
    const lastRequiredOpen = Math.floor(requiredUntil / MINUTE) * MINUTE - MINUTE;
    await waitFor(
      'the survivors screened the last required candle',
      () => survivors.every((worker) => worker.lines.some((line) => line.event === 'tick' && line.interval === '1m' && Date.parse(String(line.candleOpenTime)) >= lastRequiredOpen)),
      60_000,
      50,
    );
    const to = clock.now();
    for (const worker of survivors) expect(await stop(worker)).toBe(0);

    // Each process ran exactly its share of the traders.
    for (const { label, worker } of processes) {
      const [, index, count] = /^shard-(\d+)-of-(\d+)$/.exec(label)!.map(Number);
      const share = traders.filter((trader) => shardOfTrader(trader.id, count!) === index).length;
      expect(worker.lines.find((line) => line.event === 'traders_loaded'), label).toMatchObject({ traders: share, shardIndex: index, shardCount: count });
    }
    // The survivors caught up the candles shard 2's traders missed while no machine ran them.
    const caughtUp = survivors.map((worker) => worker.lines.find((line) => line.event === 'boot' && line.step === 'catchup')?.candles as Record<Interval, number> | undefined);
    expect(caughtUp.some((candles) => (candles?.['1m'] ?? 0) >= 1)).toBe(true);

    const rows = await stack.sql<SignalRow[]>`select trader_id, symbol, interval, candle_open_time, price, provenance from public.signals where user_id = ${user.id}`;
    const verdict = runOracle(
      {
        source: simulator,
        history: HISTORY,
        traders: traders.map((trader) => ({ id: trader.id, name: trader.name, code: trader.code, refreshInterval: '1m', timeframes: ['1m'] })),
        symbols: SYMBOLS,
        membership: new Map(),
        from,
        to,
        exclusions: [
          { from: Number.NEGATIVE_INFINITY, to: firstReadyAt - intervalMs('1m'), reason: 'before the first boot: no earlier evaluation to resume from' },
          { from: requiredUntil + 1, to: Number.POSITIVE_INFINITY, reason: 'end of run: closes as the workers stop' },
        ],
        // Required like any other; counted apart to show what each handoff carried.
        watched: traders
          .filter((trader) => shardOfTrader(trader.id, 3) === 2)
          .map((trader) => ({ traderId: trader.id, from: gapFrom, to: gapTo + intervalMs('1m'), reason: 'moved 3 → 2, no machine running it' })),
      },
      rows,
    );
    const summary = `found ${verdict.found}/${verdict.required}; watched ${JSON.stringify(verdict.watched)}; missing ${verdict.missing.join(', ')}; extra ${verdict.extra.join(', ')}`;
    expect(verdict.required, summary).toBeGreaterThan(20);
    expect(verdict.duplicated, summary).toEqual([]);
    // An extra signal would be a new owner firing on an episode that was already running: an edge it did not prime.
    expect(verdict.extra, summary).toEqual([]);
    expect(verdict.mismatched, summary).toEqual([]);
    expect(verdict.missing, summary).toEqual([]);

    // Every signal any machine reported is in the database, once.
    const writers = new Map<string, Set<string>>();
    for (const { label, worker } of processes) {
      for (const line of worker.lines.filter((entry) => entry.event === 'signal')) {
        const key = `${line.traderId as string}|${line.symbol as string}|${line.candleOpenTime as string}`;
        writers.set(key, (writers.get(key) ?? new Set()).add(label));
      }
    }
    expect(writers.size).toBe(rows.length);
  }, 240_000);
});
