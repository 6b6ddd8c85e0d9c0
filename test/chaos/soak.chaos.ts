// `npm run chaos`, soak profile: the full universe (400 symbols × 4 intervals) and 20 traders for simulated hours; memory stays flat, the oracle holds.
import { describe, expect, it } from 'vitest';
import { assertRun, summarize, trendOf, writeResults } from './support/report.ts';
import { ChaosRun, type ChaosProfile } from './support/run.ts';

const HOUR = 3_600_000;
const env = (name: string, fallback: number) => (process.env[name] === undefined ? fallback : Number(process.env[name]));

/**
 * SOAK_HOURS simulated hours (default 8; 168 is the week, about 3 real hours) at SOAK_SPEED
 * (default ×60: a simulated hour per real minute). Faster, the worker's fixed 10 s REST, open and silence
 * limits shrink below the stalls of the in-process simulator serving 400 symbols on a loaded machine.
 * Traders refresh on 5m to 4h, so a tick over 400 symbols ends well within the 5 real seconds between 5m closes.
 */
const PROFILE: ChaosProfile = {
  // A run longer than the default is reported in a section of its own.
  name: process.env.SOAK_HOURS === undefined ? 'soak' : `soak (${env('SOAK_HOURS', 8)} simulated hours)`,
  seed: env('SOAK_SEED', 4242),
  speed: env('SOAK_SPEED', 60),
  durationMs: env('SOAK_HOURS', 8) * HOUR,
  symbols: 400,
  klineHistory: 500,
  traderIntervals: ['5m', '5m', '5m', '5m', '15m', '15m', '15m', '15m', '15m', '15m', '1h', '1h', '1h', '1h', '1h', '1h', '4h', '4h', '4h', '4h'],
  crowd: null,
  hostile: false,
  threadCrasher: true,
  faults: [],
  randomFaults: 0,
  churnMs: 0,
  editEveryRealMs: 0,
  screenerThreads: 2,
  klineUpdateMs: 60_000,
};

/** Memory may not grow by more than this over the run (last third against first, after the warm-up hour), unless 15 % of its level is more. */
const GROWTH_BOUND_MB = 40;

describe('soak profile', () => {
  it('holds exactly the oracle signals and keeps memory flat over simulated hours of the full universe', async () => {
    const report = await new ChaosRun(PROFILE).run();
    console.log(summarize(report));
    const rss = trendOf(report.samples.map((sample) => sample.rssMb));
    const heap = trendOf(report.samples.map((sample) => sample.heapUsedMb));
    const bound = (level: number) => Math.max(GROWTH_BOUND_MB, 0.15 * level);
    writeResults(report, 'npm run chaos', [
      `- flatness bound: growth (median of the last third of hourly samples minus the first, warm-up hour excluded) ≤ max(${GROWTH_BOUND_MB} MB, 15 % of the level): RSS ${rss.fittedGrowthMb} MB (bound ${bound(rss.lastMb).toFixed(0)}), heap ${heap.fittedGrowthMb} MB (bound ${bound(heap.lastMb).toFixed(0)})`,
    ]);
    expect(report.samples.length).toBeGreaterThanOrEqual(Math.floor(PROFILE.durationMs / HOUR) - 1);
    // Ticks keep up with the full universe: no candle is ever shed.
    expect(report.ticksSkipped).toBe(0);
    expect(rss.fittedGrowthMb).toBeLessThanOrEqual(bound(rss.lastMb));
    expect(heap.fittedGrowthMb).toBeLessThanOrEqual(bound(heap.lastMb));
    assertRun(report);
  });
});
