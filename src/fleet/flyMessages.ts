// Wire shapes of the Fly Machines API (https://fly.io/docs/machines/api/), validated at the edge; only the fields the
// fleet reads are required, everything else passes through untouched.
import { z } from 'zod';

/** https://fly.io/docs/machines/api/apps-resource/ — GET /v1/apps/{app_name}. */
export const flyApp = z.looseObject({
  name: z.string(),
  id: z.string().optional(),
  status: z.string().optional(),
  organization: z.looseObject({ slug: z.string().optional(), name: z.string().optional() }).optional(),
});
export type FlyApp = z.infer<typeof flyApp>;

export const flyGuest = z.looseObject({
  cpu_kind: z.string().optional(),
  cpus: z.number().optional(),
  memory_mb: z.number().optional(),
});

/** The machine config object (image, env, guest, restart, metadata); https://fly.io/docs/machines/api/machines-resource/#machine-config-object-properties. */
export const flyMachineConfig = z.looseObject({
  image: z.string(),
  env: z.record(z.string(), z.string()).optional(),
  guest: flyGuest.optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  restart: z.looseObject({ policy: z.string().optional() }).optional(),
});
export type FlyMachineConfig = z.infer<typeof flyMachineConfig>;

/**
 * Machine states as documented: created, starting, started, stopping, stopped, replacing, destroying, destroyed,
 * suspending, suspended, failed. Kept as a string: a state Fly adds later must not break the controller.
 */
export const flyMachine = z.looseObject({
  id: z.string(),
  name: z.string().optional(),
  state: z.string(),
  region: z.string(),
  instance_id: z.string().optional(),
  config: flyMachineConfig,
  created_at: z.string().optional(),
  updated_at: z.string().optional(),
});
export type FlyMachine = z.infer<typeof flyMachine>;

export const flyMachineList = z.array(flyMachine);

/** POST /v1/apps/{app}/machines/{id}/lease: `{ status, data: { nonce, expires_at, owner, description } }`. */
export const flyLease = z.looseObject({
  status: z.string().optional(),
  data: z.looseObject({
    nonce: z.string(),
    expires_at: z.number(),
    owner: z.string().optional(),
    description: z.string().optional(),
  }),
});
export type FlyLease = z.infer<typeof flyLease>;

/** POST /v1/apps/{app}/secrets/{name}: the app's new secrets version (values are never returned). */
export const flySecretsUpdate = z.looseObject({ version: z.number().optional() });

/** Error bodies: `{ "error": "..." }`. */
export const flyError = z.looseObject({ error: z.string() });
