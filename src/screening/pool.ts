// The screening threads: spawn, hand out trader assignments, run tick requests, restart a thread that dies.
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../logger.ts';
import type { SeriesBuffer } from './sharedSeries.ts';
import type { FromThread, ThreadOptions, ToThread, TraderSpec } from './protocol.ts';
import { backoffDelay } from '../backoff.ts';

type TickRequest = Extract<ToThread, { type: 'tick' }>;
type TickReply = Extract<FromThread, { type: 'tickResult' }>;

/** Compiled to .js in dist/, run as .ts from source: the worker entry follows whichever this file is. */
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);
// Deadlines and restart delays here use real timers on purpose: they bound real CPU work, whatever
// speed the worker's clock runs at in tests.

/**
 * A thread's own heap holds one symbol's helper work at a time (see ThreadScreener.tick), about
 * 10-20 MB live; without a cap V8 lets each worker's heap fill with garbage before collecting it.
 * Measured with 20 traders over 200 symbols x 4 intervals: 493-593 MB process RSS after 40 ticks
 * uncapped, 363-374 MB with a 64/8 MB cap; a 32/4 MB cap saved nothing more (308 vs 317 MB).
 * A 4 MB young generation (2 MB semi-spaces) against 8 (4 MB): the thread's heap 28 -> ~20 MB
 * committed, process RSS 270/276/271 -> 262/259/263 MB (one thread, 20 traders, 200 symbols, the
 * image's settings, interleaved), the thread's CPU per tick 406/374/300 -> 382/300/298 ms. At 3 MB
 * (1 MB semi-spaces, V8's least) it scavenged often enough to cost up to 1.5x the thread's CPU.
 */
const THREAD_HEAP_LIMITS = { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 4 };

/**
 * The image's NODE_OPTIONS cap the main thread's semi-spaces (--max-semi-space-size, see the
 * Dockerfile), but V8 lets that flag override the young generation of every heap created after it:
 * this thread's (THREAD_HEAP_LIMITS above) and each trader's isolate (isolated-vm sizes it from the
 * isolate's memory limit, ~0.5 MB semi-spaces), which then grow 8 MB semi-spaces each. The flag is
 * read when a heap is created, so clearing it before a thread starts leaves the main thread's heap as
 * configured and gives the thread and its isolates their own sizes. Measured with 20 traders, 200
 * symbols x 4 intervals, one thread, the image's settings: RSS 274/279 -> 263/265 MB after ticks
 * (peak during ticks 276/282 -> 264/266 MB) in two runs each, tick CPU unchanged.
 */
function releaseSemiSpaceOverride(): void {
  setFlagsFromString('--max-semi-space-size=0');
}

/** How long a fresh thread may take to load isolated-vm and the library before the start counts as failed. */
const READY_TIMEOUT_MS = 20_000;

export class ThreadCrashedError extends Error {
  /** The code the thread was running when it died: the tick and the trader's index in its traderIds, if known. */
  readonly inFlight: { tickId: number; traderIndex: number } | null;
  /** The thread's own words for it (exit code, isolate failure), without the thread prefix. */
  readonly reason: string;

  constructor(threadIndex: number, reason: string, inFlight: { tickId: number; traderIndex: number } | null = null) {
    super(`screening thread ${threadIndex} stopped: ${reason}`);
    this.name = 'ThreadCrashedError';
    this.reason = reason;
    this.inFlight = inFlight;
  }
}

/**
 * One screening thread and what the main thread knows about it: its traders (replayed after a
 * restart) and which shared row buffers it holds (handed again after a restart).
 */
export class ScreenerThread {
  readonly index: number;
  readonly traders = new Map<string, TraderSpec>();
  /** Generation of each shared buffer this thread has been handed, by series id. */
  private readonly handed = new Map<number, number>();
  private dropped: number[] = [];
  restarts = 0;
  /** Restarts since the last tick the thread answered: what the restart backoff grows with. */
  private restartsInARow = 0;
  private worker: Worker | null = null;
  /** See ThreadOptions.inFlight: read after the thread dies to charge the crash to its cause. */
  private readonly inFlight = new Int32Array(new SharedArrayBuffer(8));
  private readonly options: ThreadOptions;
  private readonly logger: Logger;
  private pending = new Map<number, { resolve: (reply: TickReply) => void; reject: (error: Error) => void }>();
  private stopping = false;
  private ready: Promise<void> = Promise.resolve();

  constructor(index: number, options: ThreadOptions, logger: Logger) {
    this.index = index;
    this.options = options;
    this.logger = logger;
  }

  start(): Promise<void> {
    this.stopping = false;
    this.inFlight.fill(0);
    releaseSemiSpaceOverride();
    const worker = new Worker(WORKER_URL, {
      workerData: { ...this.options, inFlight: this.inFlight.buffer } satisfies ThreadOptions,
      name: `screener-${this.index}`,
      resourceLimits: THREAD_HEAP_LIMITS,
    });
    this.worker = worker;
    let lastError = 'exited';
    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ThreadCrashedError(this.index, 'did not become ready')), READY_TIMEOUT_MS);
      worker.on('message', (message: FromThread) => {
        if (message.type === 'ready') {
          clearTimeout(timer);
          resolve();
        } else if (message.type === 'tickResult') {
          this.restartsInARow = 0;
          const waiter = this.pending.get(message.tickId);
          this.pending.delete(message.tickId);
          waiter?.resolve(message);
        } else if (message.type === 'catastrophic') {
          lastError = `isolate failure: ${message.message}`;
        }
      });
      worker.on('error', (error) => {
        lastError = error.message;
      });
      worker.on('exit', (code) => {
        clearTimeout(timer);
        reject(new ThreadCrashedError(this.index, `exited with code ${code}`));
        if (this.worker !== worker) return;
        this.worker = null;
        const reason = `${lastError} (exit code ${code})`;
        const traderIndex = Atomics.load(this.inFlight, 1) - 1;
        const inFlight = traderIndex >= 0 ? { tickId: Atomics.load(this.inFlight, 0), traderIndex } : null;
        for (const waiter of this.pending.values()) waiter.reject(new ThreadCrashedError(this.index, reason, inFlight));
        this.pending.clear();
        if (!this.stopping) this.restart(reason);
      });
    });
    // The ready promise is awaited by start(); a late rejection (after exit) has no one else to tell.
    this.ready.catch(() => undefined);
    this.post({ type: 'traders', upsert: [...this.traders.values()], remove: [] });
    return this.ready;
  }

  setTraders(upsert: TraderSpec[], remove: string[]): void {
    for (const id of remove) this.traders.delete(id);
    for (const spec of upsert) this.traders.set(spec.id, spec);
    if (upsert.length > 0 || remove.length > 0) this.post({ type: 'traders', upsert, remove });
  }

  /** Series the main thread dropped: the thread forgets them with its next tick. */
  forgetBuffers(ids: readonly number[]): void {
    for (const id of ids) {
      if (this.handed.delete(id)) this.dropped.push(id);
    }
  }

  /** Send a tick; rejects with ThreadCrashedError if the thread dies or misses the deadline. */
  async tick(request: Omit<TickRequest, 'buffers' | 'dropped'>, wanted: readonly SeriesBuffer[], deadlineMs: number): Promise<TickReply> {
    await this.ready;
    const worker = this.worker;
    if (!worker) throw new ThreadCrashedError(this.index, 'not running');
    // Decided against the worker that gets the message: a restarted thread holds no buffer yet.
    const buffers = wanted.filter((buffer) => this.handed.get(buffer.id) !== buffer.generation);
    for (const buffer of buffers) this.handed.set(buffer.id, buffer.generation);
    const dropped = this.dropped;
    this.dropped = [];
    return new Promise<TickReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(request.tickId);
        reject(new ThreadCrashedError(this.index, `no answer within ${deadlineMs} ms`));
        // A thread that stops answering is stuck outside any isolate's time limit: replace it.
        void worker.terminate();
      }, deadlineMs);
      this.pending.set(request.tickId, {
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      // SharedArrayBuffers are shared by postMessage, never copied.
      worker.postMessage({ ...request, buffers, dropped } satisfies TickRequest);
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const worker = this.worker;
    if (!worker) return;
    this.worker = null;
    worker.postMessage({ type: 'stop' } satisfies ToThread);
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const timer = setTimeout(() => void worker.terminate(), 2000);
    await exited;
    clearTimeout(timer);
    for (const waiter of this.pending.values()) waiter.reject(new ThreadCrashedError(this.index, 'stopped'));
    this.pending.clear();
  }

  /** For tests: end the thread abruptly, as a crash in native code would. */
  async kill(): Promise<void> {
    await this.worker?.terminate();
  }

  private restart(reason: string): void {
    this.restarts++;
    this.restartsInARow++;
    this.handed.clear();
    this.dropped = [];
    this.logger.error({ event: 'screener_thread_restarted', thread: this.index, reason, restarts: this.restarts }, 'screening thread restarted');
    // A thread that keeps dying at start must not spin: wait a little longer after each restart. No jitter: a local
    // thread has no peers to fall into step with.
    const delayMs = backoffDelay(this.restartsInARow - 1, { baseMs: 50, maxMs: 5000, random: () => 1 });
    this.ready = new Promise<void>((resolve, reject) => {
      setTimeout(() => {
        if (this.stopping) return reject(new ThreadCrashedError(this.index, 'stopped'));
        this.start().then(resolve, (error: unknown) => {
          this.logger.error({ event: 'screener_thread_failed', thread: this.index, err: error }, 'screening thread failed to restart');
          reject(error as Error);
        });
      }, delayMs);
    });
    this.ready.catch(() => undefined);
  }

  private post(message: ToThread): void {
    this.worker?.postMessage(message);
  }
}
