// The fleet controller's environment, parsed once by one zod schema. The JWT secret and tokens come from here only,
// never from the command line (where they would land in shell history and process listings).
import { hostname } from 'node:os';
import { z } from 'zod';
import { httpUrl, integer, parseEnvironment } from '../config.ts';

const secret = (min: number) =>
  z.string({ error: 'is required' }).min(min, { error: `is too short (at least ${min} characters)` }).refine((value) => !/\s/.test(value), {
    error: 'must not contain whitespace',
  });

const schema = z.object({
  FLY_API_TOKEN: secret(10),
  /** Fly's documented name for the Machines API base (https://fly.io/docs/machines/api/working-with-machines-api/). */
  FLY_API_HOSTNAME: httpUrl.default('https://api.machines.dev'),
  FLY_ORG: z.string({ error: 'is required' }).regex(/^[a-z0-9-]{1,63}$/, { error: 'must be an organization slug' }),
  SUPABASE_URL: httpUrl,
  SUPABASE_SERVICE_KEY: secret(20),
  SUPABASE_JWT_SECRET: secret(32),
  FLEET_APP_PREFIX: z.string().regex(/^[a-z][a-z0-9-]{0,20}$/, { error: 'must be lower-case letters, digits and dashes (at most 21)' }).default('screener'),
  FLEET_CONCURRENCY: integer(1, 256).default(16),
  FLEET_WAIT_TIMEOUT_S: integer(1, 600).default(60),
  FLEET_READY_TIMEOUT_S: integer(1, 3600).default(300),
  FLEET_KEY_DAYS: integer(1, 3650).default(365),
  FLEET_MAX_PASSES: integer(1, 100).default(5),
  FLEET_CLAIM_TTL_S: integer(30, 3600).default(600),
  FLEET_INTERVAL_S: integer(5, 3600).default(60),
  FLEET_CONTROLLER_ID: z.string().min(1).max(100).optional(),
  FLY_MACHINE_ID: z.string().min(1).max(100).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    error: 'must be one of fatal, error, warn, info, debug, trace, silent',
  }).default('info'),
});

export interface FleetConfig {
  flyApiToken: string;
  flyApiHostname: string;
  flyOrg: string;
  supabaseUrl: string;
  supabaseServiceKey: string;
  supabaseJwtSecret: string;
  /** Each user's Fly app is `<prefix>-<user id>`. */
  appPrefix: string;
  /** Users worked on at once. */
  concurrency: number;
  /** Longest wait for one machine state change. */
  waitTimeoutSec: number;
  /** Longest wait for a worker to report ready with a fresh heartbeat (rollout, rotate-key). */
  readyTimeoutSec: number;
  keyDays: number;
  /** Passes of `reconcile` before it gives up on the users still not converged. */
  maxPasses: number;
  /** How long a claim on a user keeps other controllers off it. */
  claimTtlSec: number;
  /** `reconcile --watch` period. */
  intervalSec: number;
  /** Names this controller in claims and leases. */
  controllerId: string;
  logLevel: string;
}

/** Throws one ConfigError naming every bad variable, never echoing a value. */
export function loadFleetConfig(env: Record<string, string | undefined> = process.env): FleetConfig {
  const values = parseEnvironment(schema, env);
  return {
    flyApiToken: values.FLY_API_TOKEN,
    flyApiHostname: values.FLY_API_HOSTNAME,
    flyOrg: values.FLY_ORG,
    supabaseUrl: values.SUPABASE_URL,
    supabaseServiceKey: values.SUPABASE_SERVICE_KEY,
    supabaseJwtSecret: values.SUPABASE_JWT_SECRET,
    appPrefix: values.FLEET_APP_PREFIX,
    concurrency: values.FLEET_CONCURRENCY,
    waitTimeoutSec: values.FLEET_WAIT_TIMEOUT_S,
    readyTimeoutSec: values.FLEET_READY_TIMEOUT_S,
    keyDays: values.FLEET_KEY_DAYS,
    maxPasses: values.FLEET_MAX_PASSES,
    claimTtlSec: values.FLEET_CLAIM_TTL_S,
    intervalSec: values.FLEET_INTERVAL_S,
    controllerId: values.FLEET_CONTROLLER_ID ?? `fleet-${values.FLY_MACHINE_ID ?? hostname()}-${process.pid}`,
    logLevel: values.LOG_LEVEL,
  };
}
