-- The cloud screener's tables: traders (the web app's), signals, worker_status and trader_status.
-- Plain SQL for a real Supabase project (auth schema, auth.uid(), auth.jwt(), roles anon,
-- authenticated and service_role); the local stack creates a stand-in for those first.
--
-- Worker tokens: a per-user JWT with role `authenticated`, `sub` = the user's id and an extra
-- claim `"worker": true`. Policies let such a token read its user's traders but never write them,
-- while the same user's own session (no `worker` claim) still manages its traders.

create table if not exists public.traders (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  name text not null,
  description text,
  enabled boolean not null default true,
  mode text not null default 'demo' check (mode in ('demo', 'live')),
  exchange_config jsonb,
  filter jsonb not null,
  strategy jsonb,
  metrics jsonb,
  execution_mode text not null default 'both' check (execution_mode in ('browser', 'cloud', 'both')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- On a real project the web app's traders table already exists: add what the worker needs.
alter table public.traders
  add column if not exists execution_mode text not null default 'both'
    check (execution_mode in ('browser', 'cloud', 'both'));

-- The worker's load: `user_id = $1 and enabled and execution_mode in ('cloud','both') order by created_at desc`.
create index if not exists traders_worker_load_idx
  on public.traders (user_id, enabled, execution_mode, created_at desc);

create table if not exists public.signals (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  trader_id uuid not null references public.traders (id) on delete cascade,
  symbol text not null,
  interval text not null,
  candle_open_time timestamptz not null,
  price numeric,
  matched_conditions jsonb not null default '[]'::jsonb,
  source text not null default 'browser' check (source in ('browser', 'cloud')),
  machine_id text,
  provenance jsonb,
  created_at timestamptz not null default now(),
  -- Retries, restarts and the browser running the same trader all collapse onto this key.
  constraint signals_trader_candle_key unique (trader_id, symbol, interval, candle_open_time)
);

create index if not exists signals_user_created_idx on public.signals (user_id, created_at desc);

create table if not exists public.worker_status (
  user_id uuid primary key references auth.users (id) on delete cascade,
  machine_id text not null,
  version text not null,
  state text not null check (state in ('starting', 'ready', 'degraded', 'stopping', 'stopped')),
  started_at timestamptz not null,
  heartbeat_at timestamptz not null,
  symbols integer not null default 0,
  traders integer not null default 0,
  streams integer not null default 0,
  last_error text,
  updated_at timestamptz not null default now()
);

create table if not exists public.trader_status (
  trader_id uuid primary key references public.traders (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  state text not null check (state in ('running', 'failing', 'disabled')),
  last_error text,
  last_evaluated_at timestamptz,
  evaluations bigint not null default 0,
  matches bigint not null default 0,
  mean_evaluation_ms double precision not null default 0,
  -- The traders.updated_at this status judged: a later edit of the trader lifts a 'disabled'.
  trader_updated_at timestamptz,
  updated_at timestamptz not null default now()
);

create index if not exists trader_status_user_idx on public.trader_status (user_id);

-- updated_at is the database's clock, not the client's: the worker diffs traders by it.
create or replace function public.set_updated_at() returns trigger
language plpgsql
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;

revoke all on function public.set_updated_at() from public;

drop trigger if exists traders_set_updated_at on public.traders;
create trigger traders_set_updated_at before update on public.traders
  for each row execute function public.set_updated_at();

drop trigger if exists worker_status_set_updated_at on public.worker_status;
create trigger worker_status_set_updated_at before insert or update on public.worker_status
  for each row execute function public.set_updated_at();

drop trigger if exists trader_status_set_updated_at on public.trader_status;
create trigger trader_status_set_updated_at before insert or update on public.trader_status
  for each row execute function public.set_updated_at();

-- ---- Privileges ----
-- Supabase grants everything on public tables to anon and authenticated by default and relies on
-- row-level security. These tables have nothing for anonymous callers, so anon gets no privilege
-- at all (defense in depth); authenticated gets what the policies below can allow; service_role
-- (operators, migrations) bypasses RLS and keeps full access.

grant usage on schema public to anon, authenticated, service_role;

revoke all on public.traders, public.signals, public.worker_status, public.trader_status from anon;
grant select, insert, update, delete on public.traders to authenticated;
grant select, insert, delete on public.signals to authenticated;
revoke update on public.signals from authenticated;
grant select, insert, update on public.worker_status to authenticated;
grant select, insert, update, delete on public.trader_status to authenticated;
grant all on public.traders, public.signals, public.worker_status, public.trader_status to service_role;

-- ---- Row-level security ----

alter table public.traders enable row level security;
alter table public.signals enable row level security;
alter table public.worker_status enable row level security;
alter table public.trader_status enable row level security;

-- The original platform let any authenticated user read every trader. Policies are OR-ed, so any
-- such policy left in place would undo ours: drop every traders policy this migration does not own.
do $$
declare
  existing record;
begin
  for existing in
    select policyname from pg_policies
    where schemaname = 'public' and tablename = 'traders'
      and policyname not in ('traders_select_own', 'traders_insert_own', 'traders_update_own', 'traders_delete_own')
  loop
    execute format('drop policy %I on public.traders', existing.policyname);
  end loop;
end;
$$;

-- A user sees only its own traders.
drop policy if exists traders_select_own on public.traders;
create policy traders_select_own on public.traders
  for select to authenticated
  using (user_id = (select auth.uid()));

-- Writes to traders need the user's own session: a worker token (claim worker = true) is read-only.
drop policy if exists traders_insert_own on public.traders;
create policy traders_insert_own on public.traders
  for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and coalesce((select auth.jwt()) ->> 'worker', 'false') <> 'true'
  );

drop policy if exists traders_update_own on public.traders;
create policy traders_update_own on public.traders
  for update to authenticated
  using (
    user_id = (select auth.uid())
    and coalesce((select auth.jwt()) ->> 'worker', 'false') <> 'true'
  )
  with check (user_id = (select auth.uid()));

drop policy if exists traders_delete_own on public.traders;
create policy traders_delete_own on public.traders
  for delete to authenticated
  using (
    user_id = (select auth.uid())
    and coalesce((select auth.jwt()) ->> 'worker', 'false') <> 'true'
  );

drop policy if exists signals_select_own on public.signals;
create policy signals_select_own on public.signals
  for select to authenticated
  using (user_id = (select auth.uid()));

-- A signal may only name one of the caller's own traders (the subquery sees traders through RLS too).
drop policy if exists signals_insert_own_trader on public.signals;
create policy signals_insert_own_trader on public.signals
  for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and exists (select 1 from public.traders t where t.id = trader_id and t.user_id = (select auth.uid()))
  );

-- Signals are history: the user may clear its own, the worker only ever inserts.
drop policy if exists signals_delete_own on public.signals;
create policy signals_delete_own on public.signals
  for delete to authenticated
  using (
    user_id = (select auth.uid())
    and coalesce((select auth.jwt()) ->> 'worker', 'false') <> 'true'
  );

drop policy if exists worker_status_select_own on public.worker_status;
create policy worker_status_select_own on public.worker_status
  for select to authenticated
  using (user_id = (select auth.uid()));

drop policy if exists worker_status_insert_own on public.worker_status;
create policy worker_status_insert_own on public.worker_status
  for insert to authenticated
  with check (user_id = (select auth.uid()));

drop policy if exists worker_status_update_own on public.worker_status;
create policy worker_status_update_own on public.worker_status
  for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));

drop policy if exists trader_status_select_own on public.trader_status;
create policy trader_status_select_own on public.trader_status
  for select to authenticated
  using (user_id = (select auth.uid()));

drop policy if exists trader_status_insert_own on public.trader_status;
create policy trader_status_insert_own on public.trader_status
  for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and exists (select 1 from public.traders t where t.id = trader_id and t.user_id = (select auth.uid()))
  );

drop policy if exists trader_status_update_own on public.trader_status;
create policy trader_status_update_own on public.trader_status
  for update to authenticated
  using (user_id = (select auth.uid()))
  with check (
    user_id = (select auth.uid())
    and exists (select 1 from public.traders t where t.id = trader_id and t.user_id = (select auth.uid()))
  );

-- The web app may clear a trader's status; a worker token never deletes.
drop policy if exists trader_status_delete_own on public.trader_status;
create policy trader_status_delete_own on public.trader_status
  for delete to authenticated
  using (
    user_id = (select auth.uid())
    and coalesce((select auth.jwt()) ->> 'worker', 'false') <> 'true'
  );
