// Fleet monitoring as files: the Prometheus alert rules and the Grafana dashboard parse, cover what an operator must be
// woken for, and name only metrics the worker exports (plus the two the platform adds).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { REPO_ROOT } from '../dev/localStack.ts';
import { EventLoopMonitor } from '../src/ops/EventLoopMonitor.ts';
import { WorkerMetrics } from '../src/ops/metrics.ts';

/** Series the platform adds, not the worker: Prometheus's own per-target `up`, and Fly's machine memory. */
const PLATFORM_METRICS = new Set(['up', 'fly_instance_memory_mem_total']);

/** PromQL's functions, aggregations and keywords that appear in our expressions. */
const PROMQL_WORDS = new Set([
  'sum', 'min', 'max', 'avg', 'count', 'rate', 'increase', 'irate', 'histogram_quantile', 'and', 'or', 'unless', 'bool',
  'time', 'abs', 'absent', 'absent_over_time', 'changes', 'delta', 'deriv', 'max_over_time', 'min_over_time', 'avg_over_time',
]);

/** Everything the worker's registry exports, histograms with their series suffixes. */
function exportedMetrics(): Set<string> {
  const eventLoop = new EventLoopMonitor();
  const metrics = new WorkerMetrics({
    eventLoop,
    sources: {
      stream: () => ({ messages: 1, malformed: 0, reconnects: 0, duplicates: 0, discarded: 0 }),
      rest: () => ({ weightUsed: 1, rateLimited: 0 }),
      sink: () => ({ signalsWritten: 1, signalsBuffered: 0, signalsDropped: 0, dbRetries: 0 }),
      worker: () => ({ state: 'ready' }),
    },
  });
  const names = new Set<string>();
  for (const metric of metrics.registry.getMetricsAsArray()) {
    const { name, type } = metric as unknown as { name: string; type: string };
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

/** The metric names a PromQL expression reads. */
function metricsIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/\b(?:group_left|group_right)\b/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b/gi, '');
  return (bare.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? []).filter((word) => !PROMQL_WORDS.has(word));
}

const alertRules = z.object({
  groups: z
    .array(
      z.object({
        name: z.string().min(1),
        rules: z
          .array(
            z.object({
              alert: z.string().regex(/^[A-Z][A-Za-z]+$/),
              expr: z.string().min(1),
              for: z.string().regex(/^\d+[smh]$/),
              labels: z.object({ severity: z.enum(['page', 'warn']) }),
              annotations: z.object({ summary: z.string().min(1), description: z.string().min(1) }),
            }),
          )
          .min(1),
      }),
    )
    .min(1),
});

/** deploy/alerts.yml is YAML in its JSON-compatible flow style with whole-line comments (see the file's header). */
function readAlerts(): z.infer<typeof alertRules> {
  const text = readFileSync(join(REPO_ROOT, 'deploy', 'alerts.yml'), 'utf8');
  const withoutComments = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n');
  return alertRules.parse(JSON.parse(withoutComments));
}

const dashboardSchema = z.object({
  title: z.string(),
  uid: z.string(),
  templating: z.object({ list: z.array(z.looseObject({ name: z.string(), definition: z.string().optional() })) }),
  panels: z
    .array(
      z.looseObject({
        title: z.string().min(1),
        type: z.string(),
        targets: z.array(z.object({ refId: z.string(), expr: z.string().min(1), legendFormat: z.string() })).min(1),
      }),
    )
    .min(8),
});

function readDashboard(): z.infer<typeof dashboardSchema> {
  return dashboardSchema.parse(JSON.parse(readFileSync(join(REPO_ROOT, 'deploy', 'grafana-dashboard.json'), 'utf8')));
}

describe('fleet monitoring files', () => {
  const exported = exportedMetrics();

  it('the alert rules parse and cover not-ready, stale, coverage, latency and memory', () => {
    const rules = readAlerts().groups.flatMap((group) => group.rules);
    const byName = new Map(rules.map((rule) => [rule.alert, rule]));
    expect(byName.size).toBe(rules.length);
    expect(byName.get('ScreenerWorkerNotReady')).toMatchObject({ for: '5m', expr: expect.stringContaining('screener_worker_state{state="ready"}') });
    expect(byName.get('ScreenerWorkerDown')?.expr).toContain('up{');
    expect(byName.get('ScreenerMarketDataStale')?.expr).toContain('screener_stream_messages_total');
    expect(byName.get('ScreenerLowCoverage')?.expr).toMatch(/screener_tick_coverage_ratio\) < 0\.95$/);
    expect(byName.get('ScreenerSignalLatencyOverSLO')?.expr).toMatch(/histogram_quantile\(0\.99, .*screener_close_to_commit_seconds_bucket.*\) > 1$/);
    expect(byName.get('ScreenerMemoryNearLimit')?.expr).toMatch(/screener_process_resident_memory_bytes.*fly_instance_memory_mem_total.*> 0\.8$/);
  });

  it('every metric the alert rules name is one the worker exports or the platform adds', () => {
    const named = readAlerts().groups.flatMap((group) => group.rules.flatMap((rule) => metricsIn(rule.expr)));
    expect(named.length).toBeGreaterThan(8);
    const unknown = named.filter((name) => !exported.has(name) && !PLATFORM_METRICS.has(name));
    expect(unknown).toEqual([]);
  });

  it('the dashboard parses and every metric its panels and variables name is one the worker exports or the platform adds', () => {
    const dashboard = readDashboard();
    const named = [
      ...dashboard.panels.flatMap((panel) => panel.targets.flatMap((target) => metricsIn(target.expr))),
      ...dashboard.templating.list.flatMap((variable) => [...(variable.definition ?? '').matchAll(/label_values\((\w+),/g)].map((match) => match[1]!)),
    ];
    expect(new Set(named).size).toBeGreaterThan(15);
    expect(named.filter((name) => !exported.has(name) && !PLATFORM_METRICS.has(name))).toEqual([]);
    expect(new Set(dashboard.panels.map((panel) => panel.id)).size).toBe(dashboard.panels.length);
  });

  it('the metric check itself catches a name the worker does not export', () => {
    const named = metricsIn('sum by (app) (rate(screener_signals_writen_total{app=~"screener-.*"}[5m])) > 0');
    expect(named).toEqual(['screener_signals_writen_total']);
    expect(exported.has('screener_signals_writen_total')).toBe(false);
    expect(exported.has('screener_signals_written_total')).toBe(true);
    expect(exported.has('screener_close_to_commit_seconds_bucket')).toBe(true);
  });
});
