// Operators' CLI: print a user's worker JWT, signed with the project's JWT secret read from the environment.
//   npm run mint-jwt -- --user <uuid> [--secret-env SUPABASE_JWT_SECRET] [--days 365]
import { parseArgs } from 'node:util';
import { keyIdOf } from '../src/fleet/workerKey.ts';
import { mintWorkerJwt } from './jwt.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function fail(message: string): never {
  process.stderr.write(`mint-jwt: ${message}\n`);
  process.exit(1);
}

function main(): void {
  const { values } = parseArgs({
    options: {
      user: { type: 'string' },
      'secret-env': { type: 'string', default: 'SUPABASE_JWT_SECRET' },
      days: { type: 'string', default: '365' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: npm run mint-jwt -- --user <uuid> [--secret-env SUPABASE_JWT_SECRET] [--days 365]\n');
    return;
  }
  const userId = values.user;
  if (userId === undefined || !UUID.test(userId)) fail('--user must be the user id (a uuid)');
  const days = Number(values.days);
  if (!Number.isInteger(days) || days < 1 || days > 3650) fail('--days must be an integer between 1 and 3650');
  const secretVariable = values['secret-env'];
  // The secret comes from the environment, never the command line, so it stays out of shell history.
  const secret = process.env[secretVariable];
  if (secret === undefined || secret === '') fail(`${secretVariable} is not set (the project's JWT secret: Supabase dashboard → Project Settings → API)`);
  if (secret.length < 32) fail(`${secretVariable} is shorter than 32 characters, so it is not a Supabase JWT secret`);
  const token = mintWorkerJwt(userId.toLowerCase(), secret, { days });
  process.stdout.write(`${token}\n`);
  // The key's id on stderr (stdout stays the bare token for $(...)): revoking it is an insert into revoked_worker_keys.
  process.stderr.write(`mint-jwt: key id ${keyIdOf(token) ?? '?'}\n`);
}

main();
