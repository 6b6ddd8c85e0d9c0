// Runs the conformance vectors against a helper library (numeric klines, then the same klines as
// the browser's strings) and tells, helper by helper, whether it answers as the web app does.
import type { HelperName } from '../../src/screening/helpers.ts';
import type { ParityVector } from './vectors.ts';

type Library = Record<HelperName, (...args: never[]) => unknown>;

export interface HelperParity {
  helper: HelperName;
  vectors: number;
  /** Vector runs (numeric and string klines, per library) that gave the web app's answer. */
  agreed: number;
  runs: number;
  /** The first disagreement, for the report. */
  firstDifference: string | null;
}

const RELATIVE_TOLERANCE = 1e-9;

/** Deep equality; numbers within 1e-9 relative (or identical when `exact`); NaN equals only NaN. */
export function sameResult(actual: unknown, expected: unknown, exact = false): boolean {
  if (typeof expected === 'number' && typeof actual === 'number') {
    if (Object.is(actual, expected)) return true;
    if (exact || !Number.isFinite(actual) || !Number.isFinite(expected)) return false;
    return Math.abs(actual - expected) <= RELATIVE_TOLERANCE * Math.max(1, Math.abs(expected));
  }
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length && expected.every((value, i) => sameResult(actual[i], value, exact));
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return false;
    const keys = Object.keys(expected);
    if (Object.keys(actual).length !== keys.length) return false;
    return keys.every((key) => key in actual && sameResult((actual as Record<string, unknown>)[key], (expected as Record<string, unknown>)[key], exact));
  }
  return Object.is(actual, expected);
}

const isKlines = (value: unknown): value is unknown[][] => Array.isArray(value) && value.length > 0 && value.every(Array.isArray);

/** The arguments with every kline array as the browser receives it: all fields strings. */
export function withStringKlines(args: readonly unknown[]): unknown[] {
  return args.map((arg) => (isKlines(arg) ? arg.map((kline) => kline.map((field) => String(field))) : arg));
}

function describe(value: unknown): string {
  const text = JSON.stringify(value, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

/** Every vector against every library, numeric and string klines; one row per helper, in vector order. */
export function checkParity(vectors: readonly ParityVector[], libraries: Record<string, Library>): HelperParity[] {
  const rows = new Map<HelperName, HelperParity>();
  for (const vector of vectors) {
    let row = rows.get(vector.helper);
    if (!row) rows.set(vector.helper, (row = { helper: vector.helper, vectors: 0, agreed: 0, runs: 0, firstDifference: null }));
    row.vectors++;
    for (const [libraryName, library] of Object.entries(libraries)) {
      for (const [form, args] of [['numeric', vector.args], ['string', withStringKlines(vector.args)]] as const) {
        row.runs++;
        let actual: unknown;
        let threw: unknown = null;
        try {
          actual = (library[vector.helper] as (...args: unknown[]) => unknown)(...args);
        } catch (error) {
          threw = error;
        }
        if (threw === null && sameResult(actual, vector.expected, vector.exact)) {
          row.agreed++;
        } else if (row.firstDifference === null) {
          const got = threw === null ? describe(actual) : `throws ${String(threw)}`;
          row.firstDifference = `${vector.name} (${libraryName}, ${form} klines): expected ${describe(vector.expected)}, got ${got}`;
        }
      }
    }
  }
  return [...rows.values()];
}

/** The report `npm run parity` prints: one line per helper, then the differences. */
export function formatParity(rows: readonly HelperParity[]): string {
  const width = Math.max(...rows.map((row) => row.helper.length), 'helper'.length);
  const lines = [`${'helper'.padEnd(width)}  vectors  runs  verdict`, `${'-'.repeat(width)}  -------  ----  -------`];
  for (const row of rows) {
    lines.push(`${row.helper.padEnd(width)}  ${String(row.vectors).padStart(7)}  ${String(row.runs).padStart(4)}  ${row.agreed === row.runs ? 'agree' : `DIFFER (${row.runs - row.agreed} runs)`}`);
  }
  const differing = rows.filter((row) => row.agreed !== row.runs);
  lines.push('', `${rows.length - differing.length} of ${rows.length} helpers agree with the web app on every vector.`);
  for (const row of differing) lines.push(`  ${row.helper}: ${row.firstDifference}`);
  return lines.join('\n');
}
