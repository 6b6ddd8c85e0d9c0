-- The fleet: which users should have a worker machine (worker_machines, written by the platform),
-- what the fleet controller did about it (the same rows), and worker keys that are no longer honoured
-- (revoked_worker_keys, refused for every request by PostgREST's pre-request hook and by RLS).
--
-- Worker keys carry an id (`jti`). Revoking one is an insert into revoked_worker_keys; the very next
-- request made with that key is refused.

create table if not exists public.worker_machines (
  user_id uuid primary key references auth.users (id) on delete cascade,
  -- Desired state, written by the platform (service role).
  desired_state text not null default 'running' check (desired_state in ('running', 'stopped', 'absent')),
  region text not null default 'nrt' check (region ~ '^[a-z]{3}$'),
  memory_mb integer not null default 1024 check (memory_mb between 256 and 65536 and memory_mb % 256 = 0),
  image text not null check (length(image) between 1 and 500),
  -- What the fleet controller found and did (also service role): its Fly app and machine, the id of the
  -- key it set as the app's SUPABASE_KEY, and a key being retired by a rotation still in progress.
  app_name text,
  machine_id text,
  key_id text,
  retiring_key_id text,
  actual_state text,
  actual_image text,
  last_action text,
  last_action_at timestamptz,
  last_error text,
  converged_at timestamptz,
  -- Which controller is working on this user, until when (claim_worker_machines): two controllers never act on
  -- the same user at once, and a crashed one's claim lapses.
  claimed_by text,
  claim_expires_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create index if not exists worker_machines_desired_idx on public.worker_machines (desired_state);

drop trigger if exists worker_machines_set_updated_at on public.worker_machines;
create trigger worker_machines_set_updated_at before insert or update on public.worker_machines
  for each row execute function public.set_updated_at();

-- Claim every user no other live controller is working on, for `p_ttl_seconds`, and return their rows. One call per
-- reconcile pass; a controller gives a user back by clearing claimed_by when it records what it did.
create or replace function public.claim_worker_machines(p_owner text, p_ttl_seconds integer, p_users uuid[] default null)
returns setof public.worker_machines
language sql volatile
set search_path = ''
as $$
  update public.worker_machines m
  set claimed_by = p_owner, claim_expires_at = now() + make_interval(secs => p_ttl_seconds)
  where (p_users is null or m.user_id = any (p_users))
    and (m.claimed_by is null or m.claimed_by = p_owner or m.claim_expires_at < now())
  returning m.*
$$;

revoke all on function public.claim_worker_machines(text, integer, uuid[]) from public, anon, authenticated;
grant execute on function public.claim_worker_machines(text, integer, uuid[]) to service_role;

create table if not exists public.revoked_worker_keys (
  -- The key's `jti` claim. Text, not uuid: a malformed id in a token must never make the check itself fail.
  jti text primary key,
  user_id uuid references auth.users (id) on delete cascade,
  reason text not null default 'revoked',
  revoked_at timestamptz not null default now()
);

-- ---- Privileges: the platform and the controller write (service role); a user reads its own machine row. ----

revoke all on public.worker_machines, public.revoked_worker_keys from anon, authenticated;
grant select on public.worker_machines to authenticated;
grant all on public.worker_machines, public.revoked_worker_keys to service_role;

alter table public.worker_machines enable row level security;
alter table public.revoked_worker_keys enable row level security;

drop policy if exists worker_machines_select_own on public.worker_machines;
create policy worker_machines_select_own on public.worker_machines
  for select to authenticated
  using (user_id = (select auth.uid()));

-- ---- Key revocation ----

-- True when the request's JWT carries an id that has been revoked. Security definer so every role can ask
-- without being able to read the table; an empty search_path so nothing can shadow the table it reads.
create or replace function public.worker_key_revoked() returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from public.revoked_worker_keys r
    where r.jti = nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'jti'
  )
$$;

revoke all on function public.worker_key_revoked() from public;
grant execute on function public.worker_key_revoked() to anon, authenticated, service_role;

-- PostgREST calls this before every request (db-pre-request). A revoked key is refused with 403
-- (SQLSTATE 28000, invalid authorization) before it can read or write anything, on every table and function.
create or replace function public.refuse_revoked_worker_keys() returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if public.worker_key_revoked() then
    raise exception 'this worker key has been revoked'
      using errcode = '28000', hint = 'the machine needs a new key: npm run fleet -- rotate-key <user>';
  end if;
end;
$$;

revoke all on function public.refuse_revoked_worker_keys() from public;
grant execute on function public.refuse_revoked_worker_keys() to anon, authenticated, service_role;

-- PostgREST's in-database configuration (Supabase documents this for its projects): the hook is a setting of the
-- authenticator role, read at startup and on `notify pgrst, 'reload config'`. It replaces any other pre-request
-- function the project had; if yours has one, call public.refuse_revoked_worker_keys() from it instead.
alter role authenticator set pgrst.db_pre_request to 'public.refuse_revoked_worker_keys';
notify pgrst, 'reload config';

-- Defense in depth, for clients that reach the tables without PostgREST's hook (Realtime, a PostgREST started with
-- db-config off): restrictive policies are AND-ed with the permissive ones, so a revoked key sees and writes nothing.
do $$
declare
  target text;
begin
  foreach target in array array['traders', 'signals', 'worker_status', 'trader_status', 'worker_machines'] loop
    execute format('drop policy if exists %I on public.%I', target || '_refuse_revoked_keys', target);
    execute format(
      'create policy %I on public.%I as restrictive for all to authenticated '
      'using (not (select public.worker_key_revoked())) with check (not (select public.worker_key_revoked()))',
      target || '_refuse_revoked_keys', target);
  end loop;
end;
$$;
