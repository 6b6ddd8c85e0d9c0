// The worker under test as a sequence of real processes ("generations"): spawn, signal, restart, and every log line kept with its clock time.
import { type ChildProcess, spawn } from 'node:child_process';
import type { Clock } from '../../../src/clock.ts';
import { waitFor } from '../../../dev/workerProcess.ts';

export interface ClockedLine {
  /** Simulated (worker-clock) time at which the suite read the line: never earlier than the worker wrote it. */
  at: number;
  generation: number;
  event?: string;
  [field: string]: unknown;
}

export interface Generation {
  index: number;
  child: ChildProcess;
  spawnedAt: number;
  /** Clock time the boot's market step was reported: the scheduler starts right after it, catch-up included. */
  marketReadyAt: number | null;
  /** Clock time the boot's catch-up step was reported: the scheduler screens the latest closed candles right after it. */
  catchUpDoneAt: number | null;
  /** Clock time the suite signalled the end (or saw the exit, for a crash). */
  endedAt: number | null;
  endedBy: 'SIGTERM' | 'SIGKILL' | 'exit' | null;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitCode: number | null | undefined;
  stderr: string[];
}

export class WorkerUnderTest {
  readonly lines: ClockedLine[] = [];
  /** Raw stdout and stderr of every generation, for the secret grep. */
  readonly output: string[] = [];
  readonly generations: Generation[] = [];
  /** Boots that failed and were retried, as the platform restarts a machine that exits. */
  readonly bootFailures: string[] = [];
  private readonly entry: string;
  private readonly cwd: string;
  private readonly env: Record<string, string>;
  private readonly clock: Clock;
  /** Lines kept in memory are capped: a soak writes a stats line every simulated minute. */
  private readonly maxLines: number;

  constructor(options: { entry: string; cwd: string; env: Record<string, string>; clock: Clock; maxLines?: number }) {
    this.entry = options.entry;
    this.cwd = options.cwd;
    this.env = options.env;
    this.clock = options.clock;
    this.maxLines = options.maxLines ?? 400_000;
  }

  get current(): Generation {
    const generation = this.generations.at(-1);
    if (!generation) throw new Error('no worker generation started');
    return generation;
  }

  get port(): number | null {
    const line = this.current && [...this.lines].reverse().find((entry) => entry.generation === this.current.index && entry.event === 'http_listening');
    return line ? (line.port as number) : null;
  }

  spawn(): Generation {
    const index = this.generations.length + 1;
    const child = spawn(process.execPath, [this.entry], {
      cwd: this.cwd,
      env: { PATH: process.env.PATH ?? '', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const generation: Generation = {
      index,
      child,
      spawnedAt: this.clock.now(),
      marketReadyAt: null,
      catchUpDoneAt: null,
      endedAt: null,
      endedBy: null,
      exitCode: undefined,
      stderr: [],
      exit: new Promise((resolve) => {
        child.once('exit', (code, signal) => {
          generation.exitCode = code;
          if (generation.endedAt === null) {
            generation.endedAt = this.clock.now();
            generation.endedBy = 'exit';
          }
          resolve({ code, signal });
        });
      }),
    };
    let buffer = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.output.push(chunk);
      buffer += chunk;
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        this.take(generation, buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf('\n');
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.output.push(chunk);
      generation.stderr.push(chunk);
    });
    this.generations.push(generation);
    return generation;
  }

  /**
   * Spawn and wait until the boot's market step is done (the worker screens from then on). A boot that
   * fails exits non-zero by design (crash-only) and the platform starts the machine again: so does this,
   * up to `attempts` times, counting each in `bootFailures`.
   */
  async start(timeoutMs = 120_000, attempts = 3): Promise<Generation> {
    for (let attempt = 1; ; attempt++) {
      const generation = this.spawn();
      await waitFor(`generation ${generation.index} to finish booting`, () => generation.marketReadyAt !== null || generation.exitCode !== undefined, timeoutMs, 50);
      if (generation.marketReadyAt !== null) return generation;
      this.bootFailures.push(`generation ${generation.index} exited ${generation.exitCode} during boot: ${this.bootError(generation.index)}`);
      if (attempt >= attempts) throw new Error(this.bootFailures.at(-1));
    }
  }

  private bootError(generation: number): string {
    const failed = this.lines.find((line) => line.generation === generation && line.event === 'boot_failed');
    return String((failed?.err as { message?: string } | undefined)?.message ?? 'no boot_failed line');
  }

  /** Send `signal`, recording when; resolves once the process has exited. */
  async end(signal: 'SIGTERM' | 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const generation = this.current;
    if (generation.exitCode === undefined) {
      generation.endedAt = this.clock.now();
      generation.endedBy = signal;
      generation.child.kill(signal);
    }
    return generation.exit;
  }

  /** Freeze the process for `realMs` (SIGSTOP, SIGCONT): to the worker the clock jumps forward. */
  async freeze(realMs: number): Promise<{ from: number; to: number }> {
    const from = this.clock.now();
    this.current.child.kill('SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, realMs));
    this.current.child.kill('SIGCONT');
    return { from, to: this.clock.now() };
  }

  /** Lines of one event, optionally of one generation. */
  events(event: string, generation?: number): ClockedLine[] {
    return this.lines.filter((line) => line.event === event && (generation === undefined || line.generation === generation));
  }

  private take(generation: Generation, text: string): void {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    const line: ClockedLine = { ...parsed, at: this.clock.now(), generation: generation.index };
    if (line.event === 'boot' && line.step === 'market' && line.err === undefined && generation.marketReadyAt === null) generation.marketReadyAt = line.at;
    if (line.event === 'boot' && line.step === 'catchup' && line.err === undefined && generation.catchUpDoneAt === null) generation.catchUpDoneAt = line.at;
    // Keep what the assertions read; drop per-signal and per-tick chatter once the cap is near.
    if (this.lines.length >= this.maxLines && line.event !== 'stats' && line.event !== 'universe_changed') return;
    this.lines.push(line);
  }
}
