// Shared settings of the property-based tests: one fixed seed (FUZZ_SEED overrides it) and a run count scaled by FUZZ_SCALE.
import fc from 'fast-check';

const DEFAULT_SEED = 20_261_126;

/** The seed every property of this run starts from; a failure prints it with the shrunk counterexample's path. */
export const FUZZ_SEED = Number.isSafeInteger(Number(process.env.FUZZ_SEED)) && process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : DEFAULT_SEED;

/** `FUZZ_SCALE=10 npx vitest run test/fuzz.*` fuzzes ten times longer; the default keeps `npm test` fast. */
const FUZZ_SCALE = Math.max(0.1, Number(process.env.FUZZ_SCALE) || 1);

/**
 * fc.assert with the run's seed, so a failure reproduces with `FUZZ_SEED=<seed>`. fast-check's own report
 * (seed, path, counterexample) is kept, and the seed is repeated in front for readers of a CI log.
 */
export function check<Ts>(property: fc.IRawProperty<Ts>, numRuns: number): void {
  const runs = Math.max(1, Math.round(numRuns * FUZZ_SCALE));
  try {
    fc.assert(property, { seed: FUZZ_SEED, numRuns: runs });
  } catch (error) {
    if (error instanceof Error) error.message = `[FUZZ_SEED=${FUZZ_SEED}, numRuns=${runs}] ${error.message}`;
    throw error;
  }
}

/** Any JSON value, including the shapes PostgREST and Binance never send on purpose (deep nesting, odd keys, -0). */
export const anyJson = fc.jsonValue({ maxDepth: 4 });

/** Strings that are likely to break a parser: JSON fragments, control characters, unicode, huge numerals. */
export const nastyString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('', ' ', '\n', '\u2028', 'NaN', 'Infinity', '-Infinity', '1e999', '-1e999', '0x1F', '1_000', '１２', '__proto__', 'constructor', 'toString', 'null', 'true', '{', '[', '"', '\\', '\u0000'),
  fc.bigInt().map((n) => `${n}${n}${n}`),
);
