// How a replay report is printed: a table for people, CSV or one JSON array for tools.
import type { CandleVerdicts, ReplayReport, ReplaySignal } from './ReplayEngine.ts';

export function signalsJson(signals: readonly ReplaySignal[]): string {
  return JSON.stringify(signals);
}

const CSV_COLUMNS = ['trader_id', 'symbol', 'interval', 'candle_open_time', 'price', 'conditions'] as const;

/** RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled. Conditions are joined by "; ". */
export function signalsCsv(signals: readonly ReplaySignal[]): string {
  const field = (value: string) => (/[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);
  const lines = [CSV_COLUMNS.join(',')];
  for (const signal of signals) {
    lines.push(
      [signal.trader_id, signal.symbol, signal.interval, signal.candle_open_time, String(signal.price), signal.conditions.join('; ')].map(field).join(','),
    );
  }
  return lines.join('\n');
}

function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]) => cells.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

export function signalsTable(signals: readonly ReplaySignal[]): string {
  if (signals.length === 0) return 'no signals';
  return table(
    ['candle_open_time', 'symbol', 'interval', 'price', 'conditions'],
    signals.map((signal) => [signal.candle_open_time, signal.symbol, signal.interval, String(signal.price), signal.conditions.join('; ')]),
  );
}

export function verdictsTable(candles: readonly CandleVerdicts[]): string {
  if (candles.length === 0) return 'no closed candle in the range';
  return table(
    ['candle_open_time', 'evaluated', 'matched', 'signals', 'errors', 'skipped'],
    candles.map((candle) => [candle.candle_open_time, ...[candle.evaluated, candle.matched, candle.signals, candle.errors, candle.skipped].map(String)]),
  );
}

/** Totals, the first errors and a disable: what a person reads before the tables. */
export function summary(report: ReplayReport): string {
  const sum = (pick: (candle: CandleVerdicts) => number) => report.candles.reduce((total, candle) => total + pick(candle), 0);
  const lines = [
    `${report.candles.length} candles: ${sum((c) => c.evaluated)} evaluations, ${sum((c) => c.matched)} matches, ${report.signals.length} signals, ` +
      `${sum((c) => c.errors)} errors, ${sum((c) => c.skipped)} skipped (a timeframe incomplete)`,
  ];
  for (const error of report.errors) lines.push(`error at ${error.candle_open_time} on ${error.symbol ?? 'every symbol'}: ${error.message}`);
  if (report.disabled !== null) lines.push(`disabled at ${report.disabled.candle_open_time}: ${report.disabled.reason} (the live worker would have stopped it here too)`);
  return lines.join('\n');
}
