// The helper library in its versions: which function answers each `helpers.*` name, the version
// strings recorded in provenance, and the one script body that rebuilds a version inside an isolate.
//
// Every function of the library is self-contained plain JavaScript once types are stripped: it may
// call the other library functions by their own names and nothing else (no module state, no
// aliased imports). That lets `helpersSource()` rebuild a version from `Function.prototype.toString`,
// so the sandboxed filters and the host-side memo run exactly the same code.
import type { HelpersVersion } from '../../domain.ts';
import { clearHVNCache, calculateHighVolumeNodes, countHVNInRange, getClosestHVN, isNearHVN } from './hvn.ts';
import { INTERNAL_FUNCTIONS } from './internal.ts';
import {
  calculateAvgVolume,
  calculateEMA,
  calculateEMASeries,
  calculateEMATextbook,
  calculateMA,
  calculateMACD,
  calculateMACDTextbook,
  calculateMACDValues,
  calculateMASeries,
  calculateSMA,
  calculateSMATextbook,
  getLatestEMA,
  getLatestMACD,
} from './moving.ts';
import {
  calculateRSI,
  calculateStochastic,
  calculateStochasticTextbook,
  calculateStochRSI,
  calculateStochRSITextbook,
  getLatestRSI,
  getLatestStochRSI,
  getLatestStochRSITextbook,
} from './oscillators.ts';
import { detectEngulfingPattern, detectGenericDivergence, detectRSIDivergence } from './patterns.ts';
import { calculateADX, calculateADXTextbook, calculateBollingerBands, getHighestHigh, getLatestBollingerBands, getLowestLow } from './trend.ts';
import {
  calculatePVISeries,
  calculateVWAP,
  calculateVWAPBands,
  calculateVWAPSeries,
  calculateVWAPTextbook,
  getLatestPVI,
  getLatestVWAP,
  getLatestVWAPBands,
} from './volume.ts';

/**
 * 'webapp' (the default) answers exactly as the web app's browser screener does, so a trader gives
 * the same verdicts in both places; 'textbook' is the per-trader opt-in (`filter.helpers`) for the
 * standard definitions: Wilder's ADX, the slow stochastic, null on insufficient data, StochRSI as
 * `{ k: [...], d: [...] }`. The type is domain vocabulary (TraderFilter carries it).
 */
export type { HelpersVersion };
export const DEFAULT_HELPERS_VERSION: HelpersVersion = 'webapp';
export const HELPERS_VERSIONS: readonly HelpersVersion[] = ['webapp', 'textbook'];

/** Bumped whenever a helper's result can change in that version; part of every signal's provenance. */
const RELEASES: Record<HelpersVersion, string> = {
  webapp: '2026.12.01-1',
  textbook: '2026.12.01-1',
};

/** The version string recorded in provenance, e.g. 'webapp@2026.12.01-1'. */
export function helpersLibraryVersion(version: HelpersVersion): string {
  const release = RELEASES[version];
  if (release === undefined) throw new Error(`unknown helpers version ${JSON.stringify(version)} (expected ${HELPERS_VERSIONS.join(' or ')})`);
  return `${version}@${release}`;
}

/** The web app's library, in the order documented in docs/helpers.md. */
export const WEBAPP_HELPERS = {
  calculateMA,
  calculateMASeries,
  calculateSMA,
  calculateAvgVolume,
  calculateRSI,
  getLatestRSI,
  detectRSIDivergence,
  detectGenericDivergence,
  calculateStochRSI,
  getLatestStochRSI,
  calculateEMASeries,
  getLatestEMA,
  calculateEMA,
  calculateMACD,
  calculateMACDValues,
  getLatestMACD,
  calculateADX,
  calculateStochastic,
  getHighestHigh,
  getLowestLow,
  detectEngulfingPattern,
  calculatePVISeries,
  getLatestPVI,
  calculateHighVolumeNodes,
  isNearHVN,
  getClosestHVN,
  countHVNInRange,
  clearHVNCache,
  calculateBollingerBands,
  getLatestBollingerBands,
  calculateVWAP,
  calculateVWAPSeries,
  getLatestVWAP,
  calculateVWAPBands,
  getLatestVWAPBands,
};

export type HelperName = keyof typeof WEBAPP_HELPERS;
export type Helpers = typeof WEBAPP_HELPERS;

/** The opt-in standard definitions: the web app's library with these names answered differently. */
export const TEXTBOOK_HELPERS = {
  ...WEBAPP_HELPERS,
  calculateSMA: calculateSMATextbook,
  calculateStochRSI: calculateStochRSITextbook,
  getLatestStochRSI: getLatestStochRSITextbook,
  calculateEMA: calculateEMATextbook,
  calculateMACD: calculateMACDTextbook,
  calculateADX: calculateADXTextbook,
  calculateStochastic: calculateStochasticTextbook,
  calculateVWAP: calculateVWAPTextbook,
} satisfies Record<HelperName, unknown>;

export type TextbookHelpers = typeof TEXTBOOK_HELPERS;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- callers pass a filter's untyped arguments through
export type HelperFunction = (...args: any[]) => unknown;

const LIBRARIES: Record<HelpersVersion, Record<HelperName, HelperFunction>> = {
  webapp: WEBAPP_HELPERS,
  textbook: TEXTBOOK_HELPERS,
};

/** The functions answering `helpers.*` in `version`, for the host side (the memo, the reference screener). */
export function helperFunctions(version: HelpersVersion): Record<HelperName, HelperFunction> {
  const library = LIBRARIES[version];
  if (library === undefined) throw new Error(`unknown helpers version ${JSON.stringify(version)} (expected ${HELPERS_VERSIONS.join(' or ')})`);
  return library;
}

/** Helpers whose first argument is a kline array: the screener memoizes these per series and tick. The same in every version. */
export const KLINE_HELPERS: ReadonlySet<string> = new Set<HelperName>([
  'calculateMA',
  'calculateMASeries',
  'calculateAvgVolume',
  'calculateRSI',
  'getLatestRSI',
  'detectRSIDivergence',
  'calculateStochRSI',
  'getLatestStochRSI',
  'calculateEMASeries',
  'getLatestEMA',
  'calculateMACDValues',
  'getLatestMACD',
  'calculateADX',
  'calculateStochastic',
  'getHighestHigh',
  'getLowestLow',
  'detectEngulfingPattern',
  'calculatePVISeries',
  'getLatestPVI',
  'calculateHighVolumeNodes',
  'calculateBollingerBands',
  'getLatestBollingerBands',
  'calculateVWAP',
  'calculateVWAPSeries',
  'getLatestVWAP',
  'calculateVWAPBands',
  'getLatestVWAPBands',
]);

/**
 * A function's source with calls into other modules turned back into calls by name. Vitest's
 * module runner rewrites `calculateRSI(…)` imported from a sibling file into
 * `(0,__vite_ssr_import_2__.calculateRSI)(…)`; inside the rebuilt library every function is in scope
 * under its own name. Plain Node and the built image leave the source as written. The sandbox's
 * runtime, assembled from several files the same way, uses it too.
 */
export function unqualified(source: string): string {
  return source.replace(/\(0\s*,\s*__vite_ssr_import_\d+__\.([\w$]+)\)/g, '$1').replace(/__vite_ssr_import_\d+__\.([\w$]+)/g, '$1');
}

const sources = new Map<HelpersVersion, string>();

/**
 * `version` of the library as one script body that defines its functions and returns the
 * `helpers` object: `new Function(helpersSource(v))()` in Node, or evaluated inside an isolate.
 * `__name` is defined because some transpilers insert it around nested functions to keep their names.
 */
export function helpersSource(version: HelpersVersion = DEFAULT_HELPERS_VERSION): string {
  let source = sources.get(version);
  if (source !== undefined) return source;
  const library = helperFunctions(version);
  const unique = [...new Set([...INTERNAL_FUNCTIONS, ...Object.values(library)])];
  // Two declarations under one name would silently leave only the last in the rebuilt library.
  const names = unique.map((fn) => fn.name);
  const clash = names.find((name, i) => names.indexOf(name) !== i);
  if (clash !== undefined) throw new Error(`helpers library '${version}': two functions are named ${clash}`);
  const functions = unique.map((fn) => unqualified(fn.toString()));
  const entries = Object.entries(library).map(([name, fn]) => (name === fn.name ? name : `${name}: ${fn.name}`));
  source = `"use strict";\nvar __name = function (target) { return target; };\n${functions.join('\n')}\nreturn { ${entries.join(', ')} };`;
  sources.set(version, source);
  return source;
}
