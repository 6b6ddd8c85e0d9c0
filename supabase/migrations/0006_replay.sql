-- Replay and explain (issue #16): what a trader would have fired, and why a signal fired.
--
--   trader_versions   the exact code behind a signal: one row per (user, sha256 of filter.code), written by the worker
--                     before the first signal that cites it, never changed afterwards.
--   signals           + code_hash (→ trader_versions), filter_values (the numbers the filter returned with its match),
--                     ticker (the 24 h ticker fields the filter was shown, as Binance strings).
--   trader_status     + last_tick_*: the last tick's evaluated, matched and failed symbol counts, the first errors by symbol.
--   replay_requests   a user asks its worker to replay a trader (by id, or a filter object) over a past range.
--   replay_results    the would-be signals of a request (never signals: nothing here is live).
--
-- Column names are plain and documented in README.md (Contract changes); the web app reads all of them.

-- ---- trader_versions ----

create table if not exists public.trader_versions (
  user_id uuid not null references auth.users (id) on delete cascade,
  -- sha256 of filter.code (UTF-8), lower-case hex: signals.provenance.filterCodeHash.
  code_hash text not null,
  -- The trader that first ran this code (null once that trader is deleted; other traders may share the code).
  trader_id uuid references public.traders (id) on delete set null,
  code text not null,
  created_at timestamptz not null default now(),
  primary key (user_id, code_hash),
  -- The database checks the hash: a version row always holds the code its key names.
  constraint trader_versions_hash_matches check (code_hash = encode(sha256(convert_to(code, 'UTF8')), 'hex')),
  constraint trader_versions_code_bounded check (char_length(code) <= 200000)
);

revoke all on public.trader_versions from anon;
grant select, insert on public.trader_versions to authenticated;
grant all on public.trader_versions to service_role;
alter table public.trader_versions enable row level security;

drop policy if exists trader_versions_select_own on public.trader_versions;
create policy trader_versions_select_own on public.trader_versions
  for select to authenticated
  using (user_id = (select auth.uid()));

-- Versions are history: inserted (by the worker, or the web app), never updated or deleted by a user or a worker key.
drop policy if exists trader_versions_insert_own on public.trader_versions;
create policy trader_versions_insert_own on public.trader_versions
  for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and (trader_id is null or exists (select 1 from public.traders t where t.id = trader_id and t.user_id = (select auth.uid())))
  );

-- ---- signals: explain ----

alter table public.signals add column if not exists code_hash text;
alter table public.signals add column if not exists filter_values jsonb;
alter table public.signals add column if not exists ticker jsonb;

-- A cloud signal names the exact code that fired it; the version row must exist first (browser signals leave it null).
alter table public.signals drop constraint if exists signals_code_version_fkey;
alter table public.signals add constraint signals_code_version_fkey
  foreign key (user_id, code_hash) references public.trader_versions (user_id, code_hash);

-- At most 20 finite numbers under keys of at most 32 plain characters (the sandbox's own limits, JUDGE_LIMITS in
-- src/screening/sandboxRuntime.ts). jsonb numbers are always finite.
create or replace function public.is_bounded_number_object(value jsonb, max_keys integer, max_key_chars integer)
returns boolean
language sql
immutable
parallel safe
as $$
  select case
    when jsonb_typeof(value) <> 'object' then false
    else (select count(*) <= max_keys and coalesce(bool_and(jsonb_typeof(v) = 'number' and k ~ '^[A-Za-z0-9_.-]+$' and char_length(k) <= max_key_chars), true)
          from jsonb_each(value) as e(k, v))
  end
$$;

revoke all on function public.is_bounded_number_object(jsonb, integer, integer) from public, anon;
grant execute on function public.is_bounded_number_object(jsonb, integer, integer) to authenticated, service_role;

alter table public.signals drop constraint if exists signals_explain_bounded;
alter table public.signals add constraint signals_explain_bounded
  check (
    (filter_values is null or public.is_bounded_number_object(filter_values, 20, 32))
    and (ticker is null or (jsonb_typeof(ticker) = 'object' and octet_length(ticker::text) <= 2048))
    and (code_hash is null or code_hash ~ '^[0-9a-f]{64}$')
  ) not valid;

-- ---- trader_status: the last tick ----

alter table public.trader_status add column if not exists last_tick_evaluated integer;
alter table public.trader_status add column if not exists last_tick_matched integer;
alter table public.trader_status add column if not exists last_tick_failed integer;
alter table public.trader_status add column if not exists last_tick_errors jsonb;

alter table public.trader_status drop constraint if exists trader_status_last_tick_bounded;
alter table public.trader_status add constraint trader_status_last_tick_bounded
  check (
    coalesce(last_tick_evaluated, 0) >= 0 and coalesce(last_tick_matched, 0) >= 0 and coalesce(last_tick_failed, 0) >= 0
    and (last_tick_errors is null or (jsonb_typeof(last_tick_errors) = 'array' and jsonb_array_length(last_tick_errors) <= 5
         and octet_length(last_tick_errors::text) <= 8192))
  ) not valid;

-- ---- replay_requests ----

create table if not exists public.replay_requests (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  -- Either a trader of the user, replayed as its row stands when the worker takes the request...
  trader_id uuid references public.traders (id) on delete cascade,
  -- ...or a trader's filter object ({ code, refreshInterval, requiredTimeframes, helpers }), e.g. an unsaved edit.
  filter jsonb,
  -- The symbols to replay: a JSON array of 1 to 20 symbols.
  symbols jsonb not null,
  range_from timestamptz not null,
  range_to timestamptz not null,
  status text not null default 'pending' check (status in ('pending', 'running', 'done', 'failed')),
  -- 'request': the user asked. 'lookback': the worker asked itself, for a trader version it had not looked back on.
  -- 'shadow': the worker compares an edited trader's previous and new code over the candles after the edit.
  kind text not null default 'request' check (kind in ('request', 'lookback', 'shadow')),
  -- For a look-back or a shadow: the code version (sha256 of filter.code) it replays; one look-back per trader and version.
  code_hash text,
  -- For a shadow: the version before the edit (both are in trader_versions).
  previous_code_hash text,
  -- Why a request failed (or what was cut short, for a done one).
  reason text,
  -- The worker machine that took it.
  machine_id text,
  -- { candles, evaluated, matched, errors, signals, truncated, errorSamples: [...] }, set when done.
  summary jsonb,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  constraint replay_requests_one_source check (num_nonnulls(trader_id, filter) = 1),
  constraint replay_requests_bounded check (
    (filter is null or (jsonb_typeof(filter) = 'object' and octet_length(filter::text) <= 1048576))
    and (reason is null or char_length(reason) <= 2000)
    and (machine_id is null or char_length(machine_id) <= 200)
    and (summary is null or (jsonb_typeof(summary) = 'object' and octet_length(summary::text) <= 16384))
  )
);

create index if not exists replay_requests_pending_idx on public.replay_requests (user_id, status, created_at);
create unique index if not exists replay_requests_lookback_once on public.replay_requests (trader_id, code_hash) where kind = 'lookback';
create unique index if not exists replay_requests_shadow_once on public.replay_requests (trader_id, previous_code_hash, code_hash) where kind = 'shadow';

-- Candle length of an interval, for the range limit; null for an interval the worker does not know.
create or replace function public.replay_interval_ms(value text)
returns bigint
language sql
immutable
parallel safe
as $$
  select case value
    when '1m' then 60000 when '3m' then 180000 when '5m' then 300000 when '15m' then 900000 when '30m' then 1800000
    when '1h' then 3600000 when '2h' then 7200000 when '4h' then 14400000 when '6h' then 21600000 when '8h' then 28800000
    when '12h' then 43200000 when '1d' then 86400000 when '3d' then 259200000 when '1w' then 604800000
  end
$$;

/*
 * The limits, enforced here so no client can skip them (SQLSTATE 23514, message names the limit):
 *   - at most 10 requests per user per rolling hour (requests cannot be deleted by a user, so none can be recycled);
 *   - a range of at most 1000 candles of the trader's refresh interval (from its filter; 1m when the filter does not
 *     say or cannot be read), starting in the past, ending after it starts;
 *   - 1 to 20 symbols, each an upper-case Binance symbol.
 * A look-back (kind 'lookback', only from a worker key, see the policy) covers the worker's universe: up to 1000
 * symbols, and it does not count against the user's hourly quota.
 * A new request always starts pending, with nothing of the worker's filled in.
 */
create or replace function public.replay_requests_before_insert()
returns trigger
language plpgsql
security invoker
as $$
declare
  source_filter jsonb;
  refresh text;
  candle_ms bigint;
  recent integer;
begin
  new.status := 'pending';
  new.reason := null;
  new.machine_id := null;
  new.summary := null;
  new.started_at := null;
  new.finished_at := null;
  new.created_at := now();

  if jsonb_typeof(new.symbols) <> 'array' or jsonb_array_length(new.symbols) < 1
     or jsonb_array_length(new.symbols) > (case when new.kind = 'request' then 20 else 1000 end)
     or exists (select 1 from jsonb_array_elements(new.symbols) s where jsonb_typeof(s) <> 'string' or (s #>> '{}') !~ '^[A-Z0-9]{2,20}$') then
    raise exception 'replay_requests: symbols must be a JSON array of 1 to 20 symbols such as "BTCUSDT"' using errcode = '23514';
  end if;

  source_filter := new.filter;
  if new.trader_id is not null then
    select t.filter into source_filter from public.traders t where t.id = new.trader_id;
  end if;
  begin
    if jsonb_typeof(source_filter) = 'string' then source_filter := (source_filter #>> '{}')::jsonb; end if;
    refresh := source_filter ->> 'refreshInterval';
  exception when others then
    refresh := null;
  end;
  candle_ms := coalesce(public.replay_interval_ms(refresh), 60000);

  if new.range_to <= new.range_from then
    raise exception 'replay_requests: range_to must be after range_from' using errcode = '23514';
  end if;
  if new.kind <> 'request' and (new.trader_id is null or new.code_hash is null or new.code_hash !~ '^[0-9a-f]{64}$') then
    raise exception 'replay_requests: a look-back or shadow names its trader and code_hash' using errcode = '23514';
  end if;
  if new.kind = 'shadow' and (new.previous_code_hash is null or new.previous_code_hash !~ '^[0-9a-f]{64}$') then
    raise exception 'replay_requests: a shadow names its previous_code_hash' using errcode = '23514';
  end if;
  -- A shadow covers the candles after an edit: it is queued before they close and served once they have.
  if new.kind <> 'shadow' and new.range_from >= now() then
    raise exception 'replay_requests: range_from must be in the past' using errcode = '23514';
  end if;
  if extract(epoch from (new.range_to - new.range_from)) * 1000 > 1000 * candle_ms then
    raise exception 'replay_requests: a range covers at most 1000 candles of the refresh interval (% ms each)', candle_ms using errcode = '23514';
  end if;

  if new.kind <> 'request' then
    return new;
  end if;
  -- One count at a time per user, so two inserts at once cannot both pass the limit.
  perform pg_advisory_xact_lock(hashtextextended('replay_requests:' || new.user_id::text, 0));
  select count(*) into recent from public.replay_requests r where r.user_id = new.user_id and r.kind = 'request' and r.created_at > now() - interval '1 hour';
  if recent >= 10 then
    raise exception 'replay_requests: at most 10 requests per hour' using errcode = '23514';
  end if;
  return new;
end;
$$;

revoke all on function public.replay_requests_before_insert() from public, anon;

drop trigger if exists replay_requests_limits on public.replay_requests;
create trigger replay_requests_limits before insert on public.replay_requests
  for each row execute function public.replay_requests_before_insert();

-- A finished request stays as it finished.
create or replace function public.replay_requests_before_update()
returns trigger
language plpgsql
as $$
begin
  if old.status in ('done', 'failed') then
    raise exception 'replay_requests: request % is already %', old.id, old.status using errcode = '23514';
  end if;
  return new;
end;
$$;

revoke all on function public.replay_requests_before_update() from public, anon;

drop trigger if exists replay_requests_finished on public.replay_requests;
create trigger replay_requests_finished before update on public.replay_requests
  for each row execute function public.replay_requests_before_update();

revoke all on public.replay_requests from anon;
grant select, insert on public.replay_requests to authenticated;
-- The worker fills in only its own columns.
grant update (status, reason, machine_id, summary, started_at, finished_at) on public.replay_requests to authenticated;
grant all on public.replay_requests to service_role;
alter table public.replay_requests enable row level security;

drop policy if exists replay_requests_select_own on public.replay_requests;
create policy replay_requests_select_own on public.replay_requests
  for select to authenticated
  using (user_id = (select auth.uid()));

-- The user's own session asks for a replay; a worker key only for a look-back of one of the user's traders.
drop policy if exists replay_requests_insert_own on public.replay_requests;
create policy replay_requests_insert_own on public.replay_requests
  for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and case
      when coalesce((select auth.jwt()) ->> 'worker', 'false') = 'true' then kind in ('lookback', 'shadow') and trader_id is not null and code_hash is not null
      else kind = 'request' and code_hash is null and previous_code_hash is null
    end
    and (trader_id is null or exists (select 1 from public.traders t where t.id = trader_id and t.user_id = (select auth.uid())))
  );

-- Only the user's worker serves (updates) a request.
drop policy if exists replay_requests_update_worker on public.replay_requests;
create policy replay_requests_update_worker on public.replay_requests
  for update to authenticated
  using (user_id = (select auth.uid()) and coalesce((select auth.jwt()) ->> 'worker', 'false') = 'true')
  with check (user_id = (select auth.uid()));

-- ---- replay_results ----

create table if not exists public.replay_results (
  id uuid primary key default gen_random_uuid(),
  request_id uuid not null references public.replay_requests (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  -- The request's trader, null for a filter given inline.
  trader_id uuid references public.traders (id) on delete cascade,
  symbol text not null,
  interval text not null,
  candle_open_time timestamptz not null,
  price numeric,
  matched_conditions jsonb not null default '[]'::jsonb,
  filter_values jsonb,
  code_hash text,
  -- 'replay': a would-be signal. For a shadow, a verdict that differs: 'old' (only the code before the edit matched) or
  -- 'new' (only the edited code matched), with that code's conditions and values.
  variant text not null default 'replay' check (variant in ('replay', 'old', 'new')),
  created_at timestamptz not null default now(),
  constraint replay_results_request_candle_key unique (request_id, variant, symbol, interval, candle_open_time),
  constraint replay_results_bounded check (
    public.is_bounded_string_array(matched_conditions, 50, 500)
    and (filter_values is null or public.is_bounded_number_object(filter_values, 20, 32))
    and char_length(symbol) <= 64 and char_length(interval) <= 16
    and (code_hash is null or code_hash ~ '^[0-9a-f]{64}$')
  )
);

revoke all on public.replay_results from anon;
grant select, insert on public.replay_results to authenticated;
grant all on public.replay_results to service_role;
alter table public.replay_results enable row level security;

drop policy if exists replay_results_select_own on public.replay_results;
create policy replay_results_select_own on public.replay_results
  for select to authenticated
  using (user_id = (select auth.uid()));

-- The user's worker writes results, only for a request of the same user that it is serving.
drop policy if exists replay_results_insert_worker on public.replay_results;
create policy replay_results_insert_worker on public.replay_results
  for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and coalesce((select auth.jwt()) ->> 'worker', 'false') = 'true'
    and exists (select 1 from public.replay_requests r where r.id = request_id and r.user_id = (select auth.uid()) and r.status = 'running')
  );
