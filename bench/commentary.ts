// Hand-written commentary for BENCHMARKS.md: what bounds each figure and what would move it. Figures themselves are generated.
// `whenMissed` is printed only while one of the benchmark's goals is not met, so a later run that meets it drops the note.

export interface Commentary {
  always?: string;
  whenMissed?: string;
}

export const COMMENTARY: Record<string, Commentary> = {
  ingest: {
    always:
      'The socket figure is wall-clock throughput of one connection; on a machine shared with other work it moves with the load, while the per-CPU-second figure (parse + store per second of the process\'s own CPU) is the capacity of one core and barely moves. Binance\'s whole USDT universe sends about 2,000 messages/s.',
    whenMissed:
      '**Goal missed.** Bound: one main thread does JSON.parse of each frame (≈400 bytes), the field checks in `src/market/parse.ts`, an event emit and a MarketStore update. If the per-CPU-second figure is above the goal, the shortfall is other processes taking the core, not the code. Otherwise the levers are: skip the forming-candle copy in `MarketStore.applyCandle` for non-closing updates, parse only the kline fields used, or split connections across a worker thread.',
  },
  tick: {
    always:
      'Both sides evaluate exactly the same filters over the same MarketStore and must return the same matches. The sandboxed side pays for isolation (each trader in its own isolate, series handed across the thread boundary, results checked on the way back) and gains the cores: with one thread per core it can at best divide the time by the core count, so on a 2-core machine the ratio sits near 0.5 when isolation costs nothing and near 1.0 when it costs as much as a whole core.',
    whenMissed:
      '**Goal missed.** Bound: evaluations per core (traders × symbols ÷ threads, about 2,000 per thread here) times the cost of one evaluation inside an isolate (a call across the isolate boundary, helper work on 500-candle series), plus shipping the new candles to the threads. p99 is dominated by ticks where other processes hold a core (see the spread and the load average). Levers: more sharing of helper results across traders (most traders use RSI(14), EMA(9/21)… with the same parameters), fewer crossings of the isolate boundary per evaluation (one call per trader for all its symbols), and shipping only the new candle to the threads each tick. The scaling table shows where the time goes as traders and symbols grow.',
  },
  hostile: {
    always:
      'The corpus traders the sandbox makes harmless keep running, and some are expensive filters by construction (a 1 MB condition, 10,000 conditions, 500 conditions of 5,000 characters built on every evaluation): each costs its own thread up to the per-trader tick budget (FILTER_TICK_BUDGET_MS, 500 ms) before it fails and, five ticks later, is disabled. The table names the costliest; the standard traders\' own evaluation time (with ÷ without) is the cost to the neighbours themselves.',
    whenMissed:
      '**Goal missed.** Bound: the corpus traders still running add their evaluation time to their thread\'s share of the tick (see the table); the contained ones are disabled during the warm-up. Levers: a lower per-trader tick budget, or judging the budget per tick against the thread\'s other traders, so that an expensive but harmless trader is cut (and disabled) sooner.',
  },
  memory: {
    always:
      'RSS counts every thread of the process. The breakdown is measured apart (a fresh process holding the same MarketStore and Screener) because RSS cannot be split by owner inside the worker; what remains of the worker\'s RSS beyond it is the main thread\'s heap (grown by the backfill and kept by V8), supabase-js, ws, pino and prom-client.',
    whenMissed:
      '**Goal missed.** Bounds, from the breakdown: Node and its modules before any data; one isolate per trader with the helper library compiled into it, plus each screener thread\'s own V8 heap; and the main thread\'s V8 heap, whose reserve (heapTotal) V8 grows while the backfill parses 800 REST responses and keeps. The MarketStore itself is small. Levers: the figure "same worker on Node\'s defaults" is measured beside it in the same run and shows what the image\'s runtime settings (a capped young generation, fewer malloc arenas) already save; then fewer isolates (several traders\' contexts per isolate), fewer backfill requests in flight, and shorter KLINE_HISTORY or fewer intervals where filters read less. The per-tick growth in the detail shows whether RSS is still settling; a longer soak would tell settling from a leak.',
  },
  boot: {
    always:
      'Boot is bounded by the backfill: 800 klines requests (200 symbols × 4 intervals) at 8 in flight (the REST client\'s default) with 50 ms added per response, within the weight budget the REST client keeps under 6,000/min.',
    whenMissed:
      '**Goal missed.** Bound: requests ÷ concurrency × latency, plus parsing. Levers: more requests in flight (the weight budget, not the count, is Binance\'s limit), or becoming ready on the intervals that tick first while slower ones backfill.',
  },
  latency: {
    always:
      'A signal\'s latency is its closing kline\'s arrival on the socket → the tick that waits for every symbol\'s close → the screening of all traders over all symbols → one batched insert through PostgREST. So it is roughly the tick duration plus one round trip, the same for every signal of a tick.',
    whenMissed:
      '**Goal missed.** Bound: the tick duration (the tick figure above, under the same load) dominates; the insert adds tens of ms and the close arrival lag a few. Levers: whatever makes ticks faster (see tick), writing each trader\'s signals as soon as that trader is done instead of after the whole tick, and running the worker on a machine with dedicated cores.',
  },
  scaling: {
    always:
      'Tick time grows roughly linearly with traders × symbols once both threads are busy; small sizes pay fixed costs (messages to threads, per-tick setup). Memory grows with traders (one isolate each) far more than with symbols (the store holds 4 × 500 × 89 bytes ≈ 0.17 MB per symbol at 4 intervals × 500 candles).',
  },
};
