// End-to-end `swm sync status` through the built CLI on both backends: text and --json, pending local changes, and with --remote what a pull would do.
import { readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { BACKENDS, readTree, useBackend, writeTree, expectCode } from '../support/e2e.js';

// each CLI run is bounded by runSwm's own timeout (60 s); a test runs several, on a machine that may be busy
vi.setConfig({ testTimeout: 240_000 });

interface Sample {
  count: number;
  sample: string[];
}
interface Report {
  id: string;
  workspace: string;
  bucket: string;
  dest: string;
  lastPush?: { at: string; files: number };
  lastPull?: { at: string; files: number };
  watcher: { running: boolean };
  daemon: { running: boolean };
  pending: { changed: Sample; new: Sample; deleted: Sample };
  remote?: { toDownload: Sample; toDeleteLocal: Sample; conflicts: Sample };
}

const sample = (...paths: string[]): Sample => ({ count: paths.length, sample: paths });

describe.each(BACKENDS)('status on $name', (factory) => {
  const setup = useBackend(factory);

  it('shows the target, last push and pull, and pending local changes, in text and --json', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, { 'keep.txt': 'keep\n', 'edit.txt': 'v1\n', 'remove.txt': 'bye\n', 'touch.txt': 'same\n' });

    const never = await t.sync('status', a, '--json');
    expectCode(never, 0);
    const fresh = never.events[0] as unknown as Report;
    expect(fresh).toMatchObject({ id: 'demo', workspace: a, bucket: t.backend.bucket, dest: t.backend.dest, watcher: { running: false }, daemon: { running: false } });
    expect(fresh.lastPush).toBeUndefined();
    expect(fresh.pending.new.count).toBe(4);

    expectCode(await t.sync('push', a), 0);
    const clean = (await t.sync('status', a, '--json')).events[0] as unknown as Report;
    expect(clean.lastPush?.files).toBe(4);
    expect(Date.parse(clean.lastPush!.at)).toBeGreaterThan(Date.now() - 60_000);
    expect(clean.pending).toEqual({ changed: sample(), new: sample(), deleted: sample() });

    writeFileSync(join(a, 'edit.txt'), 'v2\n');
    writeFileSync(join(a, 'touch.txt'), 'same\n'); // new mtime, same bytes: not a change
    writeFileSync(join(a, 'added.txt'), 'new\n');
    unlinkSync(join(a, 'remove.txt'));
    const swmBefore = readdirSync(join(a, '.swm')).sort();
    const state = readdirSync(join(a, '.swm')).filter((n) => n.startsWith('state-')).map((n) => readFileSync(join(a, '.swm', n), 'utf8'));

    const json = await t.sync('status', a, '--json');
    expectCode(json, 0);
    expect(json.events).toHaveLength(1); // one object
    expect((json.events[0] as unknown as Report).pending).toEqual({ changed: sample('edit.txt'), new: sample('added.txt'), deleted: sample('remove.txt') });

    const text = await t.sync('status', a);
    expectCode(text, 0);
    expect(text.stderr).toBe('');
    expect(text.stdout).toMatch(new RegExp(`^workspace +demo → ${a.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^bucket +${t.backend.bucket.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    expect(text.stdout).toMatch(/^last push +\d{4}-\d\d-\d\dT.* \(4 files\)$/m);
    expect(text.stdout).toMatch(/^last pull +never$/m);
    expect(text.stdout).toMatch(/^pending +1 changed, 1 new, 1 deleted: edit\.txt, added\.txt, remove\.txt$/m);

    // status changes nothing: no lock, no state written
    expect(readdirSync(join(a, '.swm')).sort()).toEqual(swmBefore);
    expect(readdirSync(join(a, '.swm')).filter((n) => n.startsWith('state-')).map((n) => readFileSync(join(a, '.swm', n), 'utf8'))).toEqual(state);
  });

  it('a corrupt state counts as none (every file new) and is left as it is', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, { 'a.txt': 'a\n', 'b.txt': 'b\n', 'c.txt': 'c\n' });
    expectCode(await t.sync('push', a), 0);
    writeFileSync(join(a, 'b.txt'), 'b changed\n');
    // drop the trailer: every entry still reads, the fault shows only at the end of the file
    const stateFile = join(a, '.swm', readdirSync(join(a, '.swm')).find((n) => n.startsWith('state-'))!);
    const truncated = readFileSync(stateFile, 'utf8').replace(/#end .*\n$/, '');
    writeFileSync(stateFile, truncated);

    const json = await t.sync('status', a, '--json');
    expectCode(json, 0);
    expect((json.events[0] as unknown as Report).pending).toEqual({ changed: sample(), new: sample('a.txt', 'b.txt', 'c.txt'), deleted: sample() });
    expect(readFileSync(stateFile, 'utf8')).toBe(truncated);
  });

  it('--remote shows what a pull would download and delete, and the conflicts', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, { 'down.txt': 'v1\n', 'gone.txt': 'v1\n', 'both.txt': 'v1\n', 'quiet.txt': 'v1\n' });
    expectCode(await t.sync('push', a), 0);
    const b = t.scratch.path('b');
    expectCode(await t.sync('pull', b), 0);

    writeTree(a, { 'down.txt': 'v2 from a\n', 'both.txt': 'from a\n', 'brand-new.txt': 'new on a\n' });
    expectCode(await t.sync('push', a), 0);
    await t.backend.remove([`${t.backend.dest}gone.txt`]);
    writeFileSync(join(b, 'both.txt'), 'from b\n');
    const before = readTree(b);

    const json = await t.sync('status', b, '--remote', '--json');
    expectCode(json, 0);
    const report = json.events[0] as unknown as Report;
    expect(report.remote).toEqual({ toDownload: sample('brand-new.txt', 'down.txt'), toDeleteLocal: sample('gone.txt'), conflicts: sample('both.txt') });
    expect(report.pending.changed).toEqual(sample('both.txt'));

    const text = await t.sync('status', b, '--remote');
    expectCode(text, 0);
    expect(text.stdout).toMatch(/^remote +2 to download, 1 to delete locally, 1 conflict: brand-new\.txt, down\.txt, gone\.txt, both\.txt$/m);
    expect(readTree(b)).toEqual(before);

    // and a pull does exactly that
    const pull = await t.sync('pull', b, '--json');
    expect(pull.code).toBe(3);
    expect(readFileSync(join(b, 'down.txt'), 'utf8')).toBe('v2 from a\n');
    expect(readFileSync(join(b, 'both.txt'), 'utf8')).toBe('from b\n');
    expect(readdirSync(b).sort()).toEqual(['.swm', 'both.txt', 'brand-new.txt', 'down.txt', 'quiet.txt']);
  });
});
