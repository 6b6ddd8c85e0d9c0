// Pure translation of `traders` rows (as PostgREST returns them) into domain Traders, or a rejection naming the bad field.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { INTERVALS, type ExecutionMode, type HelpersVersion, type Interval, type RejectedTrader, type Trader, type TraderFilter } from '../domain.ts';
import { DEFAULT_HELPERS_VERSION, HELPERS_VERSIONS } from '../screening/helpers.ts';

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

/** Longest excerpt of a bad value quoted in a reason: reasons go to trader_status.last_error and the log. */
const QUOTE_LIMIT = 60;

/** A bad value as a short one-line JSON excerpt; a 1 MB string in a jsonb field must not become a 1 MB status row. */
function quote(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  // JSON leaves U+2028/U+2029 raw, and some readers break lines there.
  text = text.replace(/[\u2028\u2029]/g, (separator) => `\\u${separator.charCodeAt(0).toString(16)}`);
  return text.length > QUOTE_LIMIT ? `${text.slice(0, QUOTE_LIMIT)}…` : text;
}

const interval = z.string({ error: 'must be an interval string' }).refine((value) => (INTERVALS as readonly string[]).includes(value), {
  error: (issue) => `unknown interval ${quote(issue.input)} (expected one of ${INTERVALS.join(', ')})`,
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
    // Absent on every row the web app writes: those get its own answers. A typo must not silently
    // fall back to them, so anything but a known version rejects the row.
    helpers: z
      .enum(HELPERS_VERSIONS as [HelpersVersion, ...HelpersVersion[]], {
        error: (issue) => `unknown helpers version ${quote(issue.input)} (expected ${HELPERS_VERSIONS.map((v) => `"${v}"`).join(' or ')}, or nothing for "${DEFAULT_HELPERS_VERSION}")`,
      })
      .nullish()
      .transform((value) => value ?? DEFAULT_HELPERS_VERSION),
  },
  { error: 'must be an object' },
);

export type ParsedTrader = { ok: true; trader: Trader } | { ok: false; rejected: RejectedTrader };

export function codeHash(code: string): string {
  return createHash('sha256').update(code).digest('hex');
}

/** requiredTimeframes ∪ {refreshInterval}, deduplicated, in INTERVALS order. */
function timeframesOf(filter: Pick<TraderFilter, 'refreshInterval' | 'requiredTimeframes'>): Interval[] {
  const wanted = new Set<Interval>([...filter.requiredTimeframes, filter.refreshInterval]);
  return INTERVALS.filter((candidate) => wanted.has(candidate));
}

function pathOf(path: readonly PropertyKey[]): string {
  let text = 'filter';
  for (const part of path) text += typeof part === 'number' ? `[${part}]` : `.${String(part)}`;
  return text;
}

/** The `filter` column: jsonb, or (as the web app sometimes stored it) a JSON string inside jsonb. */
function parseFilter(raw: unknown): { ok: true; filter: TraderFilter } | { ok: false; reason: string } {
  let value = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch (error) {
      // V8 quotes the start of the bad text in its message, newlines and all: keep the reason to one short line.
      const detail = (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ');
      return { ok: false, reason: `filter: malformed JSON string (${detail.length > 120 ? `${detail.slice(0, 120)}…` : detail})` };
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
    rejected: {
      id: typeof row.id === 'string' ? row.id : '',
      name: typeof row.name === 'string' ? row.name : null,
      updatedAt: typeof row.updated_at === 'string' ? row.updated_at : null,
      reason,
    },
  });
  // PostgREST sends what the table's types allow; anything else is a broken row (or schema), named rather than run.
  if (typeof row.id !== 'string' || row.id.length === 0) return reject('id: missing');
  if (typeof row.user_id !== 'string' || row.user_id.length === 0) return reject('user_id: missing');
  if (row.name !== null && typeof row.name !== 'string') return reject(`name: must be text, got ${quote(row.name)}`);
  if (typeof row.enabled !== 'boolean') return reject(`enabled: must be true or false, got ${quote(row.enabled)}`);
  if (!(EXECUTION_MODES as readonly string[]).includes(row.execution_mode)) {
    return reject(`execution_mode: unknown value ${quote(row.execution_mode)} (expected browser, cloud or both)`);
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
