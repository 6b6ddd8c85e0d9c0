// Time for the whole worker: the system clock in production, an accelerated one shared with the simulator in tests.

export type TimerHandle = ReturnType<typeof setTimeout>;

export interface Clock {
  /** Milliseconds since the Unix epoch, in this clock's time. */
  now(): number;
  /** Clock milliseconds per real millisecond (1 for the system clock). */
  readonly speed: number;
  setTimeout(callback: () => void, clockMs: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
  setInterval(callback: () => void, clockMs: number): TimerHandle;
  clearInterval(handle: TimerHandle | undefined): void;
  /** Resolves after `clockMs` of this clock's time, or rejects with the signal's reason when aborted. */
  sleep(clockMs: number, signal?: AbortSignal): Promise<void>;
}

/**
 * A clock that runs `speed` times faster than real time from a shared origin. The simulator and the
 * worker build it from the same spec, so both agree on "now" without sharing memory or a process.
 */
export class AcceleratedClock implements Clock {
  readonly speed: number;
  readonly originRealMs: number;
  readonly originClockMs: number;
  private readonly realNow: () => number;

  constructor(options: { speed: number; originRealMs: number; originClockMs: number; realNow?: () => number }) {
    if (!(options.speed > 0)) throw new RangeError(`clock speed must be > 0, got ${options.speed}`);
    this.speed = options.speed;
    this.originRealMs = options.originRealMs;
    this.originClockMs = options.originClockMs;
    this.realNow = options.realNow ?? Date.now;
  }

  /** `speed,originRealMs,originClockMs`, the format of the CLOCK variable. */
  static parse(spec: string): AcceleratedClock {
    const parts = spec.split(',').map((part) => Number(part.trim()));
    if (parts.length !== 3 || parts.some((part) => !Number.isFinite(part))) {
      throw new RangeError('expected "speed,originRealMs,originClockMs"');
    }
    const [speed, originRealMs, originClockMs] = parts as [number, number, number];
    return new AcceleratedClock({ speed, originRealMs, originClockMs });
  }

  spec(): string {
    return `${this.speed},${this.originRealMs},${this.originClockMs}`;
  }

  now(): number {
    return Math.floor(this.originClockMs + (this.realNow() - this.originRealMs) * this.speed);
  }

  setTimeout(callback: () => void, clockMs: number): TimerHandle {
    return setTimeout(callback, Math.max(0, clockMs / this.speed));
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle !== undefined) clearTimeout(handle);
  }

  setInterval(callback: () => void, clockMs: number): TimerHandle {
    return setInterval(callback, Math.max(1, clockMs / this.speed));
  }

  clearInterval(handle: TimerHandle | undefined): void {
    if (handle !== undefined) clearInterval(handle);
  }

  sleep(clockMs: number, signal?: AbortSignal): Promise<void> {
    return sleepWith(this, clockMs, signal);
  }
}

export const systemClock: Clock = {
  speed: 1,
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, Math.max(0, ms)),
  clearTimeout: (handle) => {
    if (handle !== undefined) clearTimeout(handle);
  },
  setInterval: (callback, ms) => setInterval(callback, Math.max(1, ms)),
  clearInterval: (handle) => {
    if (handle !== undefined) clearInterval(handle);
  },
  sleep: (ms, signal) => sleepWith(systemClock, ms, signal),
};

function sleepWith(clock: Clock, clockMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clock.clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, clockMs);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
