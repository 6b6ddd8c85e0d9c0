// The image runs the worker as an unprivileged user who cannot change its code, with no secret baked in.
// Parsed from the Dockerfile (no Docker here); complements test/deploy.test.ts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../dev/workerProcess.ts';

interface Instruction {
  keyword: string;
  args: string;
}

/** Instructions per stage: comments dropped, continuation lines joined, keywords upper-cased. */
function stagesOf(text: string): Instruction[][] {
  const stages: Instruction[][] = [];
  const logical = text
    .split('\n')
    .filter((line) => !line.trim().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  for (const line of logical) {
    const [keyword, ...rest] = line.split(/\s+/);
    const instruction = { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
    if (instruction.keyword === 'FROM') stages.push([]);
    stages.at(-1)?.push(instruction);
  }
  return stages;
}

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((line) => line.trim());
const stages = stagesOf(dockerfile);
const runtime = stages.at(-1)!;
const index = (keyword: string) => runtime.findIndex((instruction) => instruction.keyword === keyword);
const lastIndex = (keyword: string) => runtime.map((instruction) => instruction.keyword).lastIndexOf(keyword);

describe('the runtime image', () => {
  it('switches to a non-root user before it starts the worker, and never back', () => {
    const users = runtime.filter((instruction) => instruction.keyword === 'USER').map((instruction) => instruction.args.split(':')[0]!);
    expect(users.length).toBeGreaterThan(0);
    for (const user of users) expect(user).not.toMatch(/^(root|0|\$\{?\w+\}?)$/);
    expect(lastIndex('USER')).toBeLessThan(lastIndex('CMD'));
    // Nothing after the switch needs root (a RUN there would run as the user, or need it back).
    expect(runtime.slice(index('USER')).filter((instruction) => instruction.keyword === 'RUN')).toEqual([]);
  });

  it('starts node itself in exec form: no shell or npm in between to swallow SIGTERM', () => {
    expect(index('ENTRYPOINT')).toBe(-1);
    const cmd = runtime[lastIndex('CMD')]!.args;
    const argv = JSON.parse(cmd) as string[];
    expect(argv[0]).toBe('node');
    expect(argv.join(' ')).not.toMatch(/\b(sh|bash|npm|npx)\b/);
  });

  it('leaves the code owned by root, so even a sandbox escape cannot rewrite the worker', () => {
    for (const instruction of runtime) {
      if (instruction.keyword === 'COPY' || instruction.keyword === 'ADD') expect(instruction.args).not.toMatch(/--chown|--chmod/);
      if (instruction.keyword === 'RUN') expect(instruction.args).not.toMatch(/\bchown\b|\bchmod\b.*(777|o\+w|a\+w)/);
    }
  });

  it('bakes in no secret: no key-like ENV or ARG, no .env or local state in the build context', () => {
    for (const stage of stages) {
      for (const instruction of stage) {
        if (instruction.keyword === 'ENV' || instruction.keyword === 'ARG') {
          expect(instruction.args).not.toMatch(/KEY|TOKEN|SECRET|PASSWORD|JWT|USER_ID|SUPABASE_URL/i);
        }
        expect(`${instruction.keyword} ${instruction.args}`).not.toMatch(/eyJ[A-Za-z0-9_-]{5,}\.|sb_secret_/);
        if (instruction.keyword === 'COPY' || instruction.keyword === 'ADD') {
          // Sources are the manifests, the TypeScript config, src/ and the build stage's output: nothing else.
          const sources = instruction.args.split(/\s+/).filter((arg) => !arg.startsWith('--')).slice(0, -1);
          for (const source of sources) expect(source).toMatch(/^(package(-lock)?\.json|tsconfig(\.build)?\.json|src|\/app\/dist)$/);
        }
      }
    }
    for (const pattern of ['.env', '.env.*', '.local', '.tmp', '.git', 'node_modules']) expect(dockerignore).toContain(pattern);
  });
});
