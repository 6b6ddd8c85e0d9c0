-- Bounds on what any key may write: a worker key's rows come from user-written filter code, so the database, not
-- only the worker, keeps them to a size the web app can show and the table can hold. Every limit here sits well
-- above what the worker writes (src/traders/rows.ts) so a legitimate row is never refused:
--
--   signals.matched_conditions  a JSON array of at most 50 strings of at most 500 characters each (the screening
--                               sandbox's own limits, MAX_CONDITIONS and MAX_TEXT in src/screening/sandboxRuntime.ts)
--   signals.provenance          a JSON object (or null) of at most 16384 bytes as text; the worker's is under 1 KB
--                               (hash, versions, one small entry per timeframe)
--   signals.symbol / interval / machine_id   at most 64 / 16 / 200 characters
--   worker_status               counters >= 0; machine_id and version at most 200 characters, last_error at most 2000
--   trader_status               evaluations, matches >= 0; mean_evaluation_ms finite and >= 0; last_error at most
--                               2000 characters (the worker truncates to that, MAX_STATUS_TEXT in src/traders/rows.ts)
--   signals.source              'cloud' only from a worker key (claim worker = true), 'browser' only from the
--                               user's own session; service_role (operators) may write either
--
-- Lengths are characters (code points), as char_length counts them; JavaScript's .length counts UTF-16 units, never
-- fewer, so a string the worker cut to N units always fits N characters. PostgreSQL refuses a NUL (\u0000) in any
-- jsonb or text value outright (SQLSTATE 22P05): the worker must strip it before writing.
--
-- The constraints are added NOT VALID: on a real project rows written before this migration (by the browser, by an
-- older worker) are not re-checked, so the migration cannot fail on history; every insert and update from now on
-- is checked. An operator can check the history later with `alter table … validate constraint …`.

-- An immutable function, because a CHECK cannot hold a subquery over the array's elements. Callers of INSERT need
-- EXECUTE on it (a CHECK runs its functions as the inserting role); it reads nothing but its arguments.
create or replace function public.is_bounded_string_array(value jsonb, max_items integer, max_chars integer)
returns boolean
language sql
immutable
parallel safe
as $$
  select case
    when jsonb_typeof(value) <> 'array' then false
    when jsonb_array_length(value) > max_items then false
    else not exists (
      select 1 from jsonb_array_elements(value) as item
      where jsonb_typeof(item) <> 'string' or char_length(item #>> '{}') > max_chars
    )
  end
$$;

revoke all on function public.is_bounded_string_array(jsonb, integer, integer) from public, anon;
grant execute on function public.is_bounded_string_array(jsonb, integer, integer) to authenticated, service_role;

-- ---- signals ----

alter table public.signals drop constraint if exists signals_matched_conditions_bounded;
alter table public.signals add constraint signals_matched_conditions_bounded
  check (public.is_bounded_string_array(matched_conditions, 50, 500)) not valid;

alter table public.signals drop constraint if exists signals_provenance_bounded;
alter table public.signals add constraint signals_provenance_bounded
  check (provenance is null or (jsonb_typeof(provenance) = 'object' and octet_length(provenance::text) <= 16384)) not valid;

alter table public.signals drop constraint if exists signals_text_bounded;
alter table public.signals add constraint signals_text_bounded
  check (char_length(symbol) <= 64 and char_length("interval") <= 16 and (machine_id is null or char_length(machine_id) <= 200)) not valid;

-- ---- worker_status ----

alter table public.worker_status drop constraint if exists worker_status_counts_non_negative;
alter table public.worker_status add constraint worker_status_counts_non_negative
  check (symbols >= 0 and traders >= 0 and streams >= 0) not valid;

alter table public.worker_status drop constraint if exists worker_status_text_bounded;
alter table public.worker_status add constraint worker_status_text_bounded
  check (
    char_length(machine_id) <= 200
    and char_length(version) <= 200
    and (last_error is null or char_length(last_error) <= 2000)
  ) not valid;

-- ---- trader_status ----

-- double precision admits NaN and ±Infinity, and NaN sorts above every number: `< 'Infinity'` rules out all three.
alter table public.trader_status drop constraint if exists trader_status_counts_non_negative;
alter table public.trader_status add constraint trader_status_counts_non_negative
  check (
    evaluations >= 0
    and matches >= 0
    and mean_evaluation_ms >= 0
    and mean_evaluation_ms < 'Infinity'::double precision
  ) not valid;

alter table public.trader_status drop constraint if exists trader_status_text_bounded;
alter table public.trader_status add constraint trader_status_text_bounded
  check (last_error is null or char_length(last_error) <= 2000) not valid;

-- ---- who may claim which source ----

-- Restrictive: AND-ed with 0001's permissive signals_insert_own_trader (own user, own trader), so both must hold.
-- A worker key is the user's JWT plus the claim worker = true, read as 0001's policies read it.
drop policy if exists signals_insert_source_matches_key on public.signals;
create policy signals_insert_source_matches_key on public.signals
  as restrictive
  for insert to authenticated
  with check (
    case
      when coalesce((select auth.jwt()) ->> 'worker', 'false') = 'true' then source = 'cloud'
      else source = 'browser'
    end
  );
