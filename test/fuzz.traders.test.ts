// Property-based tests of trader-row validation: any row is a runnable trader or a rejection whose one-line reason names the field.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { INTERVALS, type Trader } from '../src/domain.ts';
import { codeHash, MAX_FILTER_CODE_LENGTH, parseTraderRow, type TraderRow } from '../src/database/parse.ts';
import { TraderDiff } from '../src/database/TraderDiff.ts';
import { anyJson, check, nastyString } from './fuzz.support.ts';

const uuidArb = fc.uuid();
const intervalArb = fc.constantFrom(...INTERVALS);
const isoArb = fc.date({ min: new Date('2020-01-01'), max: new Date('2030-01-01'), noInvalidDate: true }).map((date) => date.toISOString());
const codeArb = fc.oneof(fc.constantFrom('return true;', "return helpers.getLatestRSI(timeframes['1m'], 14) < 30;", 'return { match: false };'), fc.string({ minLength: 1, maxLength: 60 }).filter((code) => code.trim().length > 0));

/** A filter as the web app writes it. */
const validFilterArb = fc.record(
  {
    code: codeArb,
    description: fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 }), fc.constant(null)),
    refreshInterval: fc.oneof(intervalArb, fc.constant(null)),
    requiredTimeframes: fc.oneof(fc.array(intervalArb, { maxLength: 4 }), fc.constant(null)),
    indicators: fc.oneof(fc.array(anyJson, { maxLength: 2 }), fc.constant(null)),
  },
  { requiredKeys: ['code'] },
);

const validRowArb = fc.record({
  id: uuidArb,
  user_id: uuidArb,
  name: fc.oneof(fc.string({ maxLength: 30 }), fc.constant(null)),
  enabled: fc.boolean(),
  execution_mode: fc.constantFrom('cloud', 'both', 'browser'),
  // jsonb, or a JSON string inside jsonb as the web app sometimes stored it.
  filter: fc.oneof(validFilterArb, validFilterArb.map((filter) => JSON.stringify(filter))),
  created_at: isoArb,
  updated_at: isoArb,
});

const FILTER_FIELDS = ['code', 'description', 'refreshInterval', 'requiredTimeframes', 'indicators'] as const;
const ROW_FIELDS = ['id', 'user_id', 'name', 'enabled', 'execution_mode', 'filter', 'updated_at'] as const;

/** Any value a broken row could hold in place of a field, including absence and huge strings. */
const junkArb = fc.oneof(
  { weight: 4, arbitrary: anyJson },
  { weight: 3, arbitrary: nastyString },
  { weight: 1, arbitrary: fc.constantFrom('x'.repeat(MAX_FILTER_CODE_LENGTH + 1), `${'7m,'.repeat(50_000)}`, '{"code": "return true;"', '{"code": 1}', '"{\\"code\\":\\"x\\"}"', '{\n"code":\n}', '[]', 'null', '1') },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

/** A reason names the field first (`filter.requiredTimeframes[2]: …`), fits on one line and stays short enough for a status row. */
const REASON = /^(id|user_id|name|enabled|execution_mode|updated_at|filter)(\.[A-Za-z]+|\[\d+\])*: \S/;

function expectRunnable(trader: Trader, row: TraderRow): void {
  expect(trader.id).toBe(row.id);
  expect(typeof trader.userId).toBe('string');
  expect(typeof trader.name).toBe('string');
  expect(typeof trader.enabled).toBe('boolean');
  expect(['cloud', 'both', 'browser']).toContain(trader.executionMode);
  expect(typeof trader.updatedAt).toBe('string');
  const { filter } = trader;
  expect(typeof filter.code === 'string' && filter.code.trim().length > 0 && filter.code.length <= MAX_FILTER_CODE_LENGTH).toBe(true);
  expect(INTERVALS).toContain(filter.refreshInterval);
  expect(filter.requiredTimeframes.every((interval) => (INTERVALS as readonly string[]).includes(interval))).toBe(true);
  expect(filter.description.every((line) => typeof line === 'string')).toBe(true);
  expect(Array.isArray(filter.indicators)).toBe(true);
  // The timeframes a filter sees: requiredTimeframes ∪ {refreshInterval}, each once, in INTERVALS order.
  expect(trader.timeframes).toEqual(INTERVALS.filter((interval) => interval === filter.refreshInterval || filter.requiredTimeframes.includes(interval)));
  expect(trader.codeHash).toBe(codeHash(filter.code));
}

function expectReason(reason: string): void {
  expect(reason).toMatch(REASON);
  expect(reason).not.toMatch(/[\n\r\u2028\u2029]/);
  expect(reason.length).toBeLessThanOrEqual(300);
}

describe('fuzzing trader rows', () => {
  it('runs every well-formed row with exactly the filter it stores', () => {
    check(
      fc.property(validRowArb, (row) => {
        const parsed = parseTraderRow(row);
        expect(parsed.ok).toBe(true);
        if (!parsed.ok) return;
        expectRunnable(parsed.trader, row);
        const stored = (typeof row.filter === 'string' ? JSON.parse(row.filter) : row.filter) as Record<string, unknown>;
        expect(parsed.trader.filter.code).toBe(stored.code);
        expect(parsed.trader.filter.refreshInterval).toBe(stored.refreshInterval ?? '1m');
        expect(parsed.trader.filter.requiredTimeframes).toEqual(stored.requiredTimeframes ?? []);
      }),
      400,
    );
  });

  it('rejects a filter with one broken field with a reason naming that field, or runs it when the value happens to be fine', () => {
    check(
      fc.property(validRowArb, validFilterArb, fc.constantFrom(...FILTER_FIELDS), junkArb, fc.boolean(), (row, filter, field, value, asString) => {
        const broken: Record<string, unknown> = { ...filter, [field]: value };
        if (value === undefined) delete broken[field];
        const parsed = parseTraderRow({ ...row, filter: asString ? JSON.stringify(broken) : broken });
        if (parsed.ok) {
          expectRunnable(parsed.trader, row);
          return;
        }
        expectReason(parsed.rejected.reason);
        expect(parsed.rejected.reason.startsWith(`filter.${field}`)).toBe(true);
        expect(parsed.rejected).toMatchObject({ id: row.id, updatedAt: row.updated_at });
      }),
      1000,
    );
  });

  it('rejects a row with one broken column naming the column, never crashing', () => {
    check(
      fc.property(validRowArb, fc.constantFrom(...ROW_FIELDS), junkArb, (row, field, value) => {
        const broken: Record<string, unknown> = { ...row, [field]: value };
        if (value === undefined) delete broken[field];
        const parsed = parseTraderRow(broken as unknown as TraderRow);
        if (parsed.ok) {
          expectRunnable(parsed.trader, broken as unknown as TraderRow);
          return;
        }
        expectReason(parsed.rejected.reason);
        expect(parsed.rejected.reason.split(/[.:[]/)[0]).toBe(field);
      }),
      1000,
    );
  });

  it('never crashes on a row made of anything, including malformed JSON strings in filter', () => {
    const truncatedJson = validFilterArb.chain((filter) => {
      const text = JSON.stringify(filter);
      return fc.nat({ max: text.length - 1 }).map((cut) => text.slice(0, cut));
    });
    const rowArb = fc.record({
      id: fc.oneof(uuidArb, anyJson),
      user_id: fc.oneof(uuidArb, anyJson),
      name: junkArb,
      enabled: fc.oneof(fc.boolean(), anyJson),
      execution_mode: fc.oneof(fc.constantFrom('cloud', 'both', 'browser'), junkArb),
      filter: fc.oneof(validFilterArb, truncatedJson, junkArb, fc.dictionary(fc.constantFrom(...FILTER_FIELDS, '__proto__', 'constructor'), junkArb)),
      created_at: fc.oneof(isoArb, anyJson),
      updated_at: fc.oneof(isoArb, junkArb),
    }, { requiredKeys: [] });
    check(
      fc.property(rowArb, (row) => {
        const parsed = parseTraderRow(row as unknown as TraderRow);
        if (parsed.ok) expectRunnable(parsed.trader, row as unknown as TraderRow);
        else expectReason(parsed.rejected.reason);
        expect(({} as Record<string, unknown>).code).toBeUndefined();
      }),
      1000,
    );
  });

  it('reaches, by polling diffs, the same runnable traders as a fresh load, whatever the edits between polls', () => {
    const ids = ['00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000003', '00000000-0000-4000-8000-000000000004'];
    const user = '11111111-1111-4111-8111-111111111111';
    const versionArb = fc.record({
      present: fc.boolean(),
      name: fc.constantFrom('a', 'b'),
      filter: fc.oneof(validFilterArb, junkArb),
      updated_at: fc.constantFrom('2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z'),
    });
    const pollsArb = fc.array(fc.array(versionArb, { minLength: ids.length, maxLength: ids.length }), { minLength: 1, maxLength: 6 });
    const rowsOf = (versions: Array<{ present: boolean; name: string; filter: unknown; updated_at: string }>): TraderRow[] =>
      versions.flatMap((version, i) =>
        version.present ? [{ id: ids[i]!, user_id: user, name: version.name, enabled: true, execution_mode: 'cloud', filter: version.filter, created_at: '2026-01-01T00:00:00Z', updated_at: version.updated_at }] : [],
      );
    check(
      fc.property(pollsArb, (polls) => {
        const diff = new TraderDiff();
        const running = new Map<string, Trader>();
        for (const trader of diff.load(rowsOf(polls[0]!)).traders) running.set(trader.id, trader);
        for (const versions of polls.slice(1)) {
          const rows = rowsOf(versions);
          const changes = diff.diff(rows);
          for (const id of changes.removed) running.delete(id);
          for (const trader of changes.upserted) running.set(trader.id, trader);
          for (const rejected of changes.rejected) expectReason(rejected.reason);
          const fresh = new TraderDiff().load(rows).traders;
          expect([...running.values()].sort((a, b) => a.id.localeCompare(b.id))).toEqual(fresh.sort((a, b) => a.id.localeCompare(b.id)));
        }
      }),
      400,
    );
  });
});
