// Explain: a live signal stores the filter's values, the ticker it was shown and a reference to its exact code
// (trader_versions), and trader_status shows the last tick's evaluated, matched and failed symbols with the first errors.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BinanceSimulator } from '../dev/binanceSim/index.ts';
import type { AcceleratedClock } from '../src/clock.ts';
import { candleOpenTimeAt } from '../src/domain.ts';
import { silentLogger } from '../src/logger.ts';
import { waitFor } from '../dev/workerProcess.ts';
import { inProcessWorker } from './support/inProcessWorker.ts';
import { startSimulatedMarket } from './support/simulatedMarket.ts';
import { clientFor, createTestUser, insertTrader, sharedStack } from './support/stack.ts';

const SPEED = 20;
const MINUTE = 60_000;
const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
const MARKER_VOLUME = 555_555;
const VALUES_FILTER = {
  refreshInterval: '1m',
  requiredTimeframes: ['1m'],
  code: `const k = timeframes['1m'];
const last = k[k.length - 1];
if (parseFloat(last[5]) !== ${MARKER_VOLUME}) return false;
return { match: true, conditions: ['marker'], values: { close: last[4], volume: last[5], bars: k.length, bad: 'text' } };`,
};
/** Fails on ETHUSDT, never matches on BTCUSDT: one failed and one evaluated symbol per tick. */
const FAILING_FILTER = { refreshInterval: '1m', requiredTimeframes: ['1m'], code: `if (ticker.s === 'ETHUSDT') throw new Error('no ETH today'); return false;` };

const stack = sharedStack();
let clock: AcceleratedClock;
let simulator: BinanceSimulator;

beforeAll(async () => {
  ({ clock, simulator } = await startSimulatedMarket(SPEED, { seed: 61, symbols: SYMBOLS, klineUpdateMs: 3000, tickerUpdateMs: 10_000 }));
});

afterAll(async () => {
  await simulator.stop();
});

describe('explain', () => {
  it('a signal carries its values, the ticker the filter saw and its exact code; trader_status the last tick by symbol', async () => {
    const user = await createTestUser(stack);
    const valuesId = await insertTrader(stack, { userId: user.id, name: 'values', filter: VALUES_FILTER });
    const failingId = await insertTrader(stack, { userId: user.id, name: 'failing', filter: FAILING_FILTER });
    const { orchestrator } = inProcessWorker({ stack, user, simulator, clock, symbols: SYMBOLS, logger: silentLogger(), failureLimit: 1000 });
    await orchestrator.start();
    const marked = candleOpenTimeAt('1m', clock.now()) + MINUTE;
    simulator.scriptCandle('BTCUSDT', '1m', marked, { volume: MARKER_VOLUME });
    const client = clientFor(stack, user.userJwt);
    try {
      await waitFor('the marked candle signalled', async () => {
        const { data } = await client.from('signals').select('id').eq('trader_id', valuesId);
        return (data ?? []).length > 0;
      }, 60_000, 100);
      await waitFor('the failing trader reported a tick', async () => {
        const { data } = await client.from('trader_status').select('last_tick_failed').eq('trader_id', failingId).maybeSingle();
        return (data as { last_tick_failed: number | null } | null)?.last_tick_failed === 1;
      }, 60_000, 100);
    } finally {
      await orchestrator.stop(5_000);
    }

    // Read as the web app reads them: the user's own session, through RLS.
    const { data: signals, error } = await client.from('signals').select('symbol,candle_open_time,price,code_hash,filter_values,ticker,provenance').eq('trader_id', valuesId);
    expect(error).toBeNull();
    expect(signals).toHaveLength(1);
    const signal = signals![0]!;
    expect(signal.symbol).toBe('BTCUSDT');
    expect(Date.parse(signal.candle_open_time)).toBe(marked);
    // The numbers it returned, the off-contract one dropped (with a warning, below).
    expect(signal.filter_values).toEqual({ close: Number(signal.price), volume: MARKER_VOLUME, bars: 60 });
    // The ticker fields the filter was shown, as Binance strings; the snapshot provenance names is that one.
    expect(signal.ticker.s).toBe('BTCUSDT');
    expect(typeof signal.ticker.c).toBe('string');
    if (signal.provenance.ticker !== null) expect(signal.ticker.E).toBe(String(signal.provenance.ticker.eventTime));
    // The exact code: its version row, whose hash the database checked.
    const codeHash = createHash('sha256').update(VALUES_FILTER.code).digest('hex');
    expect(signal.code_hash).toBe(codeHash);
    expect(signal.provenance.filterCodeHash).toBe(codeHash);
    const { data: versions } = await client.from('trader_versions').select('code_hash,code,trader_id').eq('code_hash', codeHash);
    expect(versions).toEqual([{ code_hash: codeHash, code: VALUES_FILTER.code, trader_id: valuesId }]);

    const { data: statuses } = await client
      .from('trader_status')
      .select('trader_id,last_tick_evaluated,last_tick_matched,last_tick_failed,last_tick_errors,last_warning')
      .in('trader_id', [valuesId, failingId]);
    const values = statuses!.find((row) => row.trader_id === valuesId)!;
    const failing = statuses!.find((row) => row.trader_id === failingId)!;
    expect(values.last_tick_evaluated).toBe(2);
    expect(values.last_tick_failed).toBe(0);
    expect(values.last_tick_errors).toEqual([]);
    expect(values.last_warning).toMatch(/values\.bad is a string/);
    expect(failing).toMatchObject({ last_tick_evaluated: 2, last_tick_matched: 0, last_tick_failed: 1 });
    expect(failing.last_tick_errors).toEqual([{ symbol: 'ETHUSDT', code: 'TRADER_RUNTIME', message: 'Error: no ETH today' }]);
  }, 90_000);

  it('the database refuses a version whose hash is not its code, and values beyond the bounds', async () => {
    const user = await createTestUser(stack);
    const traderId = await insertTrader(stack, { userId: user.id });
    const worker = clientFor(stack, user.workerJwt);
    const forged = await worker.from('trader_versions').insert({ user_id: user.id, code_hash: 'a'.repeat(64), trader_id: traderId, code: 'return true;' });
    expect(forged.error?.code).toBe('23514');
    const code = 'return true;';
    const hash = createHash('sha256').update(code).digest('hex');
    expect((await worker.from('trader_versions').insert({ user_id: user.id, code_hash: hash, trader_id: traderId, code })).error).toBeNull();
    const base = { user_id: user.id, trader_id: traderId, symbol: 'BTCUSDT', interval: '1m', price: 1, source: 'cloud', code_hash: hash };
    const tooMany = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, i]));
    const over = await worker.from('signals').insert({ ...base, candle_open_time: new Date(0).toISOString(), filter_values: tooMany });
    expect(over.error?.code).toBe('23514');
    const text = await worker.from('signals').insert({ ...base, candle_open_time: new Date(60_000).toISOString(), filter_values: { a: 'x' } });
    expect(text.error?.code).toBe('23514');
    // A signal may cite only a version that exists.
    const missing = await worker.from('signals').insert({ ...base, candle_open_time: new Date(120_000).toISOString(), code_hash: 'b'.repeat(64) });
    expect(missing.error?.code).toBe('23503');
    const fine = await worker.from('signals').insert({ ...base, candle_open_time: new Date(180_000).toISOString(), filter_values: { a: 1.5, 'b.c-d_e': -2 } });
    expect(fine.error).toBeNull();
  });
});
