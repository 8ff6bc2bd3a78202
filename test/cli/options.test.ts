// Strict option parsing: repeatable -x, unknown flags, values, positionals and positive integers.
import { describe, expect, it } from 'vitest';
import { PUSH_OPTIONS } from '../../src/cli/commands/push.js';
import { parseCommandOptions, positiveInteger, syncPositionals } from '../../src/cli/options.js';
import { parseSyncArgs } from '../../src/cli/sync-args.js';
import { SwmError } from '../../src/errors.js';

function usage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SwmError);
    expect((e as SwmError).exitCode).toBe(2);
    return (e as SwmError).message;
  }
  throw new Error('accepted');
}

describe('parseCommandOptions', () => {
  it('keeps every -x value in order, in all spellings', () => {
    const { values, positionals } = parseCommandOptions('swm sync push', ['demo', '-x', 'a', '--exclude', 'b', '-xc', '--exclude=d', 'ws'], PUSH_OPTIONS);
    expect(values.exclude).toEqual(['a', 'b', 'c', 'd']);
    expect(positionals).toEqual(['demo', 'ws']);
  });

  it('reads kebab-case booleans and string values', () => {
    const { values } = parseCommandOptions('swm sync push', ['demo', '--dry-run', '--skip-pull', '-b', 's3:x01', '--max-delete=7', '-fq'], PUSH_OPTIONS);
    expect(values).toMatchObject({ 'dry-run': true, 'skip-pull': true, bucket: 's3:x01', 'max-delete': '7', force: true, quiet: true });
  });

  it('treats everything after -- as positionals', () => {
    expect(parseCommandOptions('swm sync push', ['--', '-weird-id'], PUSH_OPTIONS).positionals).toEqual(['-weird-id']);
  });

  it('rejects unknown options by the name typed', () => {
    expect(usage(() => parseCommandOptions('swm sync push', ['demo', '--typo=1'], PUSH_OPTIONS))).toBe(
      'unknown option --typo for `swm sync push` (see swm sync push --help)',
    );
    expect(usage(() => parseCommandOptions('swm sync push', ['demo', '-fz'], PUSH_OPTIONS))).toContain('unknown option -z');
  });

  it('rejects a repeated single-value option and a value that looks like a flag', () => {
    expect(usage(() => parseCommandOptions('swm sync push', ['-d', 'a', '-d', 'b'], PUSH_OPTIONS))).toContain('more than once');
    expect(usage(() => parseCommandOptions('swm sync push', ['-d', '--json'], PUSH_OPTIONS))).toContain('-d/--dest needs a value');
  });
});

describe('syncPositionals and positiveInteger', () => {
  it('needs an id and takes at most a path', () => {
    expect(syncPositionals('swm sync pull', ['demo'])).toEqual({ id: 'demo' });
    expect(syncPositionals('swm sync pull', ['demo', 'ws'])).toEqual({ id: 'demo', path: 'ws' });
    expect(usage(() => syncPositionals('swm sync pull', []))).toContain('missing workspace id');
    expect(usage(() => syncPositionals('swm sync pull', ['a', 'b', 'c']))).toContain('unexpected argument "c"');
  });

  it('accepts whole numbers ≥ 1 only', () => {
    expect(positiveInteger('60', '-i/--interval')).toBe(60);
    for (const bad of ['0', '-1', '1.5', '1e3', ' 5', '', '99999999999999999999']) usage(() => positiveInteger(bad, '-i/--interval'));
  });
});

describe('parseSyncArgs', () => {
  it('builds the resolveTarget input from flags and positionals', () => {
    const { target, output } = parseSyncArgs('swm sync push', ['demo', 'ws', '-b', 's3:x01', '-d', 'p/q', '-x', '*.log', '-x', 'tmp/', '--json'], PUSH_OPTIONS);
    expect(target).toEqual({ id: 'demo', path: 'ws', bucket: 's3:x01', dest: 'p/q', excludes: ['*.log', 'tmp/'] });
    expect(output.json).toBe(true);
  });
});
