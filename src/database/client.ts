// The supabase-js client as the worker uses it: no session handling, a request timeout, ws for realtime on Node.
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import ws from 'ws';

/**
 * supabase-js waits forever on a request whose connection hangs; a timeout turns that into a
 * transient failure the retry loop understands.
 */
export function createWorkerClient(supabaseUrl: string, supabaseKey: string, requestTimeoutMs: number): SupabaseClient {
  const timedFetch: typeof fetch = (input, init) => {
    const timeout = AbortSignal.timeout(requestTimeoutMs);
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    return fetch(input, { ...init, signal });
  };
  return createClient(supabaseUrl, supabaseKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    // supabase-js's realtime client needs a WebSocket implementation on Node.
    realtime: { transport: ws as never },
    global: { fetch: timedFetch },
  });
}
