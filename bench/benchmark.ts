// What every benchmark returns and how the harness drives it: the contract between bench/run.ts and one benchmark file.
import type { BenchEnvironment } from './support/environment.ts';

export type BenchMode = 'quick' | 'full';

/** A sample distribution, so a figure always travels with its spread. */
export interface Distribution {
  n: number;
  median: number;
  min: number;
  max: number;
  p10: number;
  p90: number;
  p99: number;
}

export interface Figure {
  /** What was measured, in a few words: "ingest through the socket". */
  label: string;
  value: number;
  unit: string;
  /** Spread around `value` when it is a median of repetitions. */
  spread?: { low: number; high: number; kind: 'min–max' | 'p10–p90' };
  /** Set on the figures the issue names a goal for; judged only in full mode. */
  goal?: { text: string; met: boolean | null };
  detail?: string;
}

export interface Table {
  title: string;
  columns: string[];
  rows: Array<Array<string | number>>;
}

export interface BenchmarkResult {
  name: string;
  title: string;
  figures: Figure[];
  tables: Table[];
  /** Sizes, repetitions and anything a reader needs to reproduce or weigh the figures. */
  notes: string[];
}

export interface BenchContext {
  mode: BenchMode;
  /** Shared across the run: one local stack at most, started on first use. */
  environment: BenchEnvironment;
  /** Progress for the person watching the terminal (stderr; the table goes to stdout). */
  progress(message: string): void;
}

export interface Benchmark {
  name: string;
  title: string;
  run(context: BenchContext): Promise<BenchmarkResult>;
}

export function distribution(samples: readonly number[]): Distribution {
  if (samples.length === 0) throw new RangeError('a distribution needs at least one sample');
  if (samples.some((sample) => !Number.isFinite(sample))) throw new RangeError(`non-finite sample in ${samples.join(', ')}`);
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    median: quantile(sorted, 0.5),
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    p10: quantile(sorted, 0.1),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
  };
}

/** Linear interpolation between closest ranks (the "R-7" definition spreadsheets use). */
function quantile(sorted: readonly number[], q: number): number {
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const above = Math.ceil(position);
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (position - below);
}

/** The median of a distribution as a figure, with its min–max spread. */
export function medianFigure(label: string, samples: Distribution, unit: string, extra: Partial<Figure> = {}): Figure {
  return { label, value: samples.median, unit, spread: { low: samples.min, high: samples.max, kind: 'min–max' }, ...extra };
}

/**
 * Run `once` `warmup` times unrecorded, then `repetitions` times, returning the recorded results.
 * Warm-up lets the JIT, the page cache and the thread pool settle before anything counts.
 */
export async function repeat<T>(options: { warmup: number; repetitions: number }, once: (index: number) => Promise<T>): Promise<T[]> {
  for (let i = 0; i < options.warmup; i++) await once(-1 - i);
  const results: T[] = [];
  for (let i = 0; i < options.repetitions; i++) results.push(await once(i));
  return results;
}

/** A goal is judged only on full-size runs: quick mode's tiny sizes say nothing about it. */
export function goal(mode: BenchMode, text: string, met: boolean): Figure['goal'] {
  return { text, met: mode === 'full' ? met : null };
}
