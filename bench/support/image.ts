// The runtime environment the production image sets (Dockerfile ENV of its last stage), so benchmarked workers run as deployed.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../dev/workerProcess.ts';

/**
 * `ENV` lines of the Dockerfile's final stage, both forms (`ENV A=1 B="x y"` and `ENV A 1`).
 * Variables the image sets for the runtime (NODE_OPTIONS, MALLOC_ARENA_MAX, NODE_ENV) change memory
 * and speed, so a figure taken without them would describe a process nobody runs.
 */
export function imageRuntimeEnv(dockerfile: string = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')): Record<string, string> {
  const lines = dockerfile.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  const lastFrom = lines.findLastIndex((line) => /^\s*FROM\s/i.test(line));
  const env: Record<string, string> = {};
  for (const line of lines.slice(lastFrom + 1)) {
    const match = /^\s*ENV\s+(.*)$/i.exec(line);
    if (!match) continue;
    const body = match[1]!.trim();
    if (!body.includes('=')) {
      const [key, ...value] = body.split(/\s+/);
      if (key) env[key] = value.join(' ');
      continue;
    }
    for (const pair of body.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)) {
      const raw = pair[2]!;
      env[pair[1]!] = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw.startsWith("'") ? raw.slice(1, -1) : raw;
    }
  }
  return env;
}
