// Replay on request: a user inserts a replay_requests row through supabase-js (RLS), the user's worker serves it between
// live ticks and writes replay_results; the database refuses requests past the limits.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BinanceSimulator } from '../dev/binanceSim/index.ts';
import type { AcceleratedClock } from '../src/clock.ts';
import { candleOpenTimeAt } from '../src/domain.ts';
import { silentLogger } from '../src/logger.ts';
import { BinanceRestClient } from '../src/market/BinanceRestClient.ts';
import { KlineCache } from '../src/replay/KlineCache.ts';
import { ReplayEngine } from '../src/replay/ReplayEngine.ts';
import { Screener } from '../src/screening/Screener.ts';
import { parseTraderRow } from '../src/database/parse.ts';
import { waitFor } from '../dev/workerProcess.ts';
import { inProcessWorker } from './support/inProcessWorker.ts';
import { startSimulatedMarket } from './support/simulatedMarket.ts';
import { clientFor, createTestUser, insertTrader, sharedStack } from './support/stack.ts';

/** A 1m candle closes every 3 s of real time. */
const SPEED = 20;
const MINUTE = 60_000;
const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
const HISTORY = 60;
/**
 * Matches a rising close, with the change as an explain value: many episodes over any window. It spends a few ms per
 * evaluation, so a replay of 600 candles spans several live ticks.
 */
const RISING_FILTER = {
  refreshInterval: '1m',
  requiredTimeframes: ['1m'],
  code: `const k = timeframes['1m'];
const last = k[k.length - 1], before = k[k.length - 2];
let work = 0;
for (let i = 0; i < 300000; i++) work += Math.sqrt(i);
return { match: work > 0 && last[4] > before[4], conditions: ['rising'], values: { change: last[4] - before[4] } };`,
};

const stack = sharedStack();
let clock: AcceleratedClock;
let simulator: BinanceSimulator;

beforeAll(async () => {
  ({ clock, simulator } = await startSimulatedMarket(SPEED, { seed: 62, symbols: SYMBOLS, klineUpdateMs: 3000, tickerUpdateMs: 10_000 }));
});

afterAll(async () => {
  await simulator.stop();
});

/** The same replay run directly (the engine's own reproduction of live signals is test/replay.test.ts). */
async function directReplay(traderId: string, from: number, to: number, history = HISTORY) {
  const [row] = await stack.sql<Array<{ id: string; user_id: string; name: string; enabled: boolean; execution_mode: string; filter: unknown; created_at: Date; updated_at: Date }>>`
    select id, user_id, name, enabled, execution_mode, filter, created_at, updated_at from public.traders where id = ${traderId}`;
  const parsed = parseTraderRow({ ...row!, created_at: row!.created_at.toISOString(), updated_at: row!.updated_at.toISOString() });
  if (!parsed.ok) throw new Error(parsed.rejected.reason);
  const dir = mkdtempSync(join(tmpdir(), 'replay-direct-'));
  const rest = new BinanceRestClient({ baseUrl: simulator.restUrl, clock, logger: silentLogger(), timeoutMs: 600_000 });
  const screener = new Screener({ threads: 1, filterTimeoutMs: 200, filterMemoryMb: 16, failureLimit: 3, clock, logger: silentLogger() });
  await screener.start();
  try {
    const engine = new ReplayEngine({ candles: new KlineCache({ dir, sourceUrl: simulator.restUrl, rest, clock }), screener, history, clock, logger: silentLogger() });
    return await engine.replay({ trader: parsed.trader, symbols: SYMBOLS, from, to });
  } finally {
    await screener.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('replay on request', () => {
  it('a request inserted by the user yields results rows from its worker, between live ticks that keep their service level', async () => {
    const user = await createTestUser(stack);
    const traderId = await insertTrader(stack, { userId: user.id, name: 'rising', filter: RISING_FILTER });
    const worker = inProcessWorker({ stack, user, simulator, clock, symbols: SYMBOLS, logger: silentLogger() });
    const app = clientFor(stack, user.userJwt);
    const degraded: string[] = [];
    worker.orchestrator.on('state', (state: string) => degraded.push(state));
    // The window ends before the worker starts: whatever it screens live (its boot catch-up included) is later.
    const to = candleOpenTimeAt('1m', clock.now()) - MINUTE;
    const from = to - 600 * MINUTE;
    await worker.orchestrator.start();
    await worker.replay.start();
    const liveRunsBefore = worker.liveTicks.stats().liveRuns;
    try {
      // As the web app does: the user's own session, through row-level security.
      const { data: request, error } = await app
        .from('replay_requests')
        .insert({ trader_id: traderId, symbols: SYMBOLS, range_from: new Date(from).toISOString(), range_to: new Date(to).toISOString(), status: 'done' })
        .select('id,status')
        .single();
      expect(error).toBeNull();
      // Whatever the client says, a request starts pending.
      expect(request!.status).toBe('pending');
      // An inline filter that cannot compile: served after the first, failed with the reason.
      const { data: broken } = await app
        .from('replay_requests')
        .insert({ filter: { code: 'return (', refreshInterval: '1m' }, symbols: ['BTCUSDT'], range_from: new Date(to - 30 * MINUTE).toISOString(), range_to: new Date(to).toISOString() })
        .select('id')
        .single();
      const finished = await waitFor('both requests finished', async () => {
        const { data } = await app.from('replay_requests').select('id,status,reason,summary,machine_id').in('id', [request!.id, broken!.id]);
        return (data ?? []).every((row) => row.status === 'done' || row.status === 'failed') ? data : null;
      }, 120_000, 200);
      const done = finished.find((row) => row.id === request!.id)!;
      const failed = finished.find((row) => row.id === broken!.id)!;
      expect(done).toMatchObject({ status: 'done', reason: null, machine_id: 'test' });
      expect(failed.status).toBe('failed');
      expect(failed.reason).toMatch(/disabled .*TRADER_COMPILE/);

      const { data: results } = await app
        .from('replay_results')
        .select('trader_id,symbol,interval,candle_open_time,price,matched_conditions,filter_values,code_hash')
        .eq('request_id', request!.id)
        .order('candle_open_time')
        .order('symbol');
      const direct = await directReplay(traderId, from, to);
      expect(direct.signals.length).toBeGreaterThan(50);
      expect(results!.length).toBe(direct.signals.length);
      expect(done.summary).toMatchObject({ candles: 600, evaluated: 1200, signals: direct.signals.length, results: direct.signals.length, errors: 0 });
      const sorted = [...direct.signals].sort((a, b) => a.candle_open_time.localeCompare(b.candle_open_time) || a.symbol.localeCompare(b.symbol));
      expect(
        results!.map((row) => ({ symbol: row.symbol, interval: row.interval, at: Date.parse(row.candle_open_time), price: Number(row.price), conditions: row.matched_conditions, values: row.filter_values })),
      ).toEqual(sorted.map((signal) => ({ symbol: signal.symbol, interval: signal.interval, at: Date.parse(signal.candle_open_time), price: signal.price, conditions: signal.conditions, values: signal.values })));
      expect(results!.every((row) => row.trader_id === traderId && Date.parse(row.candle_open_time) >= from && Date.parse(row.candle_open_time) < to)).toBe(true);
      expect(new Set(results!.map((row) => row.code_hash)).size).toBe(1);

      // Replay worked in many slices while live ticks ran, and no live screening run started during a slice.
      const gate = worker.liveTicks.stats();
      expect(gate.slices).toBeGreaterThan(600);
      // Live ticks ran while the replay ran (how many closes it spans depends on the machine's speed: one on a quiet one).
      expect(gate.liveRuns - liveRunsBefore).toBeGreaterThanOrEqual(1);
      expect(gate.liveRunsDuringSlices).toBe(0);
      // The two requests, and the trader's own look-back.
      expect(worker.replay.stats()).toMatchObject({ done: 2, failed: 1 });
      expect(degraded).not.toContain('degraded');
      // Nothing of replay became a live signal: the live worker only writes what it screened since it started.
      const { data: live } = await app.from('signals').select('candle_open_time').eq('trader_id', traderId);
      expect((live ?? []).every((row) => Date.parse(row.candle_open_time) >= to)).toBe(true);

      // Another user sees neither the request nor its results.
      const stranger = clientFor(stack, (await createTestUser(stack)).userJwt);
      expect((await stranger.from('replay_requests').select('id').eq('id', request!.id)).data).toEqual([]);
      expect((await stranger.from('replay_results').select('id').eq('request_id', request!.id)).data).toEqual([]);
    } finally {
      await worker.stop(5_000);
    }
  }, 180_000);

  it('a new trader, and each edit of its code, gets a look-back over its last candles from the live store', async () => {
    const user = await createTestUser(stack);
    const worker = inProcessWorker({ stack, user, simulator, clock, symbols: SYMBOLS, logger: silentLogger() });
    const app = clientFor(stack, user.userJwt);
    // Created while the worker runs, as a user creates one in the web app.
    const other = await insertTrader(stack, { userId: user.id, name: 'other', filter: { code: 'return false;', refreshInterval: '1m', requiredTimeframes: ['1m'] } });
    await worker.orchestrator.start();
    await worker.replay.start();
    try {
      const insertedAt = clock.now();
      const traderId = await insertTrader(stack, { userId: user.id, name: 'new', filter: RISING_FILTER });
      const lookbacks = async (count: number) =>
        waitFor(`${count} look-backs of the new trader done`, async () => {
          const { data } = await app.from('replay_requests').select('id,kind,status,code_hash,range_from,range_to,symbols,summary').eq('trader_id', traderId).eq('kind', 'lookback').order('created_at');
          return (data ?? []).length === count && data!.every((row) => row.status === 'done') ? data! : null;
        }, 60_000, 200);
      const [first] = await lookbacks(1);
      expect(first).toMatchObject({ kind: 'lookback', symbols: SYMBOLS });
      const from = Date.parse(first!.range_from);
      const to = Date.parse(first!.range_to);
      // Half of inProcessWorker's 60 candles of history; the filters of a look-back see the other half, less one.
      expect(to - from).toBe(30 * MINUTE);
      const direct = await directReplay(traderId, from, to, HISTORY - 30 - 1);
      const { data: results } = await app.from('replay_results').select('symbol,candle_open_time,price,filter_values').eq('request_id', first!.id).order('candle_open_time').order('symbol');
      expect(direct.candles).toHaveLength(30);
      const sorted = [...direct.signals].sort((a, b) => a.candle_open_time.localeCompare(b.candle_open_time) || a.symbol.localeCompare(b.symbol));
      expect(results!.map((row) => [row.symbol, Date.parse(row.candle_open_time), Number(row.price), row.filter_values])).toEqual(
        sorted.map((signal) => [signal.symbol, Date.parse(signal.candle_open_time), signal.price, signal.values]),
      );
      expect(first!.summary).toMatchObject({ candles: 30, evaluated: 60, signals: direct.signals.length });

      // An edit is a new code version: a look-back of its own, once.
      const edited = { ...RISING_FILTER, code: RISING_FILTER.code.replace('last[4] > before[4]', 'last[4] < before[4]') };
      await stack.sql`update public.traders set filter = ${stack.sql.json(edited)} where id = ${traderId}`;
      const [, second] = await lookbacks(2);
      expect(second!.code_hash).not.toBe(first!.code_hash);
      // And a shadow: the previous and the edited code over the 10 candles after the edit, their differing verdicts recorded.
      const shadow = await waitFor('the shadow of the edit done', async () => {
        const { data } = await app.from('replay_requests').select('id,status,reason,code_hash,previous_code_hash,range_from,range_to,summary').eq('trader_id', traderId).eq('kind', 'shadow');
        return data?.[0]?.status === 'done' || data?.[0]?.status === 'failed' ? data[0] : null;
      }, 120_000, 200);
      expect(shadow).toMatchObject({ status: 'done', code_hash: second!.code_hash, previous_code_hash: first!.code_hash });
      expect(Date.parse(shadow.range_to) - Date.parse(shadow.range_from)).toBe(10 * MINUTE);
      const { data: differences } = await app.from('replay_results').select('variant,symbol,candle_open_time,filter_values,code_hash').eq('request_id', shadow.id);
      // Rising against falling: they differ wherever the close moved, each side naming its own code.
      expect(differences!.length).toBeGreaterThan(5);
      expect(shadow.summary).toMatchObject({ candles: 10, differences: differences!.length });
      for (const row of differences!) {
        if (row.variant === 'old') expect([row.filter_values.change > 0, row.code_hash]).toEqual([true, first!.code_hash]);
        else expect([row.variant, row.filter_values.change < 0, row.code_hash]).toEqual(['new', true, second!.code_hash]);
      }
      // The trader that existed at boot got its look-back too, and nothing is looked back on twice.
      const { data: all } = await app.from('replay_requests').select('trader_id,kind').eq('kind', 'lookback');
      expect(all!.filter((row) => row.trader_id === other)).toHaveLength(1);
      expect(all!).toHaveLength(3);
      // None of it is a live signal: the live worker starts at the latest candle closed when the trader arrived (its
      // tick may still be running or waiting when the poll loads the trader, under load), never further back.
      const { data: live } = await app.from('signals').select('candle_open_time').eq('trader_id', traderId);
      const latestClosed = candleOpenTimeAt('1m', insertedAt) - MINUTE;
      expect((live ?? []).filter((row) => Date.parse(row.candle_open_time) < latestClosed)).toEqual([]);
    } finally {
      await worker.stop(5_000);
    }
  }, 200_000);

  it('refuses requests past the limits: range, symbols, requests per hour, and any from a worker key', async () => {
    const user = await createTestUser(stack);
    const traderId = await insertTrader(stack, { userId: user.id, filter: { ...RISING_FILTER, refreshInterval: '1h', requiredTimeframes: ['1h'] } });
    const app = clientFor(stack, user.userJwt);
    const now = Date.now();
    const request = (fromMs: number, toMs: number, symbols: unknown = SYMBOLS) => ({ trader_id: traderId, symbols, range_from: new Date(fromMs).toISOString(), range_to: new Date(toMs).toISOString() });
    // 1000 candles of the trader's refresh interval (1h here) at most.
    const tooLong = await app.from('replay_requests').insert(request(now - 1001 * 3_600_000, now));
    expect(tooLong.error?.code).toBe('23514');
    expect(tooLong.error?.message).toMatch(/at most 1000 candles/);
    expect((await app.from('replay_requests').insert(request(now - 2 * MINUTE, now - 3 * MINUTE))).error?.message).toMatch(/range_to must be after range_from/);
    expect((await app.from('replay_requests').insert(request(now - MINUTE, now, Array.from({ length: 21 }, (_, i) => `S${i}USDT`)))).error?.message).toMatch(/1 to 20 symbols/);
    expect((await app.from('replay_requests').insert(request(now - MINUTE, now, ['btc usdt']))).error?.code).toBe('23514');
    // A user cannot pass its request for a look-back (outside the hourly quota).
    const sneaky = await app.from('replay_requests').insert({ ...request(now - MINUTE, now), kind: 'lookback', code_hash: 'a'.repeat(64) });
    expect(sneaky.error?.code).toBe('42501');
    // A worker key serves requests; it never makes one.
    const asWorker = await clientFor(stack, user.workerJwt).from('replay_requests').insert(request(now - 999 * 3_600_000, now));
    expect(asWorker.error?.code).toBe('42501');
    // Ten an hour (the refused ones above do not count), the eleventh refused.
    for (let i = 0; i < 10; i++) expect((await app.from('replay_requests').insert(request(now - 999 * 3_600_000, now))).error).toBeNull();
    const eleventh = await app.from('replay_requests').insert(request(now - 10 * 3_600_000, now));
    expect(eleventh.error?.code).toBe('23514');
    expect(eleventh.error?.message).toMatch(/at most 10 requests per hour/);
    // And a user cannot recycle its quota by deleting requests, nor mark one done itself.
    await app.from('replay_requests').delete().eq('user_id', user.id);
    const [{ count }] = await stack.sql<[{ count: string }]>`select count(*) from public.replay_requests where user_id = ${user.id}`;
    expect(Number(count)).toBe(10);
    const forged = await app.from('replay_requests').update({ status: 'done' }).eq('user_id', user.id).select('id');
    expect(forged.data ?? []).toEqual([]);
  });
});
