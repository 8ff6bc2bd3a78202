// End-to-end `--tar` layers on both backends: incremental pushes send only what changed (bytes asserted), pull applies deletions and type changes, a heavy change compacts into a new base.
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BACKENDS, summaryOf, useBackend, writeTree } from '../support/e2e.js';
import { expectSameDeepTree, gnuTarExtract, gnuTarList, layerObjects, readManifest, tarKey, tarTree, uploadedKeys, xxh64 } from './support.js';

describe.each(BACKENDS)('incremental push --tar on $name', (factory) => {
  const setup = useBackend(factory);

  it('layers carry only the changes (with deletions and type changes), pull restores the full tree, compaction rewrites the base', async () => {
    const t = await setup();
    const { backend } = t;
    const a = t.ws('source');
    writeTree(a, tarTree(300));
    const first = await t.sync('push', a, '--tar', '--json');
    expect(first.code, first.stderr).toBe(0);
    const base = (await backend.read(tarKey(backend.dest)))!;
    const m1 = (await readManifest(backend))!;
    expect(m1.layers).toEqual([]);
    const b = t.scratch.path('pulled before the layers');
    const pulled = await t.sync('pull', b, '--tar');
    expect(pulled.code, pulled.stderr).toBe(0);
    expectSameDeepTree(b, a, { folderMtimes: true });

    // ---- incremental 1: one file modified, one added, a few deleted, a whole folder deleted, one mode changed ----
    writeFileSync(join(a, 'many/d00/f0.txt'), 'modified, and longer than before\n');
    writeFileSync(join(a, 'added.bin'), randomBytes(4096));
    for (let i = 100; i < 105; i++) rmSync(join(a, `many/d01/f${i}.txt`));
    rmSync(join(a, 'many/d02'), { recursive: true });
    chmodSync(join(a, 'modes/group-write.txt'), 0o640);
    const inc1 = await t.sync('push', a, '--tar', '--json');
    expect(inc1.code, inc1.stderr).toBe(0);
    const layers1 = await layerObjects(backend);
    expect(layers1).toHaveLength(1);
    // only the changed part travelled: one small layer, and the summary counts exactly its bytes
    expect(uploadedKeys(inc1.events)).toEqual([{ path: layers1[0]!.key, size: layers1[0]!.size }]);
    expect(summaryOf(inc1).bytes).toBe(layers1[0]!.size);
    // 4 KiB of new data, two tiny files, the folders above them: a few blocks of headers each, nothing else
    expect(layers1[0]!.size).toBeLessThan(4096 + 16 * 1024);
    expect(layers1[0]!.size).toBeLessThan(base.body.length / 20);
    expect(summaryOf(inc1)).toMatchObject({ uploaded: 3, deletedRemote: 105 });
    // the base was not rewritten
    expect((await backend.read(tarKey(backend.dest)))!.etag).toBe(base.etag);
    const m2 = (await readManifest(backend))!;
    expect(m2.base.hash).toBe(m1.base.hash);
    expect(m2.layers[0]!.deleted).toHaveLength(105);
    expect(m2.layers[0]!.deleted).toContain('many/d02/f250.txt');
    // a layer is a plain tar too
    const layerNames = gnuTarList((await backend.read(layers1[0]!.key))!.body);
    expect(layerNames.filter((n) => !n.endsWith('/'))).toEqual(['added.bin', 'many/d00/f0.txt', 'modes/group-write.txt']);
    expect(layerNames.filter((n) => n.endsWith('/'))).toEqual(['many/', 'many/d00/', 'many/d01/', 'modes/']);

    // ---- incremental 2: a file becomes a folder, an empty folder becomes a file, a symlink is retargeted ----
    rmSync(join(a, 'README.md'));
    writeTree(a, { 'README.md/inside.txt': 'now a folder\n', 'later-empty': { dir: true } });
    rmSync(join(a, 'nested/empty/inner'), { recursive: true });
    writeFileSync(join(a, 'nested/empty/inner'), 'now a file\n');
    rmSync(join(a, 'link-to-file'));
    writeTree(a, { 'link-to-file': { symlink: 'run.sh' } });
    const inc2 = await t.sync('push', a, '--tar', '--json');
    expect(inc2.code, inc2.stderr).toBe(0);
    const layers2 = await layerObjects(backend);
    expect(layers2).toHaveLength(2);
    expect((await backend.read(tarKey(backend.dest)))!.etag).toBe(base.etag);
    // status --remote weighs the whole snapshot: base plus every layer
    const status = await t.sync('status', a, '--remote', '--json');
    expect(status.code, status.stderr).toBe(0);
    const report = JSON.parse(status.stdout.trim().split('\n').pop()!) as { tar?: { exists: boolean; size?: number } };
    expect(report.tar).toMatchObject({ exists: true, size: base.body.length + layers2.reduce((n, l) => n + l.size, 0) });

    // pull --tar still restores the full tree: into a new folder, and over the copy pulled before the layers
    const c = t.scratch.path('pulled after layers');
    const pulledC = await t.sync('pull', c, '--tar', '--json');
    expect(pulledC.code, pulledC.stderr).toBe(0);
    expectSameDeepTree(c, a, { folderMtimes: true });
    const pulledB = await t.sync('pull', b, '--tar', '--json');
    expect(pulledB.code, pulledB.stderr).toBe(0);
    expectSameDeepTree(b, a, { folderMtimes: true });
    expect(existsSync(join(b, 'many/d02'))).toBe(false);
    const fromC = await t.sync('push', c, '--tar', '--json');
    expect(fromC.code, fromC.stderr).toBe(0);
    expect(uploadedKeys(fromC.events)).toEqual([]);

    // ---- compaction: a change weighing more than half the base makes the next push write a new full base ----
    mkdirSync(join(a, 'ckpt'));
    writeFileSync(join(a, 'ckpt/model.bin'), randomBytes(Math.ceil(base.body.length * 0.6)));
    const compact = await t.sync('push', a, '--tar', '--json');
    expect(compact.code, compact.stderr).toBe(0);
    const newBase = (await backend.read(tarKey(backend.dest)))!;
    expect(uploadedKeys(compact.events)).toEqual([{ path: tarKey(backend.dest), size: newBase.body.length }]);
    expect(newBase.body.length).toBeGreaterThan(base.body.length);
    expect(await layerObjects(backend)).toEqual([]);
    const m3 = (await readManifest(backend))!;
    expect(m3.layers).toEqual([]);
    expect(m3.base.hash).toBe(await xxh64(newBase.body));
    // the new base alone is the whole tree, for GNU tar too
    const gnu2 = t.scratch.path('extracted by gnu tar after compaction');
    gnuTarExtract(newBase.body, gnu2);
    expectSameDeepTree(gnu2, a, { folderMtimes: true });
    const d = t.scratch.path('pulled after compaction');
    const pulledD = await t.sync('pull', d, '--tar');
    expect(pulledD.code, pulledD.stderr).toBe(0);
    expectSameDeepTree(d, a, { folderMtimes: true });
  });
});
