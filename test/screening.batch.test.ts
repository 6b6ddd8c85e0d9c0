// A trader's symbols are evaluated in batches (one call into its isolate for several symbols): the answers and the limits are those of one call per symbol.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateUnsandboxed } from '../bench/support/reference.ts';
import type { ScreenerRun, TraderTickOutcome } from '../src/ports.ts';
import { MAX_BATCH_SYMBOLS } from '../src/screening/sandbox.ts';
import type { Screener } from '../src/screening/Screener.ts';
import type { Trader } from '../src/domain.ts';
import { makeTrader, screenTick, startTestScreener, TestMarket } from './screening.support.ts';

// More symbols than one batch holds, so a tick spans several batches and a partial last one.
const SYMBOLS = Array.from({ length: MAX_BATCH_SYMBOLS * 2 + 5 }, (_, i) => `S${String(i).padStart(3, '0')}USDT`);
const market = TestMarket.build({ symbols: SYMBOLS, intervals: ['1m', '5m'], candles: 200, lastCloseTime: Date.UTC(2026, 0, 10) - 1 });

let screener: Screener;

beforeAll(async () => {
  screener = await startTestScreener({ filterTimeoutMs: 50 });
});

afterAll(async () => {
  await screener.stop();
});

async function run(...traders: Trader[]): Promise<{ results: TraderTickOutcome[]; tick: ScreenerRun }> {
  const { outcomes, tick } = await screenTick(screener, traders, SYMBOLS, market);
  return { results: outcomes, tick };
}

describe('batched evaluation', () => {
  it('gives every symbol of every batch the verdict, conditions and warnings of one evaluation per symbol', async () => {
    const traders = [
      makeTrader(`const rsi = helpers.getLatestRSI(timeframes['1m'], 14); return { match: rsi < 50, conditions: [ticker.s + ' ' + rsi.toFixed(6)] };`, { requiredTimeframes: ['5m'] }),
      makeTrader(`const k = timeframes['5m']; return parseFloat(k[k.length - 1][4]) > parseFloat(k[k.length - 2][4]);`, { requiredTimeframes: ['5m'] }),
      makeTrader(`if (ticker.s.endsWith('7USDT')) throw new Error('no ' + ticker.s); return 'loose';`),
    ];
    const { results, tick } = await run(...traders);
    const reference = evaluateUnsandboxed(traders, tick);
    for (const [i, result] of results.entries()) {
      expect(result.matches.map(({ symbol, conditions }) => ({ symbol, conditions }))).toEqual(reference[i]!.matches.map(({ symbol, conditions }) => ({ symbol, conditions })));
      expect(result.errors).toEqual(reference[i]!.errors);
      expect(result.warnings).toEqual(reference[i]!.warnings);
      expect(result.evaluatedSymbols).toEqual(reference[i]!.evaluatedSymbols);
    }
    expect(results[2]!.errors.map((e) => e.symbol)).toEqual(SYMBOLS.filter((s) => s.endsWith('7USDT')));
  });

  it('a runaway on one symbol inside a batch fails that symbol alone: the symbols before it keep their verdicts, as when evaluated one by one', async () => {
    const guilty = SYMBOLS[MAX_BATCH_SYMBOLS + 3]!;
    const looper = makeTrader(`if (ticker.s === '${guilty}') while (true) {} return { match: true, conditions: [ticker.s] };`);
    const { results } = await run(looper);
    const result = results[0]!;
    const before = SYMBOLS.slice(0, SYMBOLS.indexOf(guilty));
    expect(result.matches.map((m) => m.symbol)).toEqual(before);
    expect(result.errors.map((e) => [e.symbol, e.code])).toEqual(
      expect.arrayContaining([
        [guilty, 'TRADER_TIMEOUT'],
        [null, 'TRADER_TIMEOUT'],
      ]),
    );
    expect(result.errors).toHaveLength(2);
    expect(result.errors.find((e) => e.symbol === null)!.message).toMatch(new RegExp(`${SYMBOLS.length - before.length - 1} symbols not evaluated`));
    // The batch is cut at twice the CPU limit, then the symbol alone at its usual wall backstop.
    expect(result.evaluationMs).toBeLessThan(1500);
  });

  it('heavy but honest symbols that together pass one evaluation\'s limit in a batch are run again alone and pass', async () => {
    // Each heavy symbol spins 30 ms (under the 50 ms limit); three of them share the first batch.
    const heavy = new Set([SYMBOLS[1], SYMBOLS[2], SYMBOLS[3]]);
    const spinner = makeTrader(`if (${JSON.stringify([...heavy])}.includes(ticker.s)) { const until = Date.now() + 30; while (Date.now() < until) {} } return { match: true, conditions: [ticker.s] };`);
    const { results } = await run(spinner);
    expect(results[0]!.errors).toEqual([]);
    expect(results[0]!.matches.map((m) => m.symbol)).toEqual(SYMBOLS);
  });
});
