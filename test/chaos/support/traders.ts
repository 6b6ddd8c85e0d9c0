// The chaos suite's traders: deterministic kline-only filters the oracle can replay, and hostile ones it must survive.
import type { Interval } from '../../../src/domain.ts';
import type { Rng } from './rng.ts';

/** A trader whose every signal the oracle predicts: its result depends only on the closed klines it is shown. */
export interface OracleTrader {
  kind: 'oracle';
  name: string;
  filter: { code: string; refreshInterval: Interval; requiredTimeframes: Interval[]; description?: string[] };
}

/** A trader built to break things; `expect` is what the worker must make of it. */
export interface HostileTrader {
  kind: 'hostile';
  name: string;
  /** Stored as the row's `filter` jsonb (a string stores a JSON string, as the web app sometimes did). */
  filter: unknown;
  /**
   * disabled: trader_status must end disabled with a reason. silent: it must never produce a signal (an
   * escape that worked would). bounded: either disabled, or at most one signal per symbol (one episode)
   * whose stored conditions stay small.
   */
  expect: 'disabled' | 'silent' | 'bounded';
  /** What the disable reason must say, when a particular cause must be named. */
  reason?: RegExp;
}

export type ChaosTrader = OracleTrader | HostileTrader;

/**
 * Filter bodies over `timeframes` only, written the browser's way (parseFloat on kline fields), each
 * with parameters so many traders differ. None reads `ticker` or `helpers`: the oracle evaluates the
 * code as plain JavaScript on the simulator's candles, with no part of the worker involved.
 */
const TEMPLATES: Array<(rng: Rng, interval: Interval, other: Interval | null) => { code: string; timeframes: Interval[] }> = [
  // Fast average above slow average: long episodes, rising edges at crossings.
  (rng, interval) => {
    const fast = rng.int(3, 8);
    const slow = fast + rng.int(5, 20);
    return {
      timeframes: [interval],
      code: `
const k = timeframes['${interval}'];
if (!k || k.length < ${slow}) return false;
const mean = (n) => { let s = 0; for (let i = k.length - n; i < k.length; i++) s += parseFloat(k[i][4]); return s / n; };
const fast = mean(${fast});
const slow = mean(${slow});
return { match: fast > slow * ${(1 + rng.int(0, 5) / 10_000).toFixed(4)}, conditions: ['SMA${fast} > SMA${slow}'] };`,
    };
  },
  // Close breaks the highest high of the previous n candles.
  (rng, interval) => {
    const n = rng.int(5, 25);
    return {
      timeframes: [interval],
      code: `
const k = timeframes['${interval}'];
if (!k || k.length < ${n + 1}) return false;
let highest = -Infinity;
for (let i = k.length - 1 - ${n}; i < k.length - 1; i++) highest = Math.max(highest, parseFloat(k[i][2]));
const close = parseFloat(k[k.length - 1][4]);
return close > highest ? { match: true, conditions: ['breakout ${n}'] } : false;`,
    };
  },
  // Volume spike against the average of the previous n candles.
  (rng, interval) => {
    const n = rng.int(10, 30);
    const factor = (1.3 + rng.next() * 0.8).toFixed(2);
    return {
      timeframes: [interval],
      code: `
const k = timeframes['${interval}'];
if (!k || k.length < ${n + 1}) return false;
let total = 0;
for (let i = k.length - 1 - ${n}; i < k.length - 1; i++) total += parseFloat(k[i][5]);
return parseFloat(k[k.length - 1][5]) > (total / ${n}) * ${factor};`,
    };
  },
  // Position in the recent range (a plain stochastic) on the refresh interval, with a second timeframe's trend.
  (rng, interval, other) => {
    const n = rng.int(8, 20);
    const level = (0.7 + rng.next() * 0.25).toFixed(3);
    const trend = other ?? interval;
    return {
      timeframes: other ? [interval, other] : [interval],
      code: `
const k = timeframes['${interval}'];
const t = timeframes['${trend}'];
if (!k || k.length < ${n} || !t || t.length < 4) return false;
let high = -Infinity, low = Infinity;
for (let i = k.length - ${n}; i < k.length; i++) { high = Math.max(high, parseFloat(k[i][2])); low = Math.min(low, parseFloat(k[i][3])); }
const close = parseFloat(k[k.length - 1][4]);
const position = high > low ? (close - low) / (high - low) : 0;
const rising = parseFloat(t[t.length - 1][4]) > parseFloat(t[t.length - 4][4]);
return { match: position > ${level} && rising, conditions: ['range ' + position.toFixed(2), 'trend ${trend}'] };`,
    };
  },
  // Return over n candles above a threshold scaled to the interval.
  (rng, interval) => {
    const n = rng.int(3, 12);
    const threshold = (0.0005 + rng.next() * 0.002).toFixed(5);
    return {
      timeframes: [interval],
      code: `
const k = timeframes['${interval}'];
if (!k || k.length <= ${n}) return false;
const change = parseFloat(k[k.length - 1][4]) / parseFloat(k[k.length - 1 - ${n}][4]) - 1;
return change > ${threshold};`,
    };
  },
];

/** Intervals a filter may also read: a coarser one that closes on the refresh interval's boundaries. */
const COARSER: Partial<Record<Interval, Interval>> = { '1m': '5m', '5m': '15m', '15m': '1h', '1h': '4h' };

export function oracleTrader(rng: Rng, name: string, interval: Interval, available: readonly Interval[]): OracleTrader {
  const templateIndex = rng.int(0, TEMPLATES.length - 1);
  const coarser = COARSER[interval];
  const other = coarser !== undefined && available.includes(coarser) && rng.next() < 0.6 ? coarser : null;
  const { code, timeframes } = TEMPLATES[templateIndex]!(rng, interval, other);
  return { kind: 'oracle', name, filter: { code, refreshInterval: interval, requiredTimeframes: timeframes } };
}

/**
 * A trader on `interval` that also reads the next coarser timeframe (the range-and-trend template), so a profile
 * whose random draw has none still has a trader a failing higher-timeframe gap fill can hold back.
 */
export function higherTimeframeTrader(rng: Rng, name: string, interval: Interval): OracleTrader {
  const coarser = COARSER[interval];
  if (coarser === undefined) throw new Error(`no coarser timeframe for ${interval}`);
  const { code, timeframes } = TEMPLATES[3]!(rng, interval, coarser);
  return { kind: 'oracle', name, filter: { code, refreshInterval: interval, requiredTimeframes: timeframes } };
}

/** Every way a user's code can misbehave, each expected to hurt only its own trader. */
export function hostileTraders(interval: Interval): HostileTrader[] {
  const base = { refreshInterval: interval, requiredTimeframes: [interval] };
  const escape = (probe: string) =>
    `let escaped = false; try { escaped = Boolean(${probe}); } catch (e) { escaped = false; } return escaped;`;
  return [
    { kind: 'hostile', name: 'hostile: syntax error', filter: { ...base, code: 'return (;' }, expect: 'disabled' },
    { kind: 'hostile', name: 'hostile: endless loop', filter: { ...base, code: 'for (;;) {}' }, expect: 'disabled' },
    {
      kind: 'hostile',
      name: 'hostile: memory bomb',
      filter: { ...base, code: "const hoard = []; for (;;) hoard.push(new Array(1e6).fill('x'));" },
      expect: 'disabled',
    },
    // Read by its truthiness, as the browser reads it (a warning, never a failure): a match on every candle, one episode.
    { kind: 'hostile', name: 'hostile: non-boolean', filter: { ...base, code: "return 'yes';" }, expect: 'bounded' },
    { kind: 'hostile', name: 'hostile: throws', filter: { ...base, code: "throw new Error('boom');" }, expect: 'disabled' },
    {
      kind: 'hostile',
      name: 'hostile: huge output',
      filter: { ...base, code: "return { match: true, conditions: Array.from({ length: 200000 }, (_, i) => 'condition ' + i + ' '.repeat(200)) };" },
      expect: 'bounded',
    },
    { kind: 'hostile', name: 'hostile: escape process', filter: { ...base, code: escape("typeof process !== 'undefined' && process.env") }, expect: 'silent' },
    {
      kind: 'hostile',
      name: 'hostile: escape constructor',
      filter: { ...base, code: escape("this.constructor.constructor('return process')().env") }, expect: 'silent',
    },
    { kind: 'hostile', name: 'hostile: escape require', filter: { ...base, code: escape("typeof require === 'function' && require('fs')") }, expect: 'silent' },
    { kind: 'hostile', name: 'hostile: escape network', filter: { ...base, code: escape("typeof fetch === 'function' || typeof WebSocket === 'function'") }, expect: 'silent' },
    { kind: 'hostile', name: 'hostile: malformed JSON filter', filter: '{"code": "return true;", "refreshInterval": "1m"', expect: 'disabled' },
    { kind: 'hostile', name: 'hostile: unknown interval', filter: { code: 'return true;', refreshInterval: '7m' }, expect: 'disabled' },
  ];
}

/**
 * The marker the chaos worker is started with (FAULT_INJECTION=thread-exit=<marker>): a screening thread that
 * begins a filter whose code holds it exits, as a native crash of the thread would. Only the crasher carries it.
 */
export const THREAD_EXIT_MARKER = 'chaos_thread_exit_every_tick';

/**
 * A trader that takes its screening thread down on every tick it runs: the crash must be charged to it (disabled at
 * once, TRADER_CRASH), and the traders sharing its thread rerun on the restarted thread and lose nothing.
 */
export function threadCrasherTrader(interval: Interval): HostileTrader {
  return {
    kind: 'hostile',
    name: 'hostile: thread crasher',
    filter: { refreshInterval: interval, requiredTimeframes: [interval], code: `/* ${THREAD_EXIT_MARKER} */ return true;` },
    expect: 'disabled',
    reason: /crashed its screening thread/,
  };
}
