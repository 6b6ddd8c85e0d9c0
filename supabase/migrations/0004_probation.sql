-- Crash-loop protection: what a worker was screening when its process died, so the next boot can charge the cause.
--
-- worker_status.probation is written only by a boot that follows an abnormal exit (the row's state was not
-- 'stopped'): before screening each trader alone it records { traderId, cleared[] }, committed before the trader's
-- code runs; it is cleared (null) once every trader has run alone. A process that dies while the mark names a
-- trader leaves that trader as the suspect: the next boot disables it in trader_status with the reason and resumes
-- the others (src/orchestration/Probation.ts). The worker's ordinary status writes never include the column, so an
-- upsert of the rest of the row leaves it as it is.

alter table public.worker_status add column if not exists probation jsonb;

alter table public.worker_status drop constraint if exists worker_status_probation_bounded;
alter table public.worker_status add constraint worker_status_probation_bounded
  check (probation is null or (jsonb_typeof(probation) = 'object' and octet_length(probation::text) <= 65536)) not valid;

-- trader_status.last_warning: the latest off-contract result a filter returned (read by its truthiness, as the
-- browser reads it): recorded for the user, never counted as a failure.
alter table public.trader_status add column if not exists last_warning text;

alter table public.trader_status drop constraint if exists trader_status_last_warning_bounded;
alter table public.trader_status add constraint trader_status_last_warning_bounded
  check (last_warning is null or char_length(last_warning) <= 2000) not valid;
