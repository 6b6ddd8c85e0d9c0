// What every chaos profile asserts of its run, and the figures it writes to test/chaos/RESULTS.md.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ROOT } from '../../../dev/workerProcess.ts';
import type { RunReport } from './run.ts';
import { slope } from './samples.ts';

const HOUR = 3_600_000;

export function assertRun(report: RunReport): void {
  const { verdict } = report;
  // The oracle's own sanity: it evaluated something and expected signals to exist at all.
  expect(verdict.evaluations).toBeGreaterThan(0);
  expect(verdict.required).toBeGreaterThan(0);
  expect({ missing: verdict.missing.slice(0, 20), count: verdict.missing.length }).toEqual({ missing: [], count: 0 });
  expect({ extra: verdict.extra.slice(0, 20), count: verdict.extra.length }).toEqual({ extra: [], count: 0 });
  expect(verdict.duplicated).toEqual([]);
  expect(verdict.mismatched.slice(0, 20)).toEqual([]);
  expect(report.problems).toEqual([]);
  expect(report.secretLeaks).toBe(0);
  // Every generation ended by SIGTERM exits 0; SIGKILL ends with null; a failed boot exits 1 and is restarted.
  expect(report.exitCodes.filter((code) => code !== 0 && code !== null).length).toBe(report.bootFailures.length);
  for (const hostile of report.hostile) {
    if (hostile.expect === 'disabled') expect({ name: hostile.name, state: hostile.state, hasReason: Boolean(hostile.lastError) }).toEqual({ name: hostile.name, state: 'disabled', hasReason: true });
    if (hostile.reason) expect(hostile.lastError ?? '', hostile.name).toMatch(hostile.reason);
    if (hostile.expect === 'silent') expect({ name: hostile.name, signals: hostile.signals }).toEqual({ name: hostile.name, signals: 0 });
    if (hostile.expect === 'bounded') {
      expect(hostile.state === 'disabled' || hostile.signals <= report.profile.symbols + 5, hostile.name).toBe(true);
      expect(hostile.maxConditionsBytes, hostile.name).toBeLessThan(64 * 1024);
    }
  }
  if (report.profile.threadCrasher) {
    // The crasher really took its thread down, and no crash was ever charged to anyone else (the oracle above shows its neighbours lost nothing).
    expect(report.threadCrashes.chargedToCrasher).toBeGreaterThan(0);
    expect(report.threadCrashes.chargedToOthers).toEqual([]);
  }
}

export interface Trend {
  firstMb: number;
  lastMb: number;
  /**
   * Growth after the warm-up hour: median of the last third of the samples minus median of the first
   * third. Medians, because one sample taken just before or after a collection would tilt a line fit.
   */
  fittedGrowthMb: number;
  /** Least-squares slope, for the record. */
  perHourMb: number;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? 0 : sorted[Math.floor((sorted.length - 1) / 2)]!;
};

export function trendOf(values: number[]): Trend {
  const steady = values.length > 3 ? values.slice(1) : values;
  const third = Math.max(1, Math.floor(steady.length / 3));
  return {
    firstMb: values[0] ?? 0,
    lastMb: values.at(-1) ?? 0,
    fittedGrowthMb: Math.round((median(steady.slice(-third)) - median(steady.slice(0, third))) * 10) / 10,
    perHourMb: Math.round(slope(steady) * 100) / 100,
  };
}

/** Replace this profile's section of RESULTS.md (other profiles' sections stay). */
export function writeResults(report: RunReport, command: string, extra: string[] = []): void {
  const file = join(ROOT, 'test', 'chaos', 'RESULTS.md');
  const header = '# Chaos and soak results\n\nWritten by the chaos suite (`test/chaos/`); each profile replaces its own section when it runs.\n';
  // The file's introduction (how to read the figures) is kept as written; only sections are replaced.
  const existing = existsSync(file) ? readFileSync(file, 'utf8') : header;
  const { verdict, profile } = report;
  const rss = trendOf(report.samples.map((sample) => sample.rssMb));
  const heap = trendOf(report.samples.map((sample) => sample.heapUsedMb));
  const faults = Object.entries(report.faults)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([kind, count]) => `${kind} ${count}`)
    .join(', ');
  const simulator = Object.entries(report.simulatorFaults)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([kind, count]) => `${kind} ${count}`)
    .join(', ');
  const exclusions = Object.entries(verdict.excludedByReason).map(([reason, count]) => `  - ${count}: ${reason}`);
  const watched = Object.entries(verdict.watched).map(([label, { required, found }]) => `  - ${required} required, ${found} found: ${label}`);
  const lines = [
    `## ${profile.name}`,
    '',
    `- command: \`${command}\`; run ${new Date().toISOString().slice(0, 16)}Z, seed ${profile.seed}`,
    `- ${profile.symbols} symbols, ${new Set([...profile.traderIntervals, ...(profile.crowd ? [profile.crowd.interval] : [])]).size} refresh intervals, ${report.oracleTraders} oracle traders${report.hostile.length > 0 ? ` + ${report.hostile.length} hostile` : ''}, KLINE_HISTORY ${profile.klineHistory}`,
    `- clock ×${profile.speed}: ${(report.simulatedMs / HOUR).toFixed(1)} simulated hours in ${(report.realMs / 60_000).toFixed(1)} real minutes; ${report.generations} worker processes`,
    `- faults injected by kind: ${faults || 'none'}; trader rows edited ${report.traderEdits} times; half-way batch failures fired ${report.halfBatchFailures}`,
    `- worker processes that failed to boot and were restarted (as the platform does): ${report.bootFailures.length}${report.bootFailures.length > 0 ? ` (${[...new Set(report.bootFailures.map((failure) => failure.replace(/^generation \d+ /, '')))].join('; ')})` : ''}`,
    `- simulator fault counters: ${simulator || 'none'}; 24 h stream rotations ${report.streamRotations}; Binance limit violations ${report.violations.length}`,
    `- oracle: ${verdict.evaluations} evaluations; signals expected ${verdict.expected} (required ${verdict.required}; excluded by design ${verdict.excluded}, of which present anyway ${verdict.excludedFound}); found ${verdict.found}; **missing ${verdict.missing.length}, extra ${verdict.extra.length}, duplicated ${verdict.duplicated.length}**, price mismatches ${verdict.mismatched.length}`,
    ...(exclusions.length > 0 ? ['- exclusions (expected signals not required, each by a named fault):', ...exclusions] : []),
    ...(watched.length > 0 ? ['- required signals that closed while no worker was screening or the process was frozen (no longer excused):', ...watched] : []),
    ...(profile.threadCrasher ? [`- thread crasher (FAULT_INJECTION thread-exit on every tick it runs): ${crasherLine(report)}`] : []),
    `- hostile traders: ${report.hostile.map((h) => `${h.name.replace('hostile: ', '')} → ${h.state ?? 'no status'}${h.signals > 0 ? ` (${h.signals} signals)` : ''}`).join('; ') || 'none'}`,
    `- peak RSS ${report.peakRssMb} MB; RSS ${rss.firstMb} → ${rss.lastMb} MB over ${report.samples.length} hourly samples, least-squares ${rss.perHourMb} MB/h, growth ${rss.fittedGrowthMb} MB (median of the last third minus the first, after the warm-up hour); heap ${heap.firstMb} → ${heap.lastMb} MB, trend ${heap.perHourMb} MB/h`,
    `- hourly samples: RSS MB ${report.samples.map((sample) => sample.rssMb).join(' ') || 'n/a'}; heap MB ${report.samples.map((sample) => sample.heapUsedMb).join(' ') || 'n/a'}`,
    `- hourly samples: tick mean / max (real ms) ${report.samples.map((sample) => `${sample.tickMeanMs}/${sample.tickMaxMs}`).join(' ') || 'n/a'}; worst event-loop lag p99 (ms) ${report.samples.map((sample) => sample.eventLoopLagP99Ms).join(' ') || 'n/a'}`,
    ...extra,
    '',
  ];
  const section = lines.join('\n');
  const escaped = profile.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`## ${escaped}\\n[\\s\\S]*?(?=\\n## |$)`);
  const next = pattern.test(existing) ? existing.replace(pattern, () => section.trimEnd() + '\n') : `${existing.trimEnd()}\n\n${section}`;
  writeFileSync(file, next.endsWith('\n') ? next : `${next}\n`);
}

function crasherLine(report: RunReport): string {
  const crasher = report.hostile.find((h) => h.reason !== undefined && /thread crasher/.test(h.name));
  const { total, chargedToCrasher, chargedToNobody, chargedToOthers } = report.threadCrashes;
  return `${crasher?.state ?? 'no status'}${crasher?.lastError ? ` with \`${crasher.lastError}\`` : ''}; ticks that lost their thread ${total}: charged to it ${chargedToCrasher}, to nobody (another tick on that thread, rerun whole) ${chargedToNobody}, to any other trader ${chargedToOthers.length}`;
}

/** A few lines for the test output: what ran, and the first of whatever went wrong. */
export function summarize(report: RunReport): string {
  const { verdict } = report;
  return [
    `${report.profile.name}: ${(report.simulatedMs / HOUR).toFixed(2)} simulated h in ${(report.realMs / 1000).toFixed(0)} s, ${report.generations} processes, exits ${report.exitCodes.join(',')}`,
    `faults ${JSON.stringify(report.faults)} simulator ${JSON.stringify(report.simulatorFaults)} halfBatch ${report.halfBatchFailures} edits ${report.traderEdits}`,
    `oracle: evaluations ${verdict.evaluations} expected ${verdict.expected} required ${verdict.required} excluded ${verdict.excluded} (present anyway ${verdict.excludedFound}) found ${verdict.found} missing ${verdict.missing.length} extra ${verdict.extra.length} duplicated ${verdict.duplicated.length} mismatched ${verdict.mismatched.length}`,
    `excluded: ${JSON.stringify(verdict.excludedByReason)}`,
    `required while down or frozen: ${JSON.stringify(verdict.watched)}`,
    ...verdict.missing.slice(0, 10).map((entry) => `missing ${entry}`),
    ...verdict.extra.slice(0, 10).map((entry) => `extra ${entry}`),
    ...verdict.mismatched.slice(0, 5).map((entry) => `mismatched ${entry}`),
    `hostile: ${report.hostile.map((h) => `${h.name}=${h.state}/${h.signals}`).join(', ')}`,
    ...(report.profile.threadCrasher ? [`thread crasher: ${crasherLine(report)}`] : []),
    `boot failures (restarted): ${report.bootFailures.join('; ') || 'none'}`,
    `peak RSS ${report.peakRssMb} MB, samples ${report.samples.length}, skipped ticks ${report.ticksSkipped}, rotations ${report.streamRotations}, violations ${report.violations.join('; ')}, problems ${report.problems.join('; ')}`,
  ].join('\n');
}
