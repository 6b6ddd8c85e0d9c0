// replay_requests and replay_results over supabase-js (supabase/migrations/0006_replay.sql): the queue ReplayService serves.
import type { SupabaseClient } from '@supabase/supabase-js';
import type { Clock } from '../clock.ts';
import type { Trader } from '../domain.ts';
import type { ReplayJob, ReplayOutcome, ReplayRequestQueue, ReplayResult } from '../replay/ReplayService.ts';
import { toDatabaseError } from './dbErrors.ts';
import { parseTraderRow, TRADER_COLUMNS, type TraderRow } from './parse.ts';

/** A replay_requests row as PostgREST returns it. */
interface ReplayRequestRow {
  id: string;
  kind: 'request' | 'lookback' | 'shadow';
  code_hash: string | null;
  previous_code_hash: string | null;
  user_id: string;
  trader_id: string | null;
  filter: unknown;
  symbols: unknown;
  range_from: string;
  range_to: string;
}

const REQUEST_COLUMNS = 'id,kind,code_hash,previous_code_hash,user_id,trader_id,filter,symbols,range_from,range_to';
/** Results per insert request. */
const RESULT_CHUNK = 500;
/** Pending requests looked at per claim: another machine (a shard) may take one first. */
const CLAIM_CANDIDATES = 5;

export class ReplayRequests implements ReplayRequestQueue {
  private readonly client: SupabaseClient;
  private readonly userId: string;
  private readonly clock: Clock;

  constructor(options: { client: SupabaseClient; userId: string; clock: Clock }) {
    this.client = options.client;
    this.userId = options.userId;
    this.clock = options.clock;
  }

  async abandon(machineId: string, reason: string): Promise<number> {
    const { data, error, status } = await this.client
      .from('replay_requests')
      .update({ status: 'failed', reason, finished_at: this.iso() })
      .eq('user_id', this.userId)
      .eq('machine_id', machineId)
      .eq('status', 'running')
      .select('id');
    if (error) throw toDatabaseError('abandon replay requests', error, status);
    return (data ?? []).length;
  }

  async claimNext(machineId: string): Promise<ReplayJob | null> {
    const { data, error, status } = await this.client
      .from('replay_requests')
      .select(REQUEST_COLUMNS)
      .eq('user_id', this.userId)
      .eq('status', 'pending')
      // A shadow waits for the candles after its edit to close.
      .or(`kind.neq.shadow,range_to.lte.${this.iso()}`)
      .order('created_at', { ascending: true })
      .limit(CLAIM_CANDIDATES);
    if (error) throw toDatabaseError('read replay requests', error, status);
    for (const candidate of (data ?? []) as ReplayRequestRow[]) {
      // Taken only if still pending when the update lands: of two machines asking at once, one gets it.
      const claim = await this.client
        .from('replay_requests')
        .update({ status: 'running', machine_id: machineId, started_at: this.iso() })
        .eq('id', candidate.id)
        .eq('status', 'pending')
        .select(REQUEST_COLUMNS);
      if (claim.error) throw toDatabaseError('claim a replay request', claim.error, claim.status);
      const row = (claim.data ?? [])[0] as ReplayRequestRow | undefined;
      if (row !== undefined) return this.job(row);
    }
    return null;
  }

  async enqueueLookback(trader: Trader, symbols: string[], from: number, to: number): Promise<'queued' | 'exists'> {
    return this.queue('queue a look-back', { kind: 'lookback', trader_id: trader.id, code_hash: trader.codeHash }, symbols, from, to);
  }

  async enqueueShadow(previous: Trader, current: Trader, symbols: string[], from: number, to: number): Promise<'queued' | 'exists'> {
    // Both codes as versions first: the shadow reads them from there, whatever runs meanwhile.
    const versions = [previous, current].map((trader) => ({ user_id: this.userId, code_hash: trader.codeHash, trader_id: trader.id, code: trader.filter.code }));
    const written = await this.client.from('trader_versions').upsert(versions, { onConflict: 'user_id,code_hash', ignoreDuplicates: true });
    if (written.error) throw toDatabaseError('write the versions of a shadow', written.error, written.status);
    return this.queue('queue a shadow', { kind: 'shadow', trader_id: current.id, code_hash: current.codeHash, previous_code_hash: previous.codeHash }, symbols, from, to);
  }

  /** Insert a request row of this user; 'exists' when its unique index says one was queued already. */
  private async queue(
    what: string,
    request: { kind: 'lookback' | 'shadow'; trader_id: string; code_hash: string; previous_code_hash?: string },
    symbols: string[],
    from: number,
    to: number,
  ): Promise<'queued' | 'exists'> {
    const { error, status } = await this.client.from('replay_requests').insert({
      ...request,
      user_id: this.userId,
      symbols,
      range_from: new Date(from).toISOString(),
      range_to: new Date(to).toISOString(),
    });
    // One look-back per trader and code version, one shadow per edit (unique indexes): an earlier run, or another
    // shard, queued it.
    if (error?.code === '23505') return 'exists';
    if (error) throw toDatabaseError(what, error, status);
    return 'queued';
  }

  async writeResults(job: ReplayJob, results: ReplayResult[]): Promise<void> {
    const rows = results.map((result) => ({
      request_id: job.id,
      user_id: this.userId,
      trader_id: job.traderId,
      symbol: result.symbol,
      interval: result.interval,
      candle_open_time: result.candle_open_time,
      price: result.price,
      matched_conditions: result.conditions,
      filter_values: result.values ?? null,
      code_hash: result.variant === 'old' && job.previous?.ok ? job.previous.trader.codeHash : job.trader.ok ? job.trader.trader.codeHash : null,
      variant: result.variant ?? 'replay',
    }));
    for (let start = 0; start < rows.length; start += RESULT_CHUNK) {
      const { error, status } = await this.client
        .from('replay_results')
        .upsert(rows.slice(start, start + RESULT_CHUNK), { onConflict: 'request_id,variant,symbol,interval,candle_open_time', ignoreDuplicates: true });
      if (error) throw toDatabaseError('write replay results', error, status);
    }
  }

  async finish(job: ReplayJob, outcome: ReplayOutcome): Promise<void> {
    const { error, status } = await this.client
      .from('replay_requests')
      .update({ status: outcome.status, reason: outcome.reason?.slice(0, 2000) ?? null, summary: outcome.summary, finished_at: this.iso() })
      .eq('id', job.id);
    if (error) throw toDatabaseError('finish a replay request', error, status);
  }

  /** The request as a job: its trader read now (as its row stands), or its own filter as a trader that never existed. */
  private async job(row: ReplayRequestRow): Promise<ReplayJob> {
    const base = { id: row.id, kind: row.kind, traderId: row.trader_id, symbols: parseSymbols(row.symbols), from: Date.parse(row.range_from), to: Date.parse(row.range_to) };
    let trader: TraderRow;
    if (row.trader_id !== null) {
      const { data, error, status } = await this.client.from('traders').select(TRADER_COLUMNS).eq('id', row.trader_id).maybeSingle<TraderRow>();
      if (error) throw toDatabaseError('read the trader of a replay request', error, status);
      if (data === null) return { ...base, trader: { ok: false, reason: `trader ${row.trader_id} not found` } };
      trader = data;
    } else {
      const now = this.iso();
      trader = { id: row.id, user_id: row.user_id, name: `replay ${row.id}`, enabled: true, execution_mode: 'cloud', filter: row.filter, created_at: now, updated_at: now };
    }
    const parsed = parseTraderRow(trader);
    if (row.kind !== 'shadow' || !parsed.ok) return { ...base, trader: parsed.ok ? { ok: true, trader: parsed.trader } : { ok: false, reason: parsed.rejected.reason } };
    // A shadow runs the two versions it names, with the row's other settings (timeframes, helpers) as they stand.
    return { ...base, trader: await this.version(parsed.trader, row.code_hash), previous: await this.version(parsed.trader, row.previous_code_hash) };
  }

  private async version(trader: Trader, hash: string | null): Promise<{ ok: true; trader: Trader } | { ok: false; reason: string }> {
    const { data, error, status } = await this.client.from('trader_versions').select('code').eq('user_id', this.userId).eq('code_hash', hash ?? '').maybeSingle<{ code: string }>();
    if (error) throw toDatabaseError('read a trader version', error, status);
    if (data === null) return { ok: false, reason: `version ${hash} not found in trader_versions` };
    return { ok: true, trader: { ...trader, filter: { ...trader.filter, code: data.code }, codeHash: hash! } };
  }

  private iso(): string {
    return new Date(this.clock.now()).toISOString();
  }
}

/** The database checked them (1 to 20 symbols); anything else is no symbol at all. */
function parseSymbols(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((symbol): symbol is string => typeof symbol === 'string') : [];
}
