// `npm run bench [-- <name>…] [--quick] [--json <file>] [--render]`: runs the benchmarks, prints a table, and in full
// mode updates BENCHMARKS.md; `--render` only rewrites BENCHMARKS.md from the stored results and the chaos suite's.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import type { Benchmark, BenchmarkResult, BenchMode } from './benchmark.ts';
import { boot } from './boot.ts';
import { COMMENTARY } from './commentary.ts';
import { hostile } from './hostile.ts';
import { ingest } from './ingest.ts';
import { latency } from './latency.ts';
import { memory } from './memory.ts';
import { loadResults, machine, renderMarkdown, saveResults, type StoredResult, terminalTable } from './report.ts';
import { scaling } from './scaling.ts';
import { BenchEnvironment } from './support/environment.ts';
import { tick } from './tick.ts';

const ROOT = resolve(import.meta.dirname, '..');
const RESULTS_PATH = join(ROOT, 'bench', 'results.json');
const MARKDOWN_PATH = join(ROOT, 'BENCHMARKS.md');
const CHAOS_RESULTS_PATH = join(ROOT, 'test', 'chaos', 'RESULTS.md');

function writeMarkdown(results: ReturnType<typeof loadResults>): void {
  const chaos = existsSync(CHAOS_RESULTS_PATH) ? readFileSync(CHAOS_RESULTS_PATH, 'utf8') : undefined;
  writeFileSync(MARKDOWN_PATH, renderMarkdown(results, COMMENTARY, chaos));
  process.stderr.write(`[bench] wrote ${MARKDOWN_PATH}\n`);
}

/**
 * Run order: in-process benchmarks first; latency, then memory, observe one shared worker (memory
 * stops it before its own second worker starts); boot last, with no other worker competing for the cores.
 */
const BENCHMARKS: Benchmark[] = [ingest, tick, hostile, scaling, latency, memory, boot];

interface Arguments {
  mode: BenchMode;
  names: string[];
  jsonPath: string | null;
  renderOnly: boolean;
}

function parseArguments(argv: string[]): Arguments {
  const known = BENCHMARKS.map((benchmark) => benchmark.name);
  const parsed: Arguments = { mode: 'full', names: [], jsonPath: null, renderOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') parsed.mode = 'quick';
    else if (arg === '--render') parsed.renderOnly = true;
    else if (arg === '--json') {
      const path = argv[++i];
      if (path === undefined) throw new UsageError('--json needs a file path');
      parsed.jsonPath = resolve(path);
    } else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
    else if (known.includes(arg)) parsed.names.push(arg);
    else throw new UsageError(`unknown benchmark "${arg}"; choose from ${known.join(', ')}`);
  }
  return parsed;
}

class UsageError extends Error {}

/** A benchmark that returns no figure, or a NaN, is broken however fast it ran. */
function checkResult(result: BenchmarkResult): void {
  if (result.figures.length === 0 && result.tables.length === 0) throw new Error(`${result.name} produced no figures`);
  for (const figure of result.figures) {
    if (!Number.isFinite(figure.value)) throw new Error(`${result.name}: "${figure.label}" is ${figure.value}`);
    if (figure.spread && !(Number.isFinite(figure.spread.low) && Number.isFinite(figure.spread.high))) throw new Error(`${result.name}: "${figure.label}" has a non-finite spread`);
  }
  for (const table of result.tables) {
    if (table.rows.length === 0) throw new Error(`${result.name}: table "${table.title}" is empty`);
    for (const row of table.rows) if (row.some((value) => value === '' || /NaN|Infinity/.test(String(value)))) throw new Error(`${result.name}: table "${table.title}" has a bad row ${row.join(' | ')}`);
  }
}

async function main(argv: string[]): Promise<number> {
  let args: Arguments;
  try {
    args = parseArguments(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`bench: ${error.message}\nusage: npm run bench [-- <name>…] [--quick] [--json <file>] [--render]\n`);
    return 2;
  }
  if (args.renderOnly) {
    writeMarkdown(loadResults(RESULTS_PATH));
    return 0;
  }
  const selected = BENCHMARKS.filter((benchmark) => args.names.length === 0 || args.names.includes(benchmark.name));
  const command = `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`;
  const environment = new BenchEnvironment(args.mode);
  const progress = (message: string) => process.stderr.write(`[bench] ${message}\n`);
  const outcomes: Array<{ name: string; stored: StoredResult }> = [];
  try {
    for (const benchmark of selected) {
      if (benchmark.name === 'boot') await environment.releaseStandardWorker();
      const loadBefore = loadavg()[0]!;
      const started = performance.now();
      let result: BenchmarkResult | null = null;
      let error: string | null = null;
      try {
        result = await benchmark.run({ mode: args.mode, environment, progress });
        checkResult(result);
      } catch (caught) {
        result = null;
        error = caught instanceof Error ? (caught.stack ?? caught.message) : String(caught);
        progress(`${benchmark.name} FAILED: ${error}`);
      }
      const stored: StoredResult = {
        result,
        error,
        measuredAt: new Date().toISOString(),
        durationS: (performance.now() - started) / 1000,
        command,
        machine: machine(loadBefore),
      };
      progress(`${benchmark.name} done in ${stored.durationS.toFixed(1)} s`);
      outcomes.push({ name: benchmark.name, stored });
    }
  } finally {
    await environment.close();
  }
  process.stdout.write(`${terminalTable(outcomes.map(({ name, stored }) => ({ name, result: stored.result, error: stored.error })))}\n`);
  if (args.jsonPath) writeFileSync(args.jsonPath, JSON.stringify(Object.fromEntries(outcomes.map(({ name, stored }) => [name, stored])), null, 2));
  if (args.mode === 'full') {
    const results = loadResults(RESULTS_PATH);
    for (const { name, stored } of outcomes) results[name] = stored;
    saveResults(RESULTS_PATH, results);
    writeMarkdown(results);
  }
  return outcomes.some(({ stored }) => stored.result === null) ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
