// The default helper library answers every conformance vector as the web app does: on the host, in the source the isolates rebuild, with numeric and string klines (what `npm run parity` prints).
import { describe, expect, it } from 'vitest';
import { helperFunctions, helpersSource, TEXTBOOK_HELPERS, WEBAPP_HELPERS, type HelperName } from '../src/screening/helpers.ts';
import { checkParity, formatParity, sameResult } from './parity/check.ts';
import { PARITY_VECTORS } from './parity/vectors.ts';

type Library = Record<HelperName, (...args: never[]) => unknown>;

describe('parity with the web app over the conformance vectors', () => {
  it('covers every helper of the library', () => {
    const covered = new Set(PARITY_VECTORS.map((vector) => vector.helper));
    expect([...covered].sort()).toEqual(Object.keys(WEBAPP_HELPERS).sort());
  });

  it("every helper of the default library agrees, on the host and in the isolates' source, for numeric and string klines", () => {
    const rows = checkParity(PARITY_VECTORS, { host: helperFunctions('webapp'), isolate: new Function(helpersSource('webapp'))() as Library });
    const differing = rows.filter((row) => row.agreed !== row.runs);
    expect(differing, formatParity(rows)).toEqual([]);
    expect(rows.every((row) => row.runs === row.vectors * 4)).toBe(true);
  });

  it('tells a library that is not the web app apart: the textbook opt-in differs exactly where it is meant to', () => {
    const rows = checkParity(PARITY_VECTORS, { textbook: TEXTBOOK_HELPERS });
    const differing = rows.filter((row) => row.agreed !== row.runs).map((row) => row.helper);
    expect(differing.sort()).toEqual(
      ['calculateADX', 'calculateEMA', 'calculateMACD', 'calculateSMA', 'calculateStochRSI', 'calculateStochastic', 'calculateVWAP', 'getLatestStochRSI'].sort(),
    );
    expect(formatParity(rows)).toMatch(/^calculateADX +\d+ +\d+ +DIFFER/m);
  });

  it('compares numbers within 1e-9 relative, or exactly where the vector says so', () => {
    expect(sameResult(1 + 1e-12, 1)).toBe(true);
    expect(sameResult(100 + 1e-6, 100)).toBe(false);
    expect(sameResult(100 + 1e-12, 100, true)).toBe(false);
    expect(sameResult(0, null)).toBe(false);
    expect(sameResult(NaN, NaN)).toBe(true);
    expect(sameResult({ k: 1, d: 2, extra: 3 }, { k: 1, d: 2 })).toBe(false);
    expect(sameResult([{ k: 0, d: 0 }], { k: [0], d: [0] })).toBe(false);
  });

  it('the rebuilt source holds no trace of the module system it came from', () => {
    for (const version of ['webapp', 'textbook'] as const) {
      const source = helpersSource(version);
      expect(source).not.toMatch(/__vite_ssr|\bimport\(|\brequire\(/);
      expect(Object.keys(new Function(source)() as object)).toEqual(Object.keys(WEBAPP_HELPERS));
    }
  });
});
