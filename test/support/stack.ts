// Test access to the local stack: the shared one from globalSetup, plus seeding helpers.
//
// Sharing rule: the stack from globalSetup serves every test file at once, so a test file must
// never stop or restart its PostgREST or PostgreSQL, and must only touch rows of users it created
// itself (createUser gives each test fresh users, so files never see each other's rows).
// A test that needs faults (PostgREST stopped, Postgres restarted) starts its own stack with
// startLocalStack() from dev/localStack.ts in beforeAll and stops it in afterAll; that costs about
// one second.
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import postgres from 'postgres';
import { inject } from 'vitest';
import ws from 'ws';
import { mintUserJwt } from '../../dev/jwt.ts';
import type { LocalStack } from '../../dev/localStack.ts';

/** Serializable connection info of a running stack. */
export type StackInfo = Pick<
  LocalStack,
  'supabaseUrl' | 'restUrl' | 'databaseUrl' | 'jwtSecret' | 'anonKey' | 'serviceKey' | 'gatewayPort' | 'postgrestPort' | 'postgresPort'
>;

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

/** What a test needs from a stack, shared or its own (a LocalStack satisfies it). */
export interface StackHandle {
  supabaseUrl: string;
  jwtSecret: string;
  anonKey: string;
  serviceKey: string;
  sql: postgres.Sql;
}

let sharedSql: postgres.Sql | null = null;

/** The shared stack of this run, with a superuser client for this test file (closed at process exit). */
export function sharedStack(): StackInfo & StackHandle {
  const info = inject('stack');
  sharedSql ??= postgres(info.databaseUrl, { max: 2, onnotice: () => {}, idle_timeout: 5 });
  return { ...info, sql: sharedSql };
}

/** A fresh auth.users row; returns its id. */
export async function createUser(stack: StackHandle, email?: string): Promise<string> {
  const address = email ?? `user-${crypto.randomUUID()}@example.test`;
  const [row] = await stack.sql<{ id: string }[]>`insert into auth.users (email) values (${address}) returning id`;
  return row!.id;
}

export interface TestUser {
  id: string;
  /** The user's own session token (manages its traders). */
  userJwt: string;
  /** The user's worker key (claim worker = true: read-only on traders). */
  workerJwt: string;
}

export async function createTestUser(stack: StackHandle): Promise<TestUser> {
  const id = await createUser(stack);
  return {
    id,
    userJwt: mintUserJwt(id, stack.jwtSecret),
    workerJwt: mintUserJwt(id, stack.jwtSecret, { worker: true }),
  };
}

/** supabase-js as the worker and the web app use it, authenticated by `key`. */
export function clientFor(stack: StackHandle, key: string): SupabaseClient {
  return createClient(stack.supabaseUrl, key, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: ws as never },
  });
}

export interface TraderSeed {
  userId: string;
  name?: string;
  enabled?: boolean;
  executionMode?: 'browser' | 'cloud' | 'both';
  /** Stored as jsonb; pass a string to store a JSON string (as the web app sometimes did). */
  filter?: unknown;
  createdAt?: Date;
}

export const SIMPLE_FILTER = { code: 'return true;', refreshInterval: '1m', requiredTimeframes: ['1m'] };

/** Insert a trader as superuser (bypassing RLS); returns its id. */
export async function insertTrader(stack: StackHandle, seed: TraderSeed): Promise<string> {
  const filter = seed.filter ?? SIMPLE_FILTER;
  const [row] = await stack.sql<{ id: string }[]>`
    insert into public.traders (user_id, name, enabled, execution_mode, filter, created_at)
    values (
      ${seed.userId},
      ${seed.name ?? 'trader'},
      ${seed.enabled ?? true},
      ${seed.executionMode ?? 'cloud'},
      ${stack.sql.json(filter as postgres.JSONValue)},
      ${seed.createdAt ?? new Date()}
    )
    returning id`;
  return row!.id;
}
