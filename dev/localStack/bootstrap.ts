// The stand-in for Supabase's platform pieces (roles, auth schema) and the migration runner.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type postgres from 'postgres';

/**
 * Roles and the auth schema as a Supabase project has them, reduced to what the migrations use.
 * auth.uid(), auth.role() and auth.jwt() are Supabase's own definitions: they read the claims
 * PostgREST puts into `request.jwt.claims` for each request.
 */
const PLATFORM_SQL = `
do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then create role anon nologin noinherit; end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then create role authenticated nologin noinherit; end if;
  if not exists (select from pg_roles where rolname = 'service_role') then create role service_role nologin noinherit bypassrls; end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then create role authenticator login noinherit; end if;
end;
$$;

grant anon, authenticated, service_role to authenticator;

create schema if not exists auth;

create table if not exists auth.users (
  id uuid primary key default gen_random_uuid(),
  email text unique,
  raw_user_meta_data jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create or replace function auth.uid() returns uuid
language sql stable
as $fn$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$fn$;

create or replace function auth.role() returns text
language sql stable
as $fn$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$fn$;

create or replace function auth.jwt() returns jsonb
language sql stable
as $fn$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$fn$;

grant usage on schema auth to anon, authenticated, service_role;
grant execute on function auth.uid(), auth.role(), auth.jwt() to anon, authenticated, service_role;
grant all on auth.users to service_role;

create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
  version text primary key,
  name text not null,
  applied_at timestamptz not null default now()
);
`;

export async function installPlatform(sql: postgres.Sql, authenticatorPassword: string): Promise<void> {
  await sql.unsafe(PLATFORM_SQL);
  // A fresh password each start: nothing but this stack's PostgREST ever logs in as authenticator.
  await sql.unsafe(`alter role authenticator with login password '${authenticatorPassword.replace(/'/g, "''")}'`);
}

/**
 * Apply every `*.sql` in `dir` not yet recorded, in name order, each in its own transaction,
 * recording it in supabase_migrations.schema_migrations as the Supabase CLI does.
 * Returns the names applied by this call.
 */
export async function applyMigrations(sql: postgres.Sql, dir: string): Promise<string[]> {
  const files = (await readdir(dir)).filter((name) => name.endsWith('.sql')).sort();
  const applied = new Set((await sql<{ version: string }[]>`select version from supabase_migrations.schema_migrations`).map((row) => row.version));
  const appliedNow: string[] = [];
  for (const file of files) {
    const version = file.split('_')[0] ?? file;
    if (applied.has(version)) continue;
    const text = await readFile(join(dir, file), 'utf8');
    await sql.begin(async (tx) => {
      await tx.unsafe(text);
      await tx`insert into supabase_migrations.schema_migrations (version, name) values (${version}, ${file})`;
    });
    appliedNow.push(file);
  }
  // PostgREST caches the schema: tell a running one to reload it.
  if (appliedNow.length > 0) await sql`notify pgrst, 'reload schema'`;
  return appliedNow;
}
