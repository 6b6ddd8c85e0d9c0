// The worker's environment, parsed once at boot by one zod schema. The only module that reads process.env.
import { hostname } from 'node:os';
import { z } from 'zod';
import { AcceleratedClock, type Clock, systemClock } from './clock.ts';
import { ConfigError } from './errors.ts';
import type { Shard } from './database/shard.ts';

const SYMBOL = /^[A-Z0-9]{2,20}$/;
/** Machines one user's traders may be spread over; worker_machines.shard_count has the same bound (migration 0005). */
export const MAX_SHARDS = 64;

/** Shared with the fleet controller's schema (src/fleet/config.ts): the same words for the same mistakes. */
export const integer = (min: number, max: number) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int({ error: 'must be an integer' })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` });

const wsUrl = z
  .string()
  .refine((value) => URL.canParse(value) && /^wss?:$/.test(new URL(value).protocol), { error: 'must be a ws:// or wss:// URL' });
export const httpUrl = z
  .string()
  .refine((value) => URL.canParse(value) && /^https?:$/.test(new URL(value).protocol), { error: 'must be an http:// or https:// URL' });

const schema = z.object({
  USER_ID: z.string({ error: 'is required' }).regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, {
    error: 'must be a uuid',
  }),
  SUPABASE_URL: httpUrl,
  SUPABASE_KEY: z
    .string({ error: 'is required' })
    .min(20, { error: 'is too short to be a key' })
    .refine((value) => !/\s/.test(value), { error: 'must not contain whitespace' }),
  BINANCE_WS_URL: wsUrl.default('wss://stream.binance.com:9443'),
  BINANCE_REST_URL: httpUrl.default('https://api.binance.com'),
  PORT: integer(0, 65535).default(8080),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    error: 'must be one of fatal, error, warn, info, debug, trace, silent',
  }).default('info'),
  LOG_PRETTY: z.enum(['0', '1', 'true', 'false'], { error: 'must be 0, 1, true or false' }).default('0'),
  SYMBOLS: z
    .string()
    .optional()
    .transform((value) =>
      value === undefined || value.trim() === ''
        ? undefined
        : [...new Set(value.split(',').map((symbol) => symbol.trim().toUpperCase()).filter(Boolean))],
    )
    .refine((symbols) => symbols === undefined || symbols.every((symbol) => SYMBOL.test(symbol)), {
      error: 'must be a comma list of symbols such as BTCUSDT,ETHUSDT',
    }),
  MAX_SYMBOLS: integer(1, 1000).default(200),
  KLINE_HISTORY: integer(50, 1000).default(500),
  MACHINE_ID: z.string().min(1).max(100).optional(),
  FLY_MACHINE_ID: z.string().min(1).max(100).optional(),
  SCREENER_THREADS: integer(0, 64).default(0),
  FILTER_TIMEOUT_MS: integer(5, 10_000).default(50),
  FILTER_MEMORY_MB: integer(8, 1024).default(32),
  FILTER_TICK_BUDGET_MS: integer(10, 600_000).default(500),
  // Resident memory the worker keeps within (src/screening/isolateCollector.ts); unset: 75 % of the machine's memory.
  MEMORY_BUDGET_MB: integer(64, 1_048_576).optional(),
  TRADER_FAILURE_LIMIT: integer(1, 1000).default(5),
  TRADER_POLL_MS: integer(1000, 30_000).default(10_000),
  // Look-back of each new or edited trader (src/replay/ReplayService.ts): candles replayed, 0 to turn it off.
  REPLAY_LOOKBACK_CANDLES: integer(0, 500).default(100),
  TICK_GRACE_MS: integer(0, 60_000).default(1500),
  WRITE_BUFFER_SIZE: integer(10, 1_000_000).default(10_000),
  READY_MIN_COVERAGE: z.coerce.number({ error: 'must be a number' }).min(0).max(1).default(0.95),
  READY_MAX_LAG_MS: integer(100, 600_000).default(5000),
  // The fleet's latency alert (1 s p99); see DEFAULT_READY_MAX_LATENCY_MS in orchestration/ServiceLevel.ts for why not the 500 ms objective.
  READY_MAX_LATENCY_MS: integer(50, 600_000).default(1000),
  SHUTDOWN_TIMEOUT_MS: integer(1000, 300_000).default(20_000),
  // This machine's share of the user's traders (src/database/shard.ts); one machine runs them all by default.
  SHARD_INDEX: integer(0, MAX_SHARDS - 1).default(0),
  SHARD_COUNT: integer(1, MAX_SHARDS).default(1),
  // Test-only: lets the tests crash a screening thread or abort the process the way a native fault would.
  FAULT_INJECTION: z
    .string()
    .optional()
    .refine((value) => value === undefined || value === '' || parseFaults(value) !== null, {
      error: 'must be a comma list of thread-exit=<marker> and process-abort=<marker>, markers of 12-64 letters, digits, _ or - (tests only)',
    }),
  CLOCK: z
    .string()
    .optional()
    .refine(
      (value) => {
        if (value === undefined || value === '') return true;
        try {
          AcceleratedClock.parse(value);
          return true;
        } catch {
          return false;
        }
      },
      { error: 'must be "speed,originRealMs,originClockMs" (tests and the offline demo only)' },
    ),
}).refine((env) => env.SHARD_INDEX < env.SHARD_COUNT, {
  path: ['SHARD_INDEX'],
  error: 'must be less than SHARD_COUNT (shards are numbered from 0)',
  // Compared only when both are valid numbers: a bad SHARD_COUNT is named for itself, not as SHARD_INDEX's fault.
  when: (payload) => !payload.issues.some((issue) => issue.path?.[0] === 'SHARD_INDEX' || issue.path?.[0] === 'SHARD_COUNT'),
});

export interface Config {
  userId: string;
  supabaseUrl: string;
  supabaseKey: string;
  binanceWsUrl: string;
  binanceRestUrl: string;
  port: number;
  logLevel: string;
  logPretty: boolean;
  symbols: string[] | undefined;
  maxSymbols: number;
  klineHistory: number;
  machineId: string;
  screenerThreads: number;
  filterTimeoutMs: number;
  filterMemoryMb: number;
  /** Evaluation time one trader may spend on one screening thread per tick before its remaining symbols are skipped. */
  filterTickBudgetMs: number;
  /** Resident bytes above which the screening threads collect isolates and run ticks in the memory-saving order; undefined: 75 % of the machine's memory. */
  memoryBudgetBytes: number | undefined;
  traderFailureLimit: number;
  traderPollMs: number;
  /** Candles a new or edited trader's look-back replays (at most half of klineHistory); 0: no look-back. */
  replayLookbackCandles: number;
  tickGraceMs: number;
  writeBufferSize: number;
  readyMinCoverage: number;
  readyMaxLagMs: number;
  /** p99 close-to-commit latency over the recent ticks past this marks the worker degraded. */
  readyMaxLatencyMs: number;
  shutdownTimeoutMs: number;
  /** This machine's share of the user's traders: SHARD_INDEX of SHARD_COUNT. */
  shard: Shard;
  clock: Clock;
  /** Test-only fault injection: a screening thread exits, or the process aborts, when it begins a filter whose code holds the marker. */
  faultInjection: FaultInjection | null;
}

export interface FaultInjection {
  threadExitMarker?: string;
  processAbortMarker?: string;
}

function parseFaults(value: string): FaultInjection | null {
  const faults: FaultInjection = {};
  for (const entry of value.split(',')) {
    const match = /^(thread-exit|process-abort)=([A-Za-z0-9_-]{12,64})$/.exec(entry.trim());
    if (!match) return null;
    if (match[1] === 'thread-exit') faults.threadExitMarker = match[2]!;
    else faults.processAbortMarker = match[2]!;
  }
  return faults;
}

/** What a required variable must hold, added to "is required" so the fix is in the same line. */
const REQUIRED_HINTS: Record<string, string> = {
  USER_ID: 'a uuid',
  SUPABASE_URL: 'the project URL, http(s)://…',
  SUPABASE_KEY: 'the user’s worker JWT from npm run mint-jwt, or a service key',
};

/**
 * The environment through `environmentSchema` (the worker's, or the fleet controller's); throws one
 * ConfigError naming every bad variable and why, with `hints` after "is required".
 */
export function parseEnvironment<T extends z.ZodType>(
  environmentSchema: T,
  env: Record<string, string | undefined>,
  hints: Record<string, string> = {},
): z.infer<T> {
  // An empty variable (`PORT=` in a .env file) means unset: the default applies, or "is required".
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const result = environmentSchema.safeParse(present);
  if (result.success) return result.data;
  const problems = new Map<string, string>();
  for (const issue of result.error.issues) {
    const variable = String(issue.path[0] ?? 'environment');
    if (problems.has(variable)) continue;
    const missing = env[variable] === undefined || env[variable] === '';
    const hint = hints[variable];
    problems.set(variable, missing && issue.code === 'invalid_type' ? `is required${hint ? ` (${hint})` : ''}` : issue.message);
  }
  // Messages are ours (the schema's `error` texts), never zod's echo of the input: no value can leak.
  const reasons = [...problems].map(([variable, reason]) => `${variable} ${reason}`).join('; ');
  throw new ConfigError([...problems.keys()].join(', '), reasons);
}

/**
 * Parse the environment. Throws one ConfigError naming every bad variable and why, in one line,
 * without ever echoing a value.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = parseEnvironment(schema, env, REQUIRED_HINTS);
  return {
    userId: parsed.USER_ID.toLowerCase(),
    supabaseUrl: parsed.SUPABASE_URL.replace(/\/+$/, ''),
    supabaseKey: parsed.SUPABASE_KEY,
    binanceWsUrl: parsed.BINANCE_WS_URL.replace(/\/+$/, ''),
    binanceRestUrl: parsed.BINANCE_REST_URL.replace(/\/+$/, ''),
    port: parsed.PORT,
    logLevel: parsed.LOG_LEVEL,
    logPretty: parsed.LOG_PRETTY === '1' || parsed.LOG_PRETTY === 'true',
    symbols: parsed.SYMBOLS,
    maxSymbols: parsed.MAX_SYMBOLS,
    klineHistory: parsed.KLINE_HISTORY,
    machineId: parsed.MACHINE_ID ?? parsed.FLY_MACHINE_ID ?? hostname(),
    screenerThreads: parsed.SCREENER_THREADS,
    filterTimeoutMs: parsed.FILTER_TIMEOUT_MS,
    filterMemoryMb: parsed.FILTER_MEMORY_MB,
    filterTickBudgetMs: parsed.FILTER_TICK_BUDGET_MS,
    memoryBudgetBytes: parsed.MEMORY_BUDGET_MB === undefined ? undefined : parsed.MEMORY_BUDGET_MB * 1024 * 1024,
    traderFailureLimit: parsed.TRADER_FAILURE_LIMIT,
    traderPollMs: parsed.TRADER_POLL_MS,
    replayLookbackCandles: parsed.REPLAY_LOOKBACK_CANDLES,
    tickGraceMs: parsed.TICK_GRACE_MS,
    writeBufferSize: parsed.WRITE_BUFFER_SIZE,
    readyMinCoverage: parsed.READY_MIN_COVERAGE,
    readyMaxLagMs: parsed.READY_MAX_LAG_MS,
    readyMaxLatencyMs: parsed.READY_MAX_LATENCY_MS,
    shutdownTimeoutMs: parsed.SHUTDOWN_TIMEOUT_MS,
    shard: { index: parsed.SHARD_INDEX, count: parsed.SHARD_COUNT },
    clock: parsed.CLOCK ? AcceleratedClock.parse(parsed.CLOCK) : systemClock,
    faultInjection: parsed.FAULT_INJECTION ? parseFaults(parsed.FAULT_INJECTION) : null,
  };
}
