// loadConfig: one schema, errors that name every bad variable and never echo a secret.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { ConfigError } from '../src/errors.ts';

const KEY = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZXN0LXNlY3JldC12YWx1ZSJ9.c2lnbmF0dXJlLXZhbHVlLXRoYXQtaXMtc2VjcmV0';
const VALID = {
  USER_ID: '6b1f0c2e-8d7a-4c1e-9a55-3f0d2b9e7c11',
  SUPABASE_URL: 'https://project.supabase.co/',
  SUPABASE_KEY: KEY,
};

function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the documented defaults to a minimal environment', () => {
    const config = loadConfig({ ...VALID, USER_ID: VALID.USER_ID.toUpperCase() });
    expect(config).toMatchObject({
      userId: VALID.USER_ID,
      supabaseUrl: 'https://project.supabase.co',
      binanceWsUrl: 'wss://stream.binance.com:9443',
      binanceRestUrl: 'https://api.binance.com',
      port: 8080,
      logLevel: 'info',
      maxSymbols: 200,
      klineHistory: 500,
      symbols: undefined,
    });
  });

  it('names a missing USER_ID', () => {
    const error = configError({ ...VALID, USER_ID: undefined });
    expect(error.variable).toBe('USER_ID');
    expect(error.message).toBe('USER_ID is required (a uuid)');
  });

  it('treats an empty variable as unset: required ones are missing, optional ones take their default', () => {
    expect(configError({ ...VALID, SUPABASE_URL: '' }).message).toBe('SUPABASE_URL is required (the project URL, http(s)://…)');
    expect(loadConfig({ ...VALID, PORT: '', MACHINE_ID: '' })).toMatchObject({ port: 8080 });
  });

  it('names a USER_ID that is not a uuid without echoing it', () => {
    const error = configError({ ...VALID, USER_ID: 'alice-the-trader' });
    expect(error.message).toContain('USER_ID');
    expect(error.message).toContain('must be a uuid');
    expect(error.message).not.toContain('alice-the-trader');
  });

  it('names a missing SUPABASE_KEY', () => {
    const error = configError({ ...VALID, SUPABASE_KEY: undefined });
    expect(error.variable).toBe('SUPABASE_KEY');
    expect(error.message).toContain('SUPABASE_KEY is required');
  });

  it('names a malformed SUPABASE_KEY and never prints its value', () => {
    const broken = `${KEY} trailing`;
    const error = configError({ ...VALID, SUPABASE_KEY: broken });
    expect(error.message).toContain('SUPABASE_KEY');
    expect(error.message).not.toContain(KEY.slice(0, 20));
    expect(JSON.stringify(error)).not.toContain(KEY.slice(0, 20));
  });

  it('names a bad PORT with the reason', () => {
    expect(configError({ ...VALID, PORT: 'http' }).message).toBe('PORT must be a number');
    expect(configError({ ...VALID, PORT: '70000' }).message).toBe('PORT must be at most 65535');
  });

  it('runs every trader on one machine unless SHARD_INDEX and SHARD_COUNT say otherwise', () => {
    expect(loadConfig(VALID).shard).toEqual({ index: 0, count: 1 });
    expect(loadConfig({ ...VALID, SHARD_INDEX: '2', SHARD_COUNT: '3' }).shard).toEqual({ index: 2, count: 3 });
  });

  it('names a shard index that is not below the shard count, and a count out of range', () => {
    const beyond = configError({ ...VALID, SHARD_INDEX: '3', SHARD_COUNT: '3' });
    expect(beyond.variable).toBe('SHARD_INDEX');
    expect(beyond.message).toBe('SHARD_INDEX must be less than SHARD_COUNT (shards are numbered from 0)');
    expect(configError({ ...VALID, SHARD_INDEX: '1' }).message).toBe('SHARD_INDEX must be less than SHARD_COUNT (shards are numbered from 0)');
    expect(configError({ ...VALID, SHARD_COUNT: '0' }).message).toBe('SHARD_COUNT must be at least 1');
    expect(configError({ ...VALID, SHARD_COUNT: '65' }).message).toBe('SHARD_COUNT must be at most 64');
    expect(configError({ ...VALID, SHARD_INDEX: '-1', SHARD_COUNT: '2' }).message).toBe('SHARD_INDEX must be at least 0');
    expect(configError({ ...VALID, SHARD_COUNT: 'two' }).message).toBe('SHARD_COUNT must be a number');
  });

  it('keeps within 75 % of the machine unless MEMORY_BUDGET_MB sets the budget, and names a bad one', () => {
    expect(loadConfig(VALID).memoryBudgetBytes).toBeUndefined();
    expect(loadConfig({ ...VALID, MEMORY_BUDGET_MB: '384' }).memoryBudgetBytes).toBe(384 * 1024 * 1024);
    expect(configError({ ...VALID, MEMORY_BUDGET_MB: '512MB' }).message).toBe('MEMORY_BUDGET_MB must be a number');
    expect(configError({ ...VALID, MEMORY_BUDGET_MB: '32' }).message).toBe('MEMORY_BUDGET_MB must be at least 64');
    expect(configError({ ...VALID, MEMORY_BUDGET_MB: '0.5' }).message).toBe('MEMORY_BUDGET_MB must be an integer');
  });

  it('names every bad variable at once', () => {
    const error = configError({ SUPABASE_URL: 'ftp://nope', PORT: '-1' });
    expect(error.variable.split(', ').sort()).toEqual(['PORT', 'SUPABASE_KEY', 'SUPABASE_URL', 'USER_ID']);
    // One line, each variable named once, in the order of the schema.
    expect(error.message).not.toContain('\n');
    for (const variable of ['PORT', 'SUPABASE_KEY', 'SUPABASE_URL', 'USER_ID']) expect(error.message.split(variable)).toHaveLength(2);
    expect(error.message).toMatch(/^USER_ID is required \(a uuid\); SUPABASE_URL must be an http:\/\/ or https:\/\/ URL; /);
  });
});
