// End-to-end `--tar` on both backends: a 5,000-file tree pushed as one tar, read back by GNU tar and by pull, byte for byte; state, stamp and status after it.
import { chmodSync, readFileSync, readdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BACKENDS, summaryOf, useBackend, writeTree } from '../support/e2e.js';
import { formatBytes } from '../../src/cli/output.js';
import {
  LONG_NAME, expectSameDeepTree, gnuTarExtract, gnuTarList, layerObjects, readManifest, tarKey, tarTree, uploadedKeys, xxh64,
} from './support.js';

const N = 5000;

describe.each(BACKENDS)('push --tar / pull --tar on $name', (factory) => {
  const setup = useBackend(factory);

  it('round trip of 5,000 files, long and unicode names, symlinks, empty folders, modes and mtimes', async () => {
    const t = await setup();
    const { backend } = t;
    const a = t.ws('source');
    writeTree(a, tarTree(N));
    chmodSync(join(a, 'modes/private'), 0o700);
    chmodSync(join(a, 'modes'), 0o750);
    utimesSync(join(a, 'modes'), 1_600_000_000.25, 1_600_000_000.25);

    // ---- full snapshot ----
    const first = await t.sync('push', a, '--tar', '--json');
    expect(first.code, first.stderr).toBe(0);
    const base = (await backend.read(tarKey(backend.dest)))!;
    expect(base).toBeDefined();
    expect(uploadedKeys(first.events)).toEqual([{ path: tarKey(backend.dest), size: base.body.length }]);
    expect(summaryOf(first).bytes).toBe(base.body.length);
    expect(summaryOf(first).uploaded).toBeGreaterThanOrEqual(N);
    // nothing was written under the dest prefix itself: the snapshot is the one object beside it (+ its manifest)
    expect(await backend.listKeys(backend.dest)).toEqual([]);

    // an independent reader: GNU tar lists and extracts the base, and what it extracts is the source tree
    const names = gnuTarList(base.body);
    expect(names).toContain(`names/${LONG_NAME}`);
    expect(names).toContain('names/ελληνικά/中文/한국어.txt');
    expect(names).toContain('emoji 😀/🎉 party.txt');
    expect(names).toContain('empty-dir/');
    expect(names).toContain('links/relative-up');
    expect(names.filter((n) => n.startsWith('many/') && !n.endsWith('/'))).toHaveLength(N);
    const gnu = t.scratch.path('extracted by gnu tar');
    gnuTarExtract(base.body, gnu);
    expectSameDeepTree(gnu, a, { folderMtimes: true });

    // the manifest describes the base: its size and xxh64 match the object
    const m1 = (await readManifest(backend))!;
    expect(m1.layers).toEqual([]);
    expect(m1.base.size).toBe(base.body.length);
    expect(m1.base.hash).toBe(await xxh64(base.body));

    // state and stamp, as after a normal push
    const stamp = JSON.parse(readFileSync(join(a, '.swm/stamp.json'), 'utf8'));
    expect(stamp.lastPush).toMatchObject({ tar: true, bytes: base.body.length });
    expect(stamp).toMatchObject({ bucket: backend.bucket, dest: backend.dest });
    expect(readdirSync(join(a, '.swm')).filter((f) => /^tar-state-[0-9a-f]+\.tsv$/.test(f))).toHaveLength(1);

    // status shows the snapshot: that it exists, its size and time (from .swm/, and from the bucket with --remote)
    const status = await t.sync('status', a, '--json');
    expect(status.code, status.stderr).toBe(0);
    const report = status.events[0] as { tar?: { exists: boolean; size?: number; at?: string } };
    expect(report.tar).toMatchObject({ exists: true, size: base.body.length });
    expect(Date.parse(report.tar!.at!)).toBeGreaterThan(Date.now() - 120_000);
    const remoteStatus = await t.sync('status', a, '--remote');
    expect(remoteStatus.code, remoteStatus.stderr).toBe(0);
    const tarLine = remoteStatus.stdout.split('\n').find((l) => l.startsWith('tar '));
    expect(tarLine).toMatch(new RegExp(`^tar +${formatBytes(base.body.length).replace('.', '\\.')} at ${new Date().getUTCFullYear()}-`));

    // ---- pull into a new folder: the same tree, folders' modes and mtimes included ----
    const b = t.scratch.path('pulled');
    const pulled = await t.sync('pull', b, '--tar', '--json');
    expect(pulled.code, pulled.stderr).toBe(0);
    expectSameDeepTree(b, a, { folderMtimes: true });
    expect(JSON.parse(readFileSync(join(b, '.swm/stamp.json'), 'utf8')).lastPull).toMatchObject({ tar: true });
    // the pulled copy is in sync: pushing it sends nothing and adds no layer
    const backAgain = await t.sync('push', b, '--tar', '--json');
    expect(backAgain.code, backAgain.stderr).toBe(0);
    expect(uploadedKeys(backAgain.events)).toEqual([]);
    expect(await layerObjects(backend)).toEqual([]);
  });
});
