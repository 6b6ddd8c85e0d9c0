// The start/stop state machine every long-lived part shares.
import { IllegalStateError } from './errors.ts';
import type { LifecycleState } from './ports.ts';

const LEGAL: Record<LifecycleState, readonly LifecycleState[]> = {
  idle: ['starting', 'stopped'],
  starting: ['running', 'failed', 'stopping'],
  running: ['stopping', 'failed'],
  stopping: ['stopped', 'failed'],
  stopped: ['starting'],
  failed: ['stopping', 'stopped', 'starting'],
};

/**
 * Guards transitions and de-duplicates concurrent calls: a second start() returns the promise
 * already in flight, and so does a second stop().
 */
export class LifecycleGuard {
  private current: LifecycleState = 'idle';
  private starting: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  private readonly component: string;

  constructor(component: string) {
    this.component = component;
  }

  get state(): LifecycleState {
    return this.current;
  }

  transition(to: LifecycleState): void {
    if (!LEGAL[this.current].includes(to)) throw new IllegalStateError(this.component, this.current, to);
    this.current = to;
  }

  start(run: () => Promise<void>): Promise<void> {
    if (this.starting) return this.starting;
    if (this.current === 'running') return Promise.resolve();
    this.transition('starting');
    this.stopping = null;
    this.starting = run().then(
      () => {
        if (this.current === 'starting') this.transition('running');
        this.starting = null;
      },
      (error: unknown) => {
        if (this.current === 'starting') this.transition('failed');
        this.starting = null;
        throw error;
      },
    );
    return this.starting;
  }

  stop(run: () => Promise<void>): Promise<void> {
    if (this.stopping) return this.stopping;
    if (this.current === 'idle' || this.current === 'stopped') {
      this.current = 'stopped';
      return Promise.resolve();
    }
    this.transition('stopping');
    this.stopping = run().finally(() => {
      if (this.current === 'stopping') this.transition('stopped');
    });
    return this.stopping;
  }
}
