// Pure parts of the Supabase adapter: trader rows, error classification, the signal buffer's overflow policy.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DatabaseRejectedError, TransientError } from '../src/errors.ts';
import { isTransientFailure, toDatabaseError } from '../src/database/dbErrors.ts';
import { parseTraderRow, type TraderRow } from '../src/database/parse.ts';
import { newTicket, SignalBuffer } from '../src/database/SignalBuffer.ts';
import { signalSeries } from './support/signals.ts';

function row(filter: unknown, overrides: Partial<TraderRow> = {}): TraderRow {
  return {
    id: '6b1f0c2e-8d7a-4c1e-9a55-3f0d2b9e7c11',
    user_id: 'a3c9e1f0-1b2c-4d5e-8f90-123456789abc',
    name: 'RSI dip',
    enabled: true,
    execution_mode: 'cloud',
    filter,
    created_at: '2026-01-01T00:00:00+00:00',
    updated_at: '2026-01-02T00:00:00.123456+00:00',
    ...overrides,
  };
}

function reasonOf(filter: unknown, overrides: Partial<TraderRow> = {}): string {
  const parsed = parseTraderRow(row(filter, overrides));
  if (parsed.ok) throw new Error('expected a rejection');
  return parsed.rejected.reason;
}

describe('parsing trader rows', () => {
  it('defaults refreshInterval to 1m and orders timeframes as INTERVALS does', () => {
    const parsed = parseTraderRow(row({ code: 'return true;', requiredTimeframes: ['4h', '5m', '4h'] }));
    expect(parsed.ok && parsed.trader.filter.refreshInterval).toBe('1m');
    expect(parsed.ok && parsed.trader.timeframes).toEqual(['1m', '5m', '4h']);
  });

  it('hashes the filter code with sha256 so an edit is recognisable', () => {
    const code = 'return ticker.P > 5;';
    const parsed = parseTraderRow(row({ code }));
    expect(parsed.ok && parsed.trader.codeHash).toBe(createHash('sha256').update(code).digest('hex'));
  });

  it('accepts a filter stored as a JSON string and a description stored as one string', () => {
    const parsed = parseTraderRow(row(JSON.stringify({ code: 'return false;', refreshInterval: '15m', description: 'dip buyer' })));
    expect(parsed.ok && parsed.trader.filter).toEqual({
      code: 'return false;',
      description: ['dip buyer'],
      refreshInterval: '15m',
      requiredTimeframes: [],
      indicators: [],
      helpers: 'webapp',
    });
  });

  it("runs a trader against the web app's helpers unless its filter opts in to the textbook ones", () => {
    const helpersOf = (filter: unknown) => {
      const parsed = parseTraderRow(row(filter));
      if (!parsed.ok) throw new Error(parsed.rejected.reason);
      return parsed.trader.filter.helpers;
    };
    expect(helpersOf({ code: 'return true;' })).toBe('webapp');
    expect(helpersOf({ code: 'return true;', helpers: null })).toBe('webapp');
    expect(helpersOf({ code: 'return true;', helpers: 'webapp' })).toBe('webapp');
    expect(helpersOf({ code: 'return true;', helpers: 'textbook' })).toBe('textbook');
    expect(helpersOf(JSON.stringify({ code: 'return true;', helpers: 'textbook' }))).toBe('textbook');
  });

  it('rejects a trader whose helpers version it does not know, rather than running it against another library', () => {
    expect(reasonOf({ code: 'return true;', helpers: 'Textbook' })).toBe(
      'filter.helpers: unknown helpers version "Textbook" (expected "webapp" or "textbook", or nothing for "webapp")',
    );
    expect(reasonOf({ code: 'return true;', helpers: 2 })).toMatch(/^filter\.helpers: unknown helpers version 2 \(/);
    expect(reasonOf({ code: 'return true;', helpers: { version: 'textbook' } })).toMatch(/^filter\.helpers: unknown helpers version \{"version":"textbook"\} \(/);
  });

  it('names the field and the problem when a row is unusable', () => {
    expect(reasonOf('{"code": ')).toMatch(/^filter: malformed JSON string \(/);
    expect(reasonOf(null)).toBe('filter: missing');
    expect(reasonOf([1, 2])).toBe('filter: must be an object');
    expect(reasonOf({})).toBe('filter.code: must be a non-empty string');
    expect(reasonOf({ code: '  \n' })).toBe('filter.code: must be a non-empty string');
    expect(reasonOf({ code: 'x', refreshInterval: '1M' })).toMatch(/^filter\.refreshInterval: unknown interval "1M" \(expected one of 1m, /);
    expect(reasonOf({ code: 'x', requiredTimeframes: ['1h', '90m'] })).toMatch(/^filter\.requiredTimeframes\[1\]: unknown interval "90m"/);
    expect(reasonOf({ code: 'x', requiredTimeframes: '1h' })).toBe('filter.requiredTimeframes: must be a list of intervals');
    expect(reasonOf({ code: 'x', indicators: {} })).toBe('filter.indicators: must be a list');
    expect(reasonOf({ code: 'x' }, { execution_mode: 'server' })).toMatch(/^execution_mode: unknown value "server"/);
  });

  it('keeps the id, name and updated_at of a rejected row for its status', () => {
    const parsed = parseTraderRow(row({ code: '' }));
    expect(parsed).toEqual({
      ok: false,
      rejected: { id: row(null).id, name: 'RSI dip', updatedAt: '2026-01-02T00:00:00.123456+00:00', reason: 'filter.code: must be a non-empty string' },
    });
  });
});

describe('classifying database failures', () => {
  it('treats unreachable, overloaded or restarting databases as transient', () => {
    expect(isTransientFailure({ message: 'TypeError: fetch failed' }, 0)).toBe(true);
    expect(isTransientFailure({ message: 'An invalid response was received from the upstream server' }, 502)).toBe(true);
    expect(isTransientFailure({ message: 'schema cache', code: 'PGRST002' }, 503)).toBe(true);
    expect(isTransientFailure({ message: 'too many connections', code: '53300' }, 500)).toBe(true);
    expect(isTransientFailure({ message: 'slow down' }, 429)).toBe(true);
  });

  it('treats refusals of the request itself as permanent', () => {
    expect(isTransientFailure({ message: 'new row violates row-level security policy', code: '42501' }, 403)).toBe(false);
    expect(isTransientFailure({ message: 'JWT expired', code: 'PGRST301' }, 401)).toBe(false);
    expect(isTransientFailure({ message: 'insert or update violates foreign key constraint', code: '23503' }, 409)).toBe(false);
  });

  it('wraps into the error type that tells the caller what to do', () => {
    const transient = toDatabaseError('write signals', { message: 'fetch failed' }, 0);
    expect(transient).toBeInstanceOf(TransientError);
    expect(transient.message).toBe('write signals failed (HTTP 0): fetch failed');
    const rejected = toDatabaseError('write signals', { message: 'denied', code: '42501' }, 403);
    expect(rejected).toBeInstanceOf(DatabaseRejectedError);
    expect(rejected).toMatchObject({ code: 'DB_REJECTED', status: 403, dbCode: '42501' });
  });
});

describe('the signal buffer', () => {
  const user = 'a3c9e1f0-1b2c-4d5e-8f90-123456789abc';

  it('drops the oldest waiting signals when full and accounts them to their batches', () => {
    const buffer = new SignalBuffer(3);
    const first = newTicket(3);
    const second = newTicket(2);
    const signals = signalSeries(user, 't', 5);
    buffer.push(signals.slice(0, 3), first);
    const dropped = buffer.push(signals.slice(3), second);
    expect(dropped.map((entry) => entry.signal)).toEqual(signals.slice(0, 2));
    expect(first.dropped).toBe(2);
    expect(second.dropped).toBe(0);
    expect(buffer.take(10).map((entry) => entry.signal)).toEqual(signals.slice(2));
    expect(buffer.droppedTotal).toBe(2);
  });

  it('never drops signals that are in flight', () => {
    const buffer = new SignalBuffer(2);
    const signals = signalSeries(user, 't', 4);
    const ticket = newTicket(4);
    buffer.push(signals.slice(0, 2), ticket);
    buffer.take(2);
    const dropped = buffer.push(signals.slice(2), ticket);
    expect(dropped.map((entry) => entry.signal)).toEqual(signals.slice(2));
    expect(buffer.settleInFlight().map((entry) => entry.signal)).toEqual(signals.slice(0, 2));
    expect(buffer.length).toBe(0);
  });
});
