// The screening thread's CPU clock, which filter limits are judged on, read sparingly.
//
// An isolate runs synchronously on the thread that calls it, so the thread's CPU time
// (process.threadCpuUsage) is the isolate's plus the host work its calls cause (memoized helpers).
// isolated-vm's own `isolate.cpuTime` cannot serve: its prebuilt binaries measure it on a steady
// (wall) clock. Reading the thread clock costs a system call (1-6 µs), against ~50 µs for a whole
// evaluation, so it is read only when wall time says a limit may have been reached.

/** CPU ms this thread has used (user + system). */
export function threadCpuMs(): number {
  const usage = process.threadCpuUsage();
  return (usage.user + usage.system) / 1000;
}

/**
 * Lower bounds of the CPU time of single calls on this thread. A mark (thread CPU, wall time) is
 * refreshed before a call when older than `refreshMs`; after a slow call, everything else since the
 * mark used at most its wall time of CPU, so the call used at least (CPU since the mark) − (wall
 * since the mark − the call's wall). Never more than the truth: a trader is never charged with a
 * neighbour's CPU (traders of a thread interleave symbol by symbol), at the price of up to
 * `refreshMs` of slack.
 */
export class ThreadCpuLedger {
  private readonly refreshMs: number;
  private markCpu = threadCpuMs();
  private markWall = performance.now();

  constructor(refreshMs: number) {
    this.refreshMs = refreshMs;
  }

  /** Before a call starting at wall time `started`. */
  before(started: number): void {
    if (started - this.markWall <= this.refreshMs) return;
    this.markCpu = threadCpuMs();
    this.markWall = started;
  }

  /** After a call that took `wallMs` and ended at wall time `ended`: at least how much CPU it used. */
  cpuOf(ended: number, wallMs: number): number {
    const cpu = threadCpuMs();
    const lowerBound = cpu - this.markCpu - (ended - this.markWall - wallMs);
    this.markCpu = cpu;
    this.markWall = ended;
    return lowerBound;
  }
}

/**
 * The share of a core the thread got since `start()`: CPU over wall time. Scales a trader's wall
 * time to an estimate of its CPU time for the per-tick budget, so a starved machine does not make
 * honest traders spend it.
 */
export class ThreadCpuShare {
  private startCpu = 0;
  private startWall = 0;

  start(): void {
    this.startCpu = threadCpuMs();
    this.startWall = performance.now();
  }

  /** Between 0 and 1; 1 before any time has passed. */
  now(): number {
    const wall = performance.now() - this.startWall;
    if (wall <= 0) return 1;
    return Math.min(1, Math.max(0, (threadCpuMs() - this.startCpu) / wall));
  }
}
