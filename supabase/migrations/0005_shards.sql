-- Sharding: a user whose traders outgrow one machine runs several, each with SHARD_INDEX of SHARD_COUNT and its own
-- share of the traders (a stable hash of the trader id, src/traders/shard.ts).
--
-- worker_status becomes one row per shard, keyed by (user_id, shard_index); shard_count is the count that shard was
-- started with, so an operator sees a machine still running an old count. The crash-loop mark (probation, 0004) lives
-- in the same row, so it is per shard too: one shard's crash never puts the user's other shards on probation.
-- Existing rows become shard 0 of 1, which is what every machine started before this migration is.
--
-- worker_machines.shard_count is how many machines the platform wants for the user (written by the service role);
-- the fleet controller keeps exactly one machine per shard index in the user's app.
--
-- Apply this migration and roll out the worker image that writes shard_index together, migration first: a worker
-- image from before it upserts worker_status on user_id alone, which no longer names a unique key (SQLSTATE 42P10),
-- so it cannot write its status until it is updated.

alter table public.worker_status add column if not exists shard_index integer not null default 0;
alter table public.worker_status add column if not exists shard_count integer not null default 1;

alter table public.worker_status drop constraint if exists worker_status_shard_bounded;
alter table public.worker_status add constraint worker_status_shard_bounded
  check (shard_count between 1 and 64 and shard_index >= 0 and shard_index < shard_count);

alter table public.worker_status drop constraint if exists worker_status_pkey;
alter table public.worker_status add constraint worker_status_pkey primary key (user_id, shard_index);

-- Row-level security is unchanged: the policies of 0001 compare user_id with auth.uid(), so a user reads every shard
-- row of its own and a worker key writes only rows of its own user, whichever shard it runs.

alter table public.worker_machines add column if not exists shard_count integer not null default 1;

alter table public.worker_machines drop constraint if exists worker_machines_shard_count_bounded;
alter table public.worker_machines add constraint worker_machines_shard_count_bounded check (shard_count between 1 and 64);
