// Runs the README's examples (```sh blocks whose first line is `# example: …`) against the built CLI and the embedded bucket.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';

const repo = resolve(import.meta.dirname, '../..');
const readme = readFileSync(join(repo, 'README.md'), 'utf8');
const examples = [...readme.matchAll(/```sh\n(# example: ([^\n]+)\n[\s\S]*?)```/g)].map((m) => ({ title: m[2]!, script: m[1]! }));

/** what each example must print (a substring of stdout+stderr), so an example that silently does nothing fails. */
const expected: Record<string, string[]> = {
  'push, change, pull into a second folder': ['step 1\nstep 2', 'pending    none'],
  'dry runs, excludes, machine output': ['"type":"summary"', 'ckpt/a.pt'],
  'a conflict is reported, both sides are left untouched (exit 3)': ['exit 3', 'from b'],
};

describe('README examples', () => {
  let scratch: string;
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'swm-readme-'));
  });
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('finds the examples', () => {
    expect(examples.map((e) => e.title).sort()).toEqual(Object.keys(expected).sort());
  });

  for (const example of examples) {
    it(example.title, () => {
      const dir = mkdtempSync(join(scratch, 'ex-'));
      const env = {
        PATH: process.env.PATH,
        HOME: dir,
        XDG_DATA_HOME: join(dir, '.local/share'),
        XDG_CONFIG_HOME: join(dir, '.config'),
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      };
      const script = `set -e\nswm() { node ${JSON.stringify(join(repo, 'dist/cli/main.js'))} "$@"; }\n${example.script}`;
      const run = spawnSync('bash', ['-c', script], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 });
      const output = run.stdout + run.stderr;
      expect(run.status, output).toBe(0);
      for (const text of expected[example.title] ?? []) expect(output).toContain(text);
    });
  }
});
