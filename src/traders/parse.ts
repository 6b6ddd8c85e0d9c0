// Pure translation of `traders` rows (as PostgREST returns them) into domain Traders, or a rejection naming the bad field.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { INTERVALS, type ExecutionMode, type Interval, type RejectedTrader, type Trader, type TraderFilter } from '../domain.ts';

/** The columns the worker selects from `traders`. */
export const TRADER_COLUMNS = 'id,user_id,name,enabled,execution_mode,filter,created_at,updated_at';

/** A `traders` row as PostgREST returns it (the wire shape; never leaves src/traders). */
export interface TraderRow {
  id: string;
  user_id: string;
  name: string | null;
  enabled: boolean;
  execution_mode: string;
  filter: unknown;
  created_at: string;
  updated_at: string | null;
}

/** Larger than any hand- or AI-written filter; a bigger one is almost certainly pasted data. */
export const MAX_FILTER_CODE_LENGTH = 200_000;

const EXECUTION_MODES = ['browser', 'cloud', 'both'] as const;

const interval = z.string({ error: 'must be an interval string' }).refine((value) => (INTERVALS as readonly string[]).includes(value), {
  error: (issue) => `unknown interval ${JSON.stringify(issue.input)} (expected one of ${INTERVALS.join(', ')})`,
});

const filterSchema = z.object(
  {
    code: z
      .string({ error: 'must be a non-empty string' })
      .refine((code) => code.trim().length > 0, { error: 'must be a non-empty string' })
      .refine((code) => code.length <= MAX_FILTER_CODE_LENGTH, { error: `is longer than ${MAX_FILTER_CODE_LENGTH} characters` }),
    // The web app stored a single string in older rows.
    description: z
      .union([z.string(), z.array(z.string())], { error: 'must be a string or a list of strings' })
      .nullish()
      .transform((value) => (value === null || value === undefined ? [] : typeof value === 'string' ? [value] : value)),
    refreshInterval: interval.nullish().transform((value) => (value ?? '1m') as Interval),
    requiredTimeframes: z
      .array(interval, { error: 'must be a list of intervals' })
      .nullish()
      .transform((value) => (value ?? []) as Interval[]),
    indicators: z
      .array(z.unknown(), { error: 'must be a list' })
      .nullish()
      .transform((value) => value ?? []),
  },
  { error: 'must be an object' },
);

export type ParsedTrader = { ok: true; trader: Trader } | { ok: false; rejected: RejectedTrader };

export function codeHash(code: string): string {
  return createHash('sha256').update(code).digest('hex');
}

/** requiredTimeframes ∪ {refreshInterval}, deduplicated, in INTERVALS order. */
export function timeframesOf(filter: Pick<TraderFilter, 'refreshInterval' | 'requiredTimeframes'>): Interval[] {
  const wanted = new Set<Interval>([...filter.requiredTimeframes, filter.refreshInterval]);
  return INTERVALS.filter((candidate) => wanted.has(candidate));
}

function pathOf(path: readonly PropertyKey[]): string {
  let text = 'filter';
  for (const part of path) text += typeof part === 'number' ? `[${part}]` : `.${String(part)}`;
  return text;
}

/** The `filter` column: jsonb, or (as the web app sometimes stored it) a JSON string inside jsonb. */
export function parseFilter(raw: unknown): { ok: true; filter: TraderFilter } | { ok: false; reason: string } {
  let value = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch (error) {
      return { ok: false, reason: `filter: malformed JSON string (${error instanceof Error ? error.message : String(error)})` };
    }
  }
  if (value === null || value === undefined) return { ok: false, reason: 'filter: missing' };
  const result = filterSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    return { ok: false, reason: `${pathOf(issue.path)}: ${issue.message}` };
  }
  return { ok: true, filter: result.data };
}

/** One row → a runnable Trader, or a RejectedTrader whose reason names the field and the problem. */
export function parseTraderRow(row: TraderRow): ParsedTrader {
  const reject = (reason: string): ParsedTrader => ({
    ok: false,
    rejected: { id: row.id, name: row.name ?? null, updatedAt: row.updated_at ?? null, reason },
  });
  if (!(EXECUTION_MODES as readonly string[]).includes(row.execution_mode)) {
    return reject(`execution_mode: unknown value ${JSON.stringify(row.execution_mode)} (expected browser, cloud or both)`);
  }
  if (typeof row.updated_at !== 'string') return reject('updated_at: missing');
  const parsed = parseFilter(row.filter);
  if (!parsed.ok) return reject(parsed.reason);
  return {
    ok: true,
    trader: {
      id: row.id,
      userId: row.user_id,
      name: row.name ?? '',
      enabled: row.enabled,
      executionMode: row.execution_mode as ExecutionMode,
      filter: parsed.filter,
      timeframes: timeframesOf(parsed.filter),
      codeHash: codeHash(parsed.filter.code),
      updatedAt: row.updated_at,
    },
  };
}
