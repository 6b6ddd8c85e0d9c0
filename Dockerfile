# syntax=docker/dockerfile:1
# The screener worker: one machine per Elite user (USER_ID and SUPABASE_KEY are set per machine, never baked in).

# ---- build: full dependency tree, TypeScript → dist/ ----
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm 11 runs install scripts only for packages approved under package.json "allowScripts" (isolated-vm among them).
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies and the built worker only ----
FROM node:24-slim AS runtime
ENV NODE_ENV=production
# Memory (machine: 512 MB). The boot backfill (800 REST responses) allocates fast enough that V8
# grows the main thread's young generation to its 64 MB semi-spaces and keeps them committed; 8 MB
# semi-spaces hold it near 16 MB at no measured cost to tick time, ingest rate or backfill time.
# glibc gives every thread its own malloc arena (up to 8 per core) that it never shrinks; 2 arenas
# serve the screening threads as well. Real worker, 200 symbols x 4 intervals x 500 candles, 20
# traders, 2 threads: RSS 486 -> 429 MB (semi-space) -> 398 MB (both); 1 thread: 381 MB.
# The semi-space cap is for the main thread only: the screening thread and the trader isolates are created
# without it (src/screening/pool.ts), and the heap the backfill grew is handed back once it is done
# (src/heap.ts). One thread, the same load, today: 298-304 MB (BENCHMARKS.md, memory). Trader isolates are collected
# between their runs, and after every tick above 75 % of the machine's memory (src/screening/isolateCollector.ts).
ENV NODE_OPTIONS="--max-semi-space-size=8" MALLOC_ARENA_MAX=2
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# Run as the image's unprivileged user: a filter sandbox escape would still not be root.
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node directly, not `npm start`: npm does not forward SIGTERM, and the worker must receive it to flush.
# The worker handles SIGTERM/SIGINT itself, so running as PID 1 without an init is fine.
CMD ["node", "dist/main.js"]
