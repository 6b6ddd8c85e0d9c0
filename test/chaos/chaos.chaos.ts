// `npm run chaos`, chaos profile: every fault kind on a schedule plus random ones from a seed, a simulated day and more, the oracle at the end.
import { describe, expect, it } from 'vitest';
import { assertRun, summarize, writeResults } from './support/report.ts';
import { ChaosRun, type ChaosProfile } from './support/run.ts';
import { ALL_KINDS } from './support/faults.ts';

const HOUR = 3_600_000;
const env = (name: string, fallback: number) => (process.env[name] === undefined ? fallback : Number(process.env[name]));

/**
 * About 7 real minutes by default: at ×60 (the worker's fixed 10 s stream-silence limit is then 170 real
 * ms, above the event-loop stalls of a loaded 2-core machine), three simulated hours of connection and
 * process faults, then 2.5 calm hours with only connection-safe faults (database, universe, frames).
 * CHAOS_CALM_HOURS=24 makes the last process's connection reach its 23 h rotation (about 30 minutes);
 * CHAOS_SPEED, CHAOS_CHURN_HOURS, CHAOS_RANDOM_FAULTS and CHAOS_SEED change the rest.
 */
const churnHours = env('CHAOS_CHURN_HOURS', 3);
const PROFILE: ChaosProfile = {
  // A run longer than the default is reported in a section of its own.
  name: process.env.CHAOS_CALM_HOURS === undefined ? 'chaos' : `chaos (${churnHours} + ${env('CHAOS_CALM_HOURS', 2.5)} simulated hours)`,
  seed: env('CHAOS_SEED', 20261126),
  speed: env('CHAOS_SPEED', 60),
  durationMs: (churnHours + env('CHAOS_CALM_HOURS', 2.5)) * HOUR,
  symbols: 20,
  klineHistory: 200,
  traderIntervals: ['1m', '1m', '1m', '1m', '5m', '5m', '15m', '1h'],
  crowd: { count: 200, interval: '1h' },
  hostile: true,
  threadCrasher: true,
  faults: ALL_KINDS,
  randomFaults: env('CHAOS_RANDOM_FAULTS', 8),
  churnMs: churnHours * HOUR,
  editEveryRealMs: 3_000,
  screenerThreads: 2,
  klineUpdateMs: 10_000,
};

describe('chaos profile', () => {
  it('through every kind of fault, nothing is lost, nothing is extra, nothing is duplicated', async () => {
    const report = await new ChaosRun(PROFILE).run();
    console.log(summarize(report));
    writeResults(report, 'npm run chaos');
    // Every scheduled kind was injected.
    for (const kind of PROFILE.faults) expect(report.faults[kind] ?? 0, kind).toBeGreaterThan(0);
    // The last process lived long enough to rotate its connection before Binance's 24 h cut.
    if (PROFILE.durationMs - PROFILE.churnMs >= 23.5 * HOUR) expect(report.streamRotations).toBeGreaterThan(0);
    assertRun(report);
  });
});
