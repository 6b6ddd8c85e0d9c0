// The README's Logs table is the operator's index of log events: every event the code in src/ logs is documented there,
// and every event documented there is logged somewhere. Read from the source's syntax tree, not from a run, so an event
// on a rare path (a ban, a thread that will not restart) counts as much as `tick`.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../dev/localStack.ts';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** The `const name = …` initializer visible from `node`: the nearest enclosing block or file that declares it. */
function constInitializer(name: string, node: ts.Node): ts.Expression | undefined {
  for (let scope: ts.Node | undefined = node.parent; scope !== undefined; scope = scope.parent) {
    if (!ts.isBlock(scope) && !ts.isSourceFile(scope)) continue;
    for (const statement of scope.statements) {
      if (!ts.isVariableStatement(statement)) continue;
      for (const declaration of statement.declarationList.declarations) {
        if (ts.isIdentifier(declaration.name) && declaration.name.text === name) return declaration.initializer;
      }
    }
  }
  return undefined;
}

/** Every string an `event` value can take, as far as plain syntax shows it; empty when it cannot tell. */
function eventNames(expression: ts.Expression): string[] {
  if (ts.isStringLiteral(expression) || ts.isNoSubstitutionTemplateLiteral(expression)) return [expression.text];
  if (ts.isParenthesizedExpression(expression) || ts.isAsExpression(expression) || ts.isSatisfiesExpression(expression)) {
    return eventNames(expression.expression);
  }
  if (ts.isConditionalExpression(expression)) return [...eventNames(expression.whenTrue), ...eventNames(expression.whenFalse)];
  if (ts.isIdentifier(expression)) {
    const initializer = constInitializer(expression.text, expression);
    return initializer === undefined ? [] : eventNames(initializer);
  }
  // `EVENT_OF[kind]`: any of the table's values.
  if (ts.isElementAccessExpression(expression) && ts.isIdentifier(expression.expression)) {
    let table = constInitializer(expression.expression.text, expression);
    while (table !== undefined && (ts.isAsExpression(table) || ts.isSatisfiesExpression(table))) table = table.expression;
    if (table === undefined || !ts.isObjectLiteralExpression(table)) return [];
    return table.properties.flatMap((property) => (ts.isPropertyAssignment(property) ? eventNames(property.initializer) : []));
  }
  return [];
}

interface LoggedEvents {
  names: Set<string>;
  /** `event` values the syntax could not resolve, by place: each must become readable (a literal, a ternary, a const table). */
  unreadable: string[];
}

/** The `event` field of every object literal in src/ (log calls are the only objects with one). */
function loggedEvents(): LoggedEvents {
  const names = new Set<string>();
  const unreadable: string[] = [];
  for (const path of sourceFiles(join(REPO_ROOT, 'src'))) {
    const file = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      const value =
        ts.isPropertyAssignment(node) && ts.isIdentifier(node.name) && node.name.text === 'event'
          ? node.initializer
          : ts.isShorthandPropertyAssignment(node) && node.name.text === 'event'
            ? node.name
            : undefined;
      if (value !== undefined) {
        const found = eventNames(value);
        if (found.length === 0) {
          const { line } = file.getLineAndCharacterOfPosition(node.getStart());
          unreadable.push(`${relative(REPO_ROOT, path)}:${line + 1}`);
        }
        for (const name of found) names.add(name);
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
  }
  return { names, unreadable };
}

/** The backticked names in the first column of the README's Logs table. */
function documentedEvents(): Set<string> {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n### Logs\n');
  expect(start).toBeGreaterThan(-1);
  const end = readme.indexOf('\n#', start + 1);
  const names = new Set<string>();
  for (const line of readme.slice(start, end === -1 ? undefined : end).split('\n')) {
    if (!line.startsWith('| `')) continue;
    const firstCell = line.split('|')[1]!;
    for (const match of firstCell.matchAll(/`([a-z_]+)`/g)) names.add(match[1]!);
  }
  return names;
}

describe('README log events', () => {
  const logged = loggedEvents();
  const documented = documentedEvents();

  it('reads every event name the code logs from its source', () => {
    expect(logged.unreadable).toEqual([]);
    // The reader finds the events of every layer, so an empty or partial scan fails here, not as a vacuous match.
    for (const name of ['boot', 'tick', 'tick_skipped', 'rest_banned', 'trader_error', 'fleet_pass']) expect(logged.names).toContain(name);
  });

  it('documents every event the code logs', () => {
    expect([...logged.names].filter((name) => !documented.has(name)).sort()).toEqual([]);
  });

  it('documents no event the code never logs', () => {
    expect([...documented].filter((name) => !logged.names.has(name)).sort()).toEqual([]);
  });
});
