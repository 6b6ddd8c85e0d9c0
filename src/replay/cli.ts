// `npm run replay -- --trader <id|file> --from <time> [--to <time>] [--symbols A,B] [--csv|--json]`: a trader's would-be signals over past candles.
// Configured by the worker's own environment (src/config.ts). Results go to stdout; logs, the summary and, with --csv or
// --json, the per-candle verdict counts go to stderr so stdout stays one document. Exit 0 on success, 1 when the replay
// failed, 2 for a usage or configuration error.
import dotenv from 'dotenv';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { type Config, loadConfig } from '../config.ts';
import type { Trader } from '../domain.ts';
import { ConfigError } from '../errors.ts';
import { createLogger } from '../logger.ts';
import { BinanceRestClient } from '../market/BinanceRestClient.ts';
import { createScreener } from '../createWorker.ts';
import { createWorkerClient } from '../database/client.ts';
import { parseTraderRow, TRADER_COLUMNS, type TraderRow } from '../database/parse.ts';
import { signalsCsv, signalsJson, signalsTable, summary, verdictsTable } from './format.ts';
import { KlineCache } from './KlineCache.ts';
import { ReplayEngine } from './ReplayEngine.ts';

const USAGE = `usage: npm run replay -- --trader <id or file.json> --from <time> [--to <time>] [--symbols BTCUSDT,ETHUSDT] [--csv | --json]
  --trader     a trader id (loaded from the traders table with SUPABASE_URL, SUPABASE_KEY) or a JSON file holding a trader's filter object
  --from/--to  ISO 8601 (2026-12-01T08:00:00Z) or epoch ms; --to defaults to now; only closed candles are replayed
  --symbols    comma list; defaults to SYMBOLS
  --cache-dir  where fetched klines are kept (default .local/replay-cache)
configuration: the worker's environment (BINANCE_REST_URL, KLINE_HISTORY, FILTER_TIMEOUT_MS, FILTER_MEMORY_MB, TRADER_FAILURE_LIMIT, ...)`;

/** Stands in for the database variables when the trader comes from a file: nothing is read from the database then. */
const NO_DATABASE = { USER_ID: '00000000-0000-0000-0000-000000000000', SUPABASE_URL: 'http://database.unused', SUPABASE_KEY: 'not-used-for-a-file-trader' };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface ReplayIo {
  out(text: string): void;
  err(text: string): void;
}

class UsageError extends Error {}

function time(value: string, flag: string): number {
  const parsed = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(parsed)) throw new UsageError(`${flag} must be ISO 8601 or epoch ms, got ${JSON.stringify(value)}`);
  return parsed;
}

async function loadTrader(reference: string, config: Config): Promise<Trader> {
  let row: TraderRow;
  if (UUID.test(reference)) {
    const client = createWorkerClient(config.supabaseUrl, config.supabaseKey, 10_000);
    const { data, error } = await client.from('traders').select(TRADER_COLUMNS).eq('id', reference).maybeSingle<TraderRow>();
    if (error) throw new Error(`loading trader ${reference}: ${error.message}`);
    if (data === null) throw new UsageError(`trader ${reference} not found (or not readable with SUPABASE_KEY)`);
    row = data;
  } else {
    let filter: unknown;
    try {
      filter = JSON.parse(await readFile(reference, 'utf8'));
    } catch (error) {
      throw new UsageError(`--trader ${reference}: neither a trader id nor a readable JSON filter file (${(error as Error).message})`);
    }
    const now = new Date().toISOString();
    row = { id: `file:${basename(reference)}`, user_id: config.userId, name: basename(reference), enabled: true, execution_mode: 'cloud', filter, created_at: now, updated_at: now };
  }
  const parsed = parseTraderRow(row);
  // The same reasons the live worker writes to trader_status.last_error.
  if (!parsed.ok) throw new UsageError(`trader ${reference} cannot run: ${parsed.rejected.reason}`);
  return parsed.trader;
}

export async function runReplay(argv: string[], env: Record<string, string | undefined>, io: ReplayIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        trader: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        symbols: { type: 'string' },
        'cache-dir': { type: 'string', default: '.local/replay-cache' },
        csv: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (error) {
    io.err(`replay: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  let config: Config;
  try {
    if (values.trader === undefined || values.from === undefined) throw new UsageError('--trader and --from are required');
    if (values.csv && values.json) throw new UsageError('--csv and --json are exclusive');
    config = loadConfig(UUID.test(values.trader) ? env : { ...NO_DATABASE, ...env });
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      io.err(`replay: ${error.message}\n${USAGE}`);
      return 2;
    }
    throw error;
  }
  const { clock } = config;
  const logger = createLogger({
    level: env.LOG_LEVEL ?? 'warn',
    userId: config.userId,
    machineId: 'replay',
    secrets: [config.supabaseKey],
    sink: { write: (line) => io.err(line) },
  });
  const screener = createScreener(config, logger);
  try {
    const from = time(values.from, '--from');
    const to = values.to === undefined ? clock.now() : time(values.to, '--to');
    if (from >= to) throw new UsageError('--from must be before --to');
    const symbols = values.symbols?.split(',').map((symbol) => symbol.trim().toUpperCase()).filter(Boolean) ?? config.symbols;
    if (symbols === undefined || symbols.length === 0) throw new UsageError('pass --symbols or set SYMBOLS');
    const trader = await loadTrader(values.trader, config);
    // One client for the whole replay: its weight budget spans every request (the live worker's defaults).
    const rest = new BinanceRestClient({ baseUrl: config.binanceRestUrl, clock, logger });
    const candles = new KlineCache({ dir: values['cache-dir'], sourceUrl: config.binanceRestUrl, rest, clock });
    await screener.start();
    const engine = new ReplayEngine({ candles, screener, history: config.klineHistory, clock, logger });
    const report = await engine.replay({ trader, symbols, from, to });
    const cache = candles.stats();
    io.err(`${summary(report)}\nklines: ${cache.chunksFromDisk} chunks from ${values['cache-dir']}, ${cache.chunksFetched} fetched (REST weight ${rest.stats().weightUsed} in the last minute)`);
    if (values.json) {
      io.out(signalsJson(report.signals));
      io.err(verdictsTable(report.candles));
    } else if (values.csv) {
      io.out(signalsCsv(report.signals));
      io.err(verdictsTable(report.candles));
    } else {
      io.out(`${signalsTable(report.signals)}\n\n${verdictsTable(report.candles)}`);
    }
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`replay: ${error.message}\n${USAGE}`);
      return 2;
    }
    io.err(`replay failed: ${(error as Error).message}`);
    return 1;
  } finally {
    if (screener.state === 'running') await screener.stop();
  }
}

if (import.meta.main) {
  // The worker's .env, as src/main.ts reads it: the same environment configures both.
  dotenv.config({ quiet: true });
  const code = await runReplay(process.argv.slice(2), process.env, {
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  });
  process.exitCode = code;
}
