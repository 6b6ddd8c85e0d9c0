// Regression guard for the benchmarks: `bench/run.ts --quick` must run every benchmark to real figures. Never a timing assertion.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { StoredResults } from '../bench/report.ts';
import { ROOT } from '../dev/workerProcess.ts';

const scratch = mkdtempSync(join(tmpdir(), 'bench-smoke-'));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Node 24 is this process's own binary (the `node` devDependency), which runs .ts files directly.
  const child = spawn(process.execPath, [join(ROOT, 'bench', 'run.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

describe('benchmarks in quick mode', () => {
  it('every benchmark runs and reports finite figures for each goal', async () => {
    const jsonPath = join(scratch, 'quick.json');
    const run = await runBench(['--quick', '--json', jsonPath]);
    expect(run.code, run.stderr.slice(-4000)).toBe(0);
    const results = JSON.parse(readFileSync(jsonPath, 'utf8')) as StoredResults;
    expect(Object.keys(results).sort()).toEqual(['boot', 'hostile', 'ingest', 'latency', 'memory', 'scaling', 'tick']);
    for (const [name, stored] of Object.entries(results)) {
      expect(stored.error, name).toBeNull();
      for (const figure of stored.result!.figures) {
        expect(Number.isFinite(figure.value), `${name}: ${figure.label}`).toBe(true);
        // Quick sizes say nothing about a goal: it is reported, never judged.
        if (figure.goal) expect(figure.goal.met, `${name}: ${figure.label}`).toBeNull();
      }
    }
    const goals = Object.values(results).flatMap((stored) => stored.result!.figures.filter((figure) => figure.goal).map((figure) => figure.label));
    expect(goals).toEqual(
      expect.arrayContaining([
        'through the socket (wall clock)',
        'one-thread sandboxed tick ÷ compute floor',
        'sandboxed tick, p99',
        'worker RSS after ticks',
        'spawn → ready',
        'close → commit, p99',
        'tick with ÷ without the hostile corpus',
      ]),
    );
    const positive = (name: string, label: string) => results[name]!.result!.figures.find((figure) => figure.label === label)!.value;
    expect(positive('ingest', 'through the socket (wall clock)')).toBeGreaterThan(0);
    expect(positive('memory', 'worker RSS after ticks')).toBeGreaterThan(0);
    expect(positive('latency', 'signals measured')).toBeGreaterThanOrEqual(3);
    expect(results.scaling!.result!.tables.map((table) => table.rows.length)).toEqual([2, 2, 1]);
    // The table reaches the terminal too.
    expect(run.stdout).toMatch(/benchmark\s+figure\s+value/);
  }, 300_000);

  it('refuses an unknown benchmark by name, listing the valid ones', async () => {
    const run = await runBench(['--quick', 'nonsense']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/unknown benchmark "nonsense"; choose from ingest, tick, hostile, scaling, latency, memory, boot/);
  });
});
