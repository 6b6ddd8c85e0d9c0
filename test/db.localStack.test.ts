// The local stack itself: persistent data survives a restart, nothing keeps running after stop, and the operators' JWT CLI.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, startLocalStack } from '../dev/localStack.ts';
import { clientFor, createTestUser, insertTrader } from './support/stack.ts';

const run = promisify(execFile);
const folders: string[] = [];

afterAll(async () => {
  await Promise.all(folders.map((folder) => rm(folder, { recursive: true, force: true })));
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function decodeClaims(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('the local stack', () => {
  it('keeps data, secret and applied migrations across a restart of a persistent folder', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'screener-persistent-'));
    folders.push(dataDir);
    const first = await startLocalStack({ dataDir, persistent: true });
    const user = await createTestUser(first);
    const trader = await insertTrader(first, { userId: user.id, name: 'kept' });
    const secret = first.jwtSecret;
    await first.stop();

    const second = await startLocalStack({ dataDir, persistent: true });
    try {
      expect(second.jwtSecret).toBe(secret);
      const migrations = await second.sql`select version from supabase_migrations.schema_migrations`;
      expect(migrations.length).toBeGreaterThan(0);
      // The old user's token still works: same secret, same rows, through the new PostgREST.
      const { data } = await clientFor(second, user.workerJwt).from('traders').select('id,name');
      expect(data).toEqual([{ id: trader, name: 'kept' }]);
    } finally {
      await second.stop();
    }
    expect(existsSync(join(dataDir, 'pgdata', 'PG_VERSION'))).toBe(true);
  });

  it('stops every process it started and removes its temporary folder', async () => {
    const stack = await startLocalStack();
    const postmasterPid = Number((await readFile(join(stack.dataDir, 'pgdata', 'postmaster.pid'), 'utf8')).split('\n')[0]);
    const postgrestPid = Number(await readFile(join(stack.dataDir, 'run', 'postgrest.pid'), 'utf8'));
    expect(alive(postmasterPid)).toBe(true);
    expect(alive(postgrestPid)).toBe(true);

    await stack.stop();

    expect(alive(postmasterPid)).toBe(false);
    expect(alive(postgrestPid)).toBe(false);
    expect(existsSync(stack.dataDir)).toBe(false);
    await expect(fetch(`${stack.restUrl}/traders`)).rejects.toThrow();
  });
});

describe('mint-jwt', () => {
  const user = '6b1f0c2e-8d7a-4c1e-9a55-3f0d2b9e7c11';
  const secret = 'an-operator-project-secret-of-32-chars-or-more';

  it('prints a long-lived worker JWT for the user, signed with the secret from the environment', async () => {
    const { stdout } = await run(process.execPath, ['dev/mintJwt.ts', '--user', user, '--days', '30'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH, SUPABASE_JWT_SECRET: secret },
    });
    const jwt = stdout.trim();
    const claims = decodeClaims(jwt);
    expect(claims).toMatchObject({ sub: user, role: 'authenticated', worker: true });
    expect((claims.exp as number) - (claims.iat as number)).toBe(30 * 86_400);
    const { mintWorkerJwt } = await import('../dev/jwt.ts');
    expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(jwt).toBe(mintWorkerJwt(user, secret, { days: 30, nowSec: claims.iat as number, jti: claims.jti as string }));
  });

  it('refuses to run without the secret variable, naming it', async () => {
    const failure = await run(process.execPath, ['dev/mintJwt.ts', '--user', user, '--secret-env', 'MY_SECRET'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH },
    }).catch((error: { code: number; stderr: string }) => error);
    expect(failure).toMatchObject({ code: 1, stderr: expect.stringContaining('MY_SECRET is not set') });
  });
});
