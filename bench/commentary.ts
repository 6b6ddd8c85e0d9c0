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
      'All three sides evaluate the same filters over the same MarketStore and must return the same matches. The sandboxed side is the deployed shape: one screening thread (a shared-cpu-1x machine has one vCPU), each trader in its own isolate, series read in place from shared memory, helper results memoized across the thread\'s traders, results checked on the way back. The compute floor is what the indicator arithmetic alone costs: each filter written by hand over Float64Array columns (bench/support/floor.ts), computing only what its verdict needs, nothing shared between traders; the sandboxed side can beat it only by sharing helper results across traders. The unsandboxed side is the old service\'s `new Function` over kline arrays, kept as a reference. ' +
      'Before issue #14 this benchmark ran the Screener on two threads against unsandboxed in one: 214 ms (168–277) against 181 ms (159–230), ratio 1.20 (0.75–1.71), p99 271 ms (2026-12-01, `npm run bench -- ingest tick hostile latency boot`, under load).',
    whenMissed:
      '**Goal missed.** Bound: traders × symbols evaluations on one thread, each paying a call into its isolate, the inputs it builds there (ticker, kline arrays), a call back to the host per helper and the copy of its result, and the host\'s helper arithmetic on kline arrays; the floor pays only the arithmetic. p99 is dominated by ticks where other processes hold the core (see the spread and the load average).',
  },
  hostile: {
    always:
      'The corpus traders the sandbox makes harmless keep running, and some are expensive filters by construction (a 1 MB condition, 10,000 conditions, 500 conditions of 5,000 characters built on every evaluation): each costs its own thread up to the per-trader tick budget (FILTER_TICK_BUDGET_MS, 500 ms) before it fails and, five ticks later, is disabled. The table names the costliest; the standard traders\' own evaluation time (with ÷ without) is the cost to the neighbours themselves.',
    whenMissed:
      '**Goal missed.** Bound: the corpus traders still running add their evaluation time to their thread\'s share of the tick (see the table); the contained ones are disabled during the warm-up. Levers: a lower per-trader tick budget, or judging the budget per tick against the thread\'s other traders, so that an expensive but harmless trader is cut (and disabled) sooner.',
  },
  memory: {
    always:
      'RSS counts every thread of the process. The breakdown is measured apart (a fresh process holding the same MarketStore and Screener) because RSS cannot be split by owner inside the worker; what remains of the worker\'s RSS beyond it is the main thread\'s heap (grown by the backfill and kept by V8), supabase-js, ws, pino and prom-client. ' +
      'Issue #14 measures the deployed shape: one screening thread (SCREENER_THREADS=1; a shared-cpu-1x machine has one vCPU) with the image\'s runtime settings. Before it, this benchmark ran two threads and measured 417 MB (412–418) after ticks, breakdown Node 85 MB, store 39 MB, Screener 180 MB (2026-11-26, `npm run bench`); one thread then measured 290–300 MB for the store and Screener alone (the issue). ' +
      'Lever landed (src/screening/pool.ts): the image\'s `--max-semi-space-size=8` is meant for the main thread, but V8 applies that flag to every heap created after it, so the screening thread and each trader\'s isolate grew 8 MB semi-spaces instead of their own limits (isolated-vm gives an isolate of this size ~0.5 MB); clearing the flag before a thread starts saved 12–15 MB at 20 traders (store + Screener in one process, 200 symbols × 4 × 500, two runs each: 274/279 → 263/265 MB after ticks, peak during ticks 276/282 → 264/266 MB), tick CPU unchanged. ' +
      'Lever landed (src/heap.ts, called by MarketData once the boot backfill is done): one low-memory collection of the main thread\'s heap, which V8 had grown for the 800 parsed REST responses and kept. Same run, interleaved, two workers each: RSS at ready 301–308 → 209–215 MB, after ticks 378–384 → 308–339 MB, main heap reserved 92–118 → 57–78 MB. This benchmark, the same day: 373 MB (368–375) after ticks before it, 323 MB (315–330) with it; on Node\'s defaults 493 → 349 MB. ' +
      'Measured and not landed (worker A/B, one run each, noise ±5 MB between two runs of the same settings): MALLOC_MMAP_THRESHOLD_=65536 with MALLOC_TRIM_THRESHOLD_=131072 345 MB and --max-semi-space-size=2 349 MB, against 351–356 MB with the image\'s settings.',
    whenMissed:
      '**Goal missed.** Where the memory goes, measured with /proc/<pid>/smaps by stage (store + Screener, 20 traders, 200 symbols, one thread): after ticks ~140 MB are V8 heap pages (256 KB–1 MB anonymous mappings: 20 isolates at 3.3–3.6 MB committed each against 0.7–1.7 MB in use, the thread\'s heap 28–35 MB committed, the main heap) and ~80 MB the main malloc heap (the store\'s 38 MB of rows and malloc\'d V8 internals). malloc_trim(0) called into the process (gdb) returned only 9–10 MB, so glibc retention is not the bound. Each trader costs ~6 MB (scaling): its isolate\'s committed heap (a fresh one is 2 MB committed, 1.4 MB resident) plus malloc. ' +
      'Levers measured and not landed: a snapshot of the helper library (ivm.Isolate.createSnapshot) built isolates of the same size (1.35 against 1.37–1.43 MB RSS each, 40 isolates) and no faster (20–31 against 21–28 ms); recycling every isolate after every tick, or a thread heap cap of 32/4 or 16/2 MB, moved RSS by less than the noise; V8\'s low-memory collection of every isolate after each tick (`gc` exposed to the thread, captured before any filter runs) took isolates from 3.5 to 0.85 MB committed and RSS from 298 to 250 MB at the peak during ticks and from 289–310 to 206–225 MB after them, but doubled the tick\'s CPU (≈350 → ≈700 ms at 20 traders × 200 symbols; the collection itself ~90 ms, the rest the next tick re-growing and re-warming each heap), also with bytecode flushing and the memory reducer off. ' +
      'Levers left: fewer isolates (several traders per isolate needs a per-trader memory limit V8 does not offer), less garbage per evaluation inside isolates (decoded helper series, built candles), the main-thread heap that regrows after the post-backfill collection (40–60 MB in use after ticks against 15 MB in the child; streamed parsing of stream and REST messages would allocate less), and shorter KLINE_HISTORY or fewer intervals where filters read less.',
  },
  boot: {
    always:
      'Boot is bounded by the backfill: 800 klines requests (200 symbols × 4 intervals) at 8 in flight (the REST client\'s default) with 50 ms added per response, within the weight budget the REST client keeps under 6,000/min. Issue #14 sets the target at < 5 s (goal < 3 s); before it the goal was < 15 s.',
    whenMissed:
      '**Goal missed.** Bound: requests ÷ concurrency × latency, plus parsing. Levers: more requests in flight (the weight budget, not the count, is Binance\'s limit), or becoming ready on the intervals that tick first while slower ones backfill.',
  },
  latency: {
    always:
      'A signal\'s latency is its closing kline\'s arrival on the socket → the tick that waits for every symbol\'s close → the screening of all traders over all symbols → one batched insert through PostgREST. So it is roughly the tick duration plus one round trip, the same for every signal of a tick. Issue #14 sets the target at p99 < 250 ms in the deployed shape (goal < 150 ms); before it the goal was < 500 ms.',
    whenMissed:
      '**Goal missed.** Bound: the tick duration (the tick figure above, under the same load) dominates; the insert adds tens of ms and the close arrival lag a few. Levers: whatever makes ticks faster (see tick), writing each trader\'s signals as soon as that trader is done instead of after the whole tick, and running the worker on a machine with dedicated cores.',
  },
  scaling: {
    always:
      'One screening thread, as deployed: tick time grows roughly linearly with traders × symbols; small sizes pay fixed costs (messages to the thread, per-tick setup). Memory grows with traders (one isolate each, ~6 MB per trader) far more than with symbols (the store holds 4 × 500 × 89 bytes ≈ 0.17 MB per symbol; ~0.4 MB per symbol in all at 20 traders). ' +
      'Before issue #14 this table ran two threads and up to 50 traders: vs symbols (20 traders) 50/100/200/400 → RSS 259/284/331/417 MB, tick 45/79/152/312 ms; vs traders (200 symbols) 5/20/50 → RSS 243/331/527 MB, tick 62/152/319 ms (2026-11-26, a quiet machine; tick times here are one thread and move with the machine\'s load).',
    whenMissed: '**Goal missed.** The per-trader cost is the trader\'s isolate: see the memory section for what was measured, which levers moved it and which did not.',
  },
};
