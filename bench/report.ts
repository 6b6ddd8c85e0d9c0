// Presentation: the terminal table, the stored results (bench/results.json) and BENCHMARKS.md rendered from them.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import type { BenchmarkResult, Figure } from './benchmark.ts';
import type { Commentary } from './commentary.ts';

export interface Machine {
  cores: number;
  memoryGb: number;
  node: string;
  cpu: string;
  /** 1-minute load average before and after: how busy the machine was while measuring. */
  loadBefore: number;
  loadAfter: number;
}

export interface StoredResult {
  result: BenchmarkResult | null;
  error: string | null;
  measuredAt: string;
  durationS: number;
  command: string;
  machine: Machine;
}

export type StoredResults = Record<string, StoredResult>;

export function machine(loadBefore: number): Machine {
  return {
    cores: cpus().length,
    memoryGb: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    loadBefore,
    loadAfter: loadavg()[0]!,
  };
}

export function formatNumber(value: number): string {
  const magnitude = Math.abs(value);
  const digits = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : 2;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function goalText(figure: Figure): string {
  if (!figure.goal) return '';
  const verdict = figure.goal.met === null ? 'not judged (quick)' : figure.goal.met ? 'met' : 'NOT met';
  return `${figure.goal.text}: ${verdict}`;
}

function spreadText(figure: Figure): string {
  return figure.spread ? `${formatNumber(figure.spread.low)}–${formatNumber(figure.spread.high)} (${figure.spread.kind})` : '';
}

/** Plain-text tables for the terminal: every figure, then each benchmark's own tables. */
export function terminalTable(results: ReadonlyArray<{ name: string; result: BenchmarkResult | null; error: string | null }>): string {
  const rows: string[][] = [['benchmark', 'figure', 'value', 'spread', 'goal']];
  const extra: string[][][] = [];
  for (const { name, result, error } of results) {
    if (!result) {
      rows.push([name, 'FAILED', (error ?? '').split('\n')[0]!.slice(0, 120), '', '']);
      continue;
    }
    for (const figure of result.figures) rows.push([name, figure.label, `${formatNumber(figure.value)} ${figure.unit}`, spreadText(figure), goalText(figure)]);
    for (const table of result.tables) extra.push([[`${name}: ${table.title}`], table.columns, ...table.rows.map((row) => row.map(String))]);
  }
  return [rows, ...extra].map(align).join('\n\n');
}

function align(rows: string[][]): string {
  const columns = Math.max(...rows.map((row) => row.length));
  const widths = Array.from({ length: columns }, (_, column) => Math.max(...rows.filter((row) => row.length > 1).map((row) => row[column]?.length ?? 0)));
  return rows.map((row) => (row.length === 1 ? row[0]! : row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd())).join('\n');
}

export function loadResults(path: string): StoredResults {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as StoredResults) : {};
}

export function saveResults(path: string, results: StoredResults): void {
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
}

const ORDER = ['ingest', 'tick', 'memory', 'boot', 'latency', 'scaling'];

/** The five headline figures, one line each: the figure the issue sets a goal for. */
const HEADLINES: Array<{ name: string; label: string; what: string }> = [
  { name: 'ingest', label: 'through the socket (wall clock)', what: '1. Ingest, messages/s on one core' },
  { name: 'tick', label: 'one-thread sandboxed tick ÷ compute floor', what: '2. Tick, one-thread sandboxed ÷ compute floor' },
  { name: 'tick', label: 'sandboxed tick, p99', what: '2. Tick, sandboxed p99' },
  { name: 'memory', label: 'worker RSS after ticks', what: '3. Memory, worker RSS' },
  { name: 'scaling', label: 'RSS per additional trader', what: '3. Memory, RSS per additional trader' },
  { name: 'scaling', label: 'peak RSS during ticks, 100 traders', what: '3. Memory, peak RSS with 100 traders' },
  { name: 'scaling', label: 'peak RSS during ticks, 100 traders, 512 MB machine budget', what: '3. Memory, peak RSS with 100 traders, 512 MB machine budget (MEMORY_BUDGET_MB=384)' },
  { name: 'boot', label: 'spawn → ready', what: '4. Boot, time to ready' },
  { name: 'boot', label: 'REST weight, highest minute seen by the simulator', what: '4. Boot, REST weight per minute' },
  { name: 'latency', label: 'close → commit, p50', what: '5. Latency, close → commit p50' },
  { name: 'latency', label: 'close → commit, p99', what: '5. Latency, close → commit p99' },
];

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

function machineLine(stored: StoredResult): string {
  const m = stored.machine;
  const loaded = Math.max(m.loadBefore, m.loadAfter) > m.cores ? ': **measured under load** (more runnable work than cores; expect faster, tighter figures on a quiet machine)' : '';
  return `${m.cores} cores (${m.cpu}), ${m.memoryGb} GB, Node ${m.node}; load average ${m.loadBefore.toFixed(1)} before, ${m.loadAfter.toFixed(1)} after${loaded}`;
}

/** BENCHMARKS.md from the stored results; `commentary` holds the hand-written notes on bounds and levers. */
export function renderMarkdown(results: StoredResults, commentary: Record<string, Commentary>, chaosResults?: string): string {
  const out: string[] = [];
  out.push('# Benchmarks', '');
  out.push('Generated by `npm run bench` from `bench/results.json`; do not edit the figures by hand (the commentary lives in `bench/commentary.ts`).');
  out.push('Each figure is a median of repetitions after warm-up, or a percentile of a distribution, with its spread; every ratio is taken from runs side by side in the same process and run.');
  out.push('These machines are shared and noisy: each section records the load average before and after it ran, and says so when it was measured under load.');
  out.push('');
  out.push('- All: `npm run bench` (3–5 minutes). One: `npm run bench -- <name>` with a name from `ingest tick memory boot latency scaling`; a run of some benchmarks rewrites only their sections.');
  out.push('- Smoke: `npm run bench -- --quick` (seconds, tiny sizes, goals not judged); `npm test` runs it through `test/bench.smoke.test.ts` and fails only on a broken benchmark, never a slow one.');
  out.push('');
  out.push('## Summary', '');
  out.push('| figure | value | spread | goal | met |', '| --- | --- | --- | --- | --- |');
  for (const headline of HEADLINES) {
    const stored = results[headline.name];
    const figure = stored?.result?.figures.find((f) => f.label === headline.label);
    if (!figure) {
      out.push(`| ${headline.what} | ${stored?.error ? 'failed' : 'not measured'} | | | |`);
      continue;
    }
    const met = figure.goal ? (figure.goal.met === null ? 'not judged' : figure.goal.met ? 'yes' : '**no**') : '';
    out.push(`| ${headline.what} | ${formatNumber(figure.value)} ${cell(figure.unit)} | ${cell(spreadText(figure))} | ${cell(figure.goal?.text ?? '')} | ${met} |`);
  }
  out.push('');
  const machines = new Set(Object.values(results).map((stored) => `${stored.machine.cores}|${stored.machine.cpu}|${stored.machine.node}`));
  if (machines.size > 1) out.push('Note: the sections below were measured on different machines or Node versions; see each section.', '');
  for (const name of ORDER) {
    const stored = results[name];
    if (!stored) continue;
    out.push(`## ${stored.result?.title ?? name}`, '');
    out.push(`Measured ${stored.measuredAt} in ${stored.durationS.toFixed(0)} s with \`${stored.command}\` on ${machineLine(stored)}.`, '');
    if (!stored.result) {
      out.push('**This benchmark failed:**', '', '```', (stored.error ?? '').slice(0, 2000), '```', '');
      continue;
    }
    if (stored.result.figures.length > 0) {
      out.push('| figure | value | spread | goal | detail |', '| --- | --- | --- | --- | --- |');
      for (const figure of stored.result.figures) {
        out.push(`| ${cell(figure.label)} | ${formatNumber(figure.value)} ${cell(figure.unit)} | ${cell(spreadText(figure))} | ${cell(goalText(figure))} | ${cell(figure.detail ?? '')} |`);
      }
      out.push('');
    }
    for (const table of stored.result.tables) {
      out.push(`**${table.title}**`, '');
      out.push(`| ${table.columns.map(cell).join(' | ')} |`, `| ${table.columns.map(() => '---').join(' | ')} |`);
      for (const row of table.rows) out.push(`| ${row.map((value) => cell(String(value))).join(' | ')} |`);
      out.push('');
    }
    for (const note of stored.result.notes) out.push(`- ${note}`);
    const missed = stored.result.figures.some((figure) => figure.goal?.met === false);
    const comment = commentary[name];
    if (comment?.always) out.push('', comment.always);
    if (missed && comment?.whenMissed) out.push('', comment.whenMissed);
    out.push('');
  }
  if (chaosResults !== undefined) {
    // The chaos suite writes its own figures (test/chaos/RESULTS.md); shown here one heading level down.
    out.push('## Reliability: chaos and soak (`npm run chaos`)', '');
    out.push('Copied from `test/chaos/RESULTS.md`, which the chaos suite writes on each run.', '');
    out.push(chaosResults.replace(/^# .*\n+/, '').replace(/^(#+) /gm, '#$1 ').trimEnd(), '');
  }
  return out.join('\n');
}
