// Runs the built worker as a real process, for tests, bench and the chaos suite: build once into an isolated folder, spawn, watch its log, poll until a deadline.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type AcceleratedClock, systemClock } from '../src/clock.ts';

export const ROOT = resolve(import.meta.dirname, '..');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * Build the worker as production does (tsc -p tsconfig.build.json) into `.tmp/<name>/dist`, next to
 * a copy of package.json: the shape of the image (`/app/package.json`, `/app/dist/main.js`).
 * Each caller gets its own folder, so parallel test files never race on one dist/. Skipped when fresh.
 */
export function buildWorker(name: string): { dir: string; entry: string } {
  const dir = join(ROOT, '.tmp', name);
  const entry = join(dir, 'dist', 'main.js');
  mkdirSync(dir, { recursive: true });
  const sources = Math.max(newestMtime(join(ROOT, 'src')), statSync(join(ROOT, 'package.json')).mtimeMs);
  if (!existsSync(entry) || statSync(entry).mtimeMs < sources) {
    execFileSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json', '--outDir', join(dir, 'dist')], {
      cwd: ROOT,
      stdio: 'pipe',
    });
  }
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  return { dir, entry };
}

export interface LogLine {
  event?: string;
  level?: string;
  [field: string]: unknown;
}

export interface WorkerProcess {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  lines: LogLine[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitCode: () => number | null | undefined;
  stop: () => Promise<void>;
}

/** Where a spawned worker finds its user's database and its market. */
export interface WorkerTarget {
  userId: string;
  supabaseUrl: string;
  /** The user's worker key (SUPABASE_KEY). */
  key: string;
  market: { restUrl: string; wsUrl: string };
  symbols: readonly string[];
  /** KLINE_HISTORY. */
  history: number;
  /** The accelerated clock the worker shares with the simulator, if any. */
  clock?: AcceleratedClock;
}

/**
 * The environment a test spawns a worker with, to be extended with the test's own variables: the user's database, the
 * simulator, an ops port the OS picks, one screening thread. On an accelerated clock, the clock too, and the thresholds
 * the worker reads in its own clock's ms scaled by its speed, so they are fixed in real time whatever the speed: a
 * tick's grace of 100 ms, readiness within 3 s of lag and 500 ms of latency, 5 s to shut down.
 */
export function workerEnv(target: WorkerTarget): Record<string, string> {
  const env: Record<string, string> = {
    USER_ID: target.userId,
    SUPABASE_URL: target.supabaseUrl,
    SUPABASE_KEY: target.key,
    BINANCE_REST_URL: target.market.restUrl,
    BINANCE_WS_URL: target.market.wsUrl,
    PORT: '0',
    SYMBOLS: target.symbols.join(','),
    KLINE_HISTORY: String(target.history),
    SCREENER_THREADS: '1',
  };
  const clock = target.clock;
  if (clock === undefined) return env;
  return {
    ...env,
    CLOCK: clock.spec(),
    TICK_GRACE_MS: String(clock.speed * 100),
    READY_MAX_LAG_MS: String(clock.speed * 3000),
    READY_MAX_LATENCY_MS: String(clock.speed * 500),
    SHUTDOWN_TIMEOUT_MS: String(clock.speed * 5000),
  };
}

/** Spawn `node <entry>` with exactly `env` (plus PATH), collecting output. Node 24 is this process's own binary. */
export function spawnWorker(entry: string, env: Record<string, string>, cwd: string): WorkerProcess {
  const child = spawn(process.execPath, [entry], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const lines: LogLine[] = [];
  let outBuffer = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    outBuffer += chunk;
    let newline = outBuffer.indexOf('\n');
    while (newline >= 0) {
      const line = outBuffer.slice(0, newline);
      outBuffer = outBuffer.slice(newline + 1);
      stdout.push(line);
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // Not JSON (should not happen): kept in stdout for the assertion that reads it.
      }
      newline = outBuffer.indexOf('\n');
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  let code: number | null | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.once('exit', (exitCode, signal) => {
      code = exitCode;
      resolveExit({ code: exitCode, signal });
    });
  });
  return {
    child,
    stdout,
    stderr,
    lines,
    exited,
    exitCode: () => code,
    stop: async () => {
      if (code !== undefined) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Poll until `check` returns a truthy value, or fail with `what` at the deadline. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 20_000, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = systemClock.now() + timeoutMs;
  let lastError: unknown;
  while (systemClock.now() < deadline) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolveWait) => setTimeout(resolveWait, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
}
