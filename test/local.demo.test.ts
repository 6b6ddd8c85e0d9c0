// `npm run demo` as a newcomer runs it: signals in the database within about a minute, and a Ctrl-C that
// stops the worker first (it flushes and marks itself stopped) and the local database after it.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { startLocalStack } from '../dev/localStack.ts';
import { ROOT } from '../dev/workerProcess.ts';
import { cleanupsAfterEach } from './support/wait.ts';

const cleanups = cleanupsAfterEach();

async function until<T>(probe: () => Promise<T | undefined> | T | undefined, what: string, deadlineMs: number): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  while (true) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm run demo', () => {
  it('shows signals in the database within about a minute, and Ctrl-C stops the worker cleanly before the database', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'screener-demo-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    // Its own process group, as a terminal's foreground job is: a Ctrl-C goes to every process in it.
    const demo = spawn('npm', ['run', 'demo'], {
      cwd: ROOT,
      detached: true,
      env: { ...process.env, SCREENER_LOCAL_DIR: dataDir, PORT: '0', LOG_PRETTY: '0', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    demo.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    demo.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => demo.once('exit', (code, signal) => resolve({ code, signal })));
    cleanups.push(() => {
      if (demo.exitCode === null && demo.signalCode === null) process.kill(-demo.pid!, 'SIGKILL');
    });

    // The launcher prints where to look; the database URL is one of those lines.
    const databaseUrl = await until(() => /psql:\s+psql '([^']+)'/.exec(output)?.[1], 'the printed database URL', 120_000);
    const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    cleanups.push(() => sql.end({ timeout: 1 }).catch(() => {}));
    const postmasterPid = Number((await readFile(join(dataDir, 'pgdata', 'postmaster.pid'), 'utf8')).split('\n')[0]);
    const signals = await until(
      async () => {
        const [row] = await sql<{ count: string }[]>`select count(*)::text as count from public.signals`;
        return Number(row!.count) > 0 ? Number(row!.count) : undefined;
      },
      'a first signal',
      150_000,
    );
    expect(signals).toBeGreaterThan(0);
    await sql.end({ timeout: 1 });

    process.kill(-demo.pid!, 'SIGINT');
    // npm re-raises the Ctrl-C on itself once its script has ended; what matters is the worker's own exit.
    const npmExit = await exited;
    expect(npmExit.code === 0 || npmExit.signal === 'SIGINT').toBe(true);
    expect(output).toContain('worker exited (code 0)');
    const lines = output.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { event?: string; step?: string });
    const shutdown = lines.filter((line) => line.event === 'shutdown').map((line) => line.step);
    // One clean shutdown, not the forced exit a second signal would cause.
    expect(shutdown).toEqual(['begin', 'ticks', 'flush', 'streams', 'done']);
    expect(alive(postmasterPid)).toBe(false);
    expect(output).toContain('stopping the local database');

    // The worker marked itself stopped before the database went away: read it back from the kept data.
    const stack = await startLocalStack({ dataDir, persistent: true });
    cleanups.push(() => stack.stop());
    const status = await stack.sql<{ state: string }[]>`select state from public.worker_status`;
    expect(status.map((row) => row.state)).toEqual(['stopped']);
    const [kept] = await stack.sql<{ count: string }[]>`select count(*)::text as count from public.signals`;
    expect(Number(kept!.count)).toBeGreaterThanOrEqual(signals);
    expect(existsSync(join(dataDir, 'pgdata'))).toBe(true);
  }, 300_000);
});
