// The bounds of supabase/migrations/0002_bounds.sql through the real PostgREST with supabase-js: each one accepts a row
// at its limit and refuses one just past it, and the worker's own status rows (src/database/rows.ts) always fit.
import type { SupabaseClient } from '@supabase/supabase-js';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_STATUS_TEXT, traderStatusRow, workerStatusRow } from '../src/database/rows.ts';
import { clientFor, createTestUser, insertTrader, sharedStack, type TestUser } from './support/stack.ts';

const stack = sharedStack();
const CHECK_VIOLATION = '23514';
const RLS_VIOLATION = '42501';
const UNTRANSLATABLE_CHARACTER = '22P05';

let candle = Date.UTC(2026, 2, 1);

/** A signal as the worker writes it, each on its own candle so the unique key never collapses two attempts. */
function signal(user: TestUser, traderId: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  candle += 60_000;
  return {
    user_id: user.id,
    trader_id: traderId,
    symbol: 'BTCUSDT',
    interval: '1m',
    candle_open_time: new Date(candle).toISOString(),
    price: 1,
    matched_conditions: ['rsi < 30'],
    source: 'cloud',
    machine_id: 'bounds-test',
    provenance: { filterCodeHash: 'abc' },
    ...overrides,
  };
}

/** The SQLSTATE of a refused insert, or null when the row was stored. */
async function insertCode(client: SupabaseClient, table: string, row: Record<string, unknown>, onConflict?: string): Promise<string | null> {
  const { error } = onConflict === undefined ? await client.from(table).insert(row) : await client.from(table).upsert(row, { onConflict });
  return error?.code ?? null;
}

/** A provenance object whose jsonb text form is exactly `bytes` long, confirmed by PostgreSQL itself. */
async function provenanceOf(bytes: number): Promise<Record<string, unknown>> {
  // jsonb prints {"pad": "…"}: 11 bytes around the padding.
  const value = { pad: 'x'.repeat(bytes - 11) };
  const [row] = await stack.sql<{ size: number }[]>`select octet_length(${JSON.stringify(value)}::text::jsonb::text) as size`;
  expect(row!.size).toBe(bytes);
  return value;
}

describe('database bounds', () => {
  let user: TestUser;
  let trader: string;
  let worker: SupabaseClient;

  beforeAll(async () => {
    user = await createTestUser(stack);
    trader = await insertTrader(stack, { userId: user.id, name: 'bounded' });
    worker = clientFor(stack, user.workerJwt);
  });

  it('matched_conditions holds up to 50 strings of up to 500 characters, and nothing else', async () => {
    const atLimit = Array.from({ length: 50 }, (_, index) => `${index}`.padEnd(500, '€'));
    expect(await insertCode(worker, 'signals', signal(user, trader, { matched_conditions: atLimit }))).toBeNull();
    // Characters, not bytes or UTF-16 units: 500 astral characters (1000 units, 2000 bytes) still fit.
    expect(await insertCode(worker, 'signals', signal(user, trader, { matched_conditions: ['😀'.repeat(500)] }))).toBeNull();
    expect(await insertCode(worker, 'signals', signal(user, trader, { matched_conditions: [] }))).toBeNull();

    const refused = {
      'a 51st condition': [...atLimit, 'one more'],
      'a 501-character condition': ['x'.repeat(501)],
      'a number among the strings': ['rsi < 30', 30],
      'a nested array': [['rsi < 30']],
      'an object instead of an array': { rsi: 30 },
      'a string instead of an array': 'rsi < 30',
    };
    for (const [what, conditions] of Object.entries(refused)) {
      expect(await insertCode(worker, 'signals', signal(user, trader, { matched_conditions: conditions })), what).toBe(CHECK_VIOLATION);
    }
  });

  it('a NUL in a condition is refused by PostgreSQL jsonb itself: the worker has to strip it before writing', async () => {
    expect(await insertCode(worker, 'signals', signal(user, trader, { matched_conditions: ['rsi\u0000 < 30'] }))).toBe(UNTRANSLATABLE_CHARACTER);
  });

  it('provenance is an object of at most 16384 bytes, or null', async () => {
    expect(await insertCode(worker, 'signals', signal(user, trader, { provenance: await provenanceOf(16_384) }))).toBeNull();
    expect(await insertCode(worker, 'signals', signal(user, trader, { provenance: null }))).toBeNull();
    expect(await insertCode(worker, 'signals', signal(user, trader, { provenance: await provenanceOf(16_385) }))).toBe(CHECK_VIOLATION);
    expect(await insertCode(worker, 'signals', signal(user, trader, { provenance: ['filterCodeHash'] }))).toBe(CHECK_VIOLATION);
    expect(await insertCode(worker, 'signals', signal(user, trader, { provenance: 'abc' }))).toBe(CHECK_VIOLATION);
  });

  it("a signal's symbol, interval and machine_id are bounded at 64, 16 and 200 characters", async () => {
    const limits = { symbol: 64, interval: 16, machine_id: 200 };
    for (const [column, limit] of Object.entries(limits)) {
      expect(await insertCode(worker, 'signals', signal(user, trader, { [column]: 'A'.repeat(limit) })), column).toBeNull();
      expect(await insertCode(worker, 'signals', signal(user, trader, { [column]: 'A'.repeat(limit + 1) })), column).toBe(CHECK_VIOLATION);
    }
  });

  it('trader_status counters are non-negative and finite, and last_error holds at most 2000 characters', async () => {
    const status = (overrides: Record<string, unknown>) => ({ trader_id: trader, user_id: user.id, state: 'failing', evaluations: 0, matches: 0, mean_evaluation_ms: 0, ...overrides });
    expect(await insertCode(worker, 'trader_status', status({ last_error: 'e'.repeat(2000) }), 'trader_id')).toBeNull();
    expect(await insertCode(worker, 'trader_status', status({ evaluations: 7, matches: 3, mean_evaluation_ms: 0.25 }), 'trader_id')).toBeNull();

    const refused = {
      'negative evaluations': { evaluations: -1 },
      'negative matches': { matches: -1 },
      'a negative mean': { mean_evaluation_ms: -0.5 },
      'a NaN mean': { mean_evaluation_ms: 'NaN' },
      'an infinite mean': { mean_evaluation_ms: 'Infinity' },
      'a 2001-character last_error': { last_error: 'e'.repeat(2001) },
    };
    for (const [what, overrides] of Object.entries(refused)) {
      expect(await insertCode(worker, 'trader_status', status(overrides), 'trader_id'), what).toBe(CHECK_VIOLATION);
    }
    const [row] = await stack.sql<{ evaluations: string; mean_evaluation_ms: number }[]>`select evaluations, mean_evaluation_ms from public.trader_status where trader_id = ${trader}`;
    expect(row).toEqual({ evaluations: '7', mean_evaluation_ms: 0.25 });
  });

  it('worker_status counters are non-negative and its text bounded (machine_id, version 200; last_error 2000)', async () => {
    const now = new Date().toISOString();
    const status = (overrides: Record<string, unknown>) => ({
      user_id: user.id,
      machine_id: 'm',
      version: '1.0.0',
      state: 'ready',
      started_at: now,
      heartbeat_at: now,
      symbols: 0,
      traders: 0,
      streams: 0,
      last_error: null,
      ...overrides,
    });
    expect(await insertCode(worker, 'worker_status', status({ machine_id: 'm'.repeat(200), version: 'v'.repeat(200), last_error: 'e'.repeat(2000) }), 'user_id,shard_index')).toBeNull();

    const refused = {
      'negative symbols': { symbols: -1 },
      'negative traders': { traders: -1 },
      'negative streams': { streams: -1 },
      'a 201-character machine_id': { machine_id: 'm'.repeat(201) },
      'a 201-character version': { version: 'v'.repeat(201) },
      'a 2001-character last_error': { last_error: 'e'.repeat(2001) },
    };
    for (const [what, overrides] of Object.entries(refused)) {
      expect(await insertCode(worker, 'worker_status', status(overrides), 'user_id,shard_index'), what).toBe(CHECK_VIOLATION);
    }
  });

  it("the worker's status rows fit whatever error they carry: cut to 2000 characters, NUL and lone surrogates gone", async () => {
    // A filter's message with a NUL, a broken pair, and a pair exactly where the cut falls.
    const error = `TRADER_RUNTIME: \u0000bad\ud800 ${'x'.repeat(MAX_STATUS_TEXT - 23)}😀${'y'.repeat(10_000)}`;
    const traderRow = traderStatusRow({
      traderId: trader,
      userId: user.id,
      state: 'disabled',
      lastError: error,
      lastEvaluatedAt: null,
      evaluations: 1,
      matches: 0,
      meanEvaluationMs: 1,
      traderUpdatedAt: null,
    });
    const workerRow = workerStatusRow({
      userId: user.id,
      machineId: 'm',
      version: '1.0.0',
      state: 'degraded',
      startedAt: Date.now(),
      heartbeatAt: Date.now(),
      symbols: 1,
      traders: 1,
      streams: 1,
      lastError: error,
    });
    expect((await worker.from('trader_status').upsert(traderRow, { onConflict: 'trader_id' })).error).toBeNull();
    expect((await worker.from('worker_status').upsert(workerRow, { onConflict: 'user_id,shard_index' })).error).toBeNull();

    const [stored] = await stack.sql<{ trader: string; worker: string }[]>`
      select t.last_error as trader, w.last_error as worker
      from public.trader_status t join public.worker_status w using (user_id) where t.trader_id = ${trader}`;
    expect(stored!.trader).toBe(stored!.worker);
    expect([...stored!.trader].length).toBe(MAX_STATUS_TEXT);
    expect(stored!.trader).toMatch(/^TRADER_RUNTIME: bad\ufffd x+\ufffd…$/);
  });
});

describe('which key may claim which source', () => {
  let user: TestUser;
  let trader: string;

  beforeAll(async () => {
    user = await createTestUser(stack);
    trader = await insertTrader(stack, { userId: user.id, name: 'sourced' });
  });

  it("a user's own session writes 'browser' signals and cannot pass one off as 'cloud'", async () => {
    const session = clientFor(stack, user.userJwt);
    expect(await insertCode(session, 'signals', signal(user, trader, { source: 'browser' }))).toBeNull();
    expect(await insertCode(session, 'signals', signal(user, trader, { source: 'cloud' }))).toBe(RLS_VIOLATION);
  });

  it("a worker key writes 'cloud' signals only: neither 'browser' nor the column's default", async () => {
    const worker = clientFor(stack, user.workerJwt);
    expect(await insertCode(worker, 'signals', signal(user, trader, { source: 'cloud' }))).toBeNull();
    expect(await insertCode(worker, 'signals', signal(user, trader, { source: 'browser' }))).toBe(RLS_VIOLATION);
    const { source: _omitted, ...defaulted } = signal(user, trader);
    expect(await insertCode(worker, 'signals', defaulted)).toBe(RLS_VIOLATION);
  });

  it('an operator (service_role) may still write either', async () => {
    const operator = clientFor(stack, stack.serviceKey);
    expect(await insertCode(operator, 'signals', signal(user, trader, { source: 'cloud' }))).toBeNull();
    expect(await insertCode(operator, 'signals', signal(user, trader, { source: 'browser' }))).toBeNull();
    const sources = await stack.sql<{ source: string; count: number }[]>`
      select source, count(*)::int as count from public.signals where trader_id = ${trader} group by source order by source`;
    expect(sources).toEqual([
      { source: 'browser', count: 2 },
      { source: 'cloud', count: 2 },
    ]);
  });
});
