// Database faults the local stack lacks: slow signal writes and a batch insert that fails half-way, both inside PostgreSQL.
import type postgres from 'postgres';

/**
 * A row trigger on `public.signals` reads one control row. `slow_ms` makes every inserted row wait;
 * `fail_until` makes the second row of a multi-row insert raise `deadlock_detected` (PostgREST answers
 * 500, a transient failure) until a non-transactional sequence passes it: the statement has already
 * inserted its first row when it fails, and the whole batch rolls back, as a real half-way failure does.
 * Installed only into the suite's own stack.
 */
export async function installDbFaults(sql: postgres.Sql): Promise<void> {
  await sql.unsafe(`
    create schema if not exists chaos;
    create sequence if not exists chaos.half_batch_failures;
    create table if not exists chaos.write_faults (
      id int primary key default 1,
      slow_ms int not null default 0,
      fail_until bigint not null default 0
    );
    insert into chaos.write_faults (id) values (1) on conflict do nothing;
    create or replace function chaos.signal_fault() returns trigger language plpgsql security definer set search_path = '' as $$
    declare
      control chaos.write_faults;
      row_number int;
    begin
      select * into control from chaos.write_faults where id = 1;
      if control.slow_ms > 0 then perform pg_sleep(control.slow_ms / 1000.0); end if;
      row_number := coalesce(nullif(current_setting('chaos.rows', true), ''), '0')::int + 1;
      perform set_config('chaos.rows', row_number::text, true);
      if row_number = 2 and control.fail_until > 0 then
        if nextval('chaos.half_batch_failures') <= control.fail_until then
          raise exception 'chaos: batch write failed half-way' using errcode = '40P01';
        end if;
      end if;
      return new;
    end $$;
    drop trigger if exists chaos_signal_fault on public.signals;
    create trigger chaos_signal_fault before insert on public.signals for each row execute function chaos.signal_fault();
  `);
}

export async function setSlowWrites(sql: postgres.Sql, ms: number): Promise<void> {
  await sql`update chaos.write_faults set slow_ms = ${ms} where id = 1`;
}

/** The next `count` multi-row signal inserts fail after their first row. */
export async function failHalfBatches(sql: postgres.Sql, count: number): Promise<void> {
  const [row] = await sql<{ value: string }[]>`select case when is_called then last_value else last_value - 1 end as value from chaos.half_batch_failures`;
  await sql`update chaos.write_faults set fail_until = ${Number(row!.value) + count} where id = 1`;
}

/** How many half-way failures have fired so far. */
export async function halfBatchFailuresFired(sql: postgres.Sql): Promise<number> {
  const [row] = await sql<{ value: string; until: string }[]>`
    select case when s.is_called then s.last_value else 0 end as value, f.fail_until as until
    from chaos.half_batch_failures s, chaos.write_faults f where f.id = 1`;
  return Math.min(Number(row!.value), Number(row!.until));
}
