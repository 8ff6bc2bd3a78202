// End-to-end `--tar` with excludes (-x and .swmignore): excluded paths are neither packed nor extracted, changes to them make no layer, and excluding never deletes on the other side.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileBackend, summaryOf, useBackend, writeTree } from '../support/e2e.js';
import { gnuTarList, layerObjects, readManifest, tarKey, uploadedKeys } from './support.js';

describe('push --tar / pull --tar honour excludes', () => {
  const setup = useBackend(fileBackend);

  it('-x and .swmignore keep paths out of the snapshot and out of the pulled folder', async () => {
    const t = await setup();
    const a = t.ws('source');
    writeTree(a, {
      '.swmignore': '# build output\n*.log\ncache/\n',
      'keep.txt': 'kept\n',
      'logs/keep.txt': 'kept too\n',
      'logs/run.log': 'excluded by .swmignore\n',
      'cache/blob.bin': 'excluded folder\n',
      'secret/key': 'excluded by -x\n',
      'notes.tmp': 'excluded by -x\n',
      'src/main.py': 'print(1)\n',
    });
    const push = await t.sync('push', a, '--tar', '--json', '-x', 'secret/', '-x', '*.tmp');
    expect(push.code, push.stderr).toBe(0);
    const names = gnuTarList((await t.backend.read(tarKey(t.backend.dest)))!.body).filter((n) => !n.endsWith('/'));
    expect(names).toEqual(['.swmignore', 'keep.txt', 'logs/keep.txt', 'src/main.py']);
    expect(summaryOf(push).uploaded).toBe(4);

    // changing or adding excluded files makes no layer
    writeFileSync(join(a, 'cache/blob.bin'), 'changed, still excluded\n');
    writeFileSync(join(a, 'logs/new.log'), 'new, excluded\n');
    writeFileSync(join(a, 'secret/key'), 'changed, excluded by -x\n');
    const quiet = await t.sync('push', a, '--tar', '--json', '-x', 'secret/', '-x', '*.tmp');
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(uploadedKeys(quiet.events)).toEqual([]);
    expect(await layerObjects(t.backend)).toEqual([]);

    // pushed once without -x secret/, the folder joins the snapshot; excluded again later, it is not deleted from it
    const withSecret = await t.sync('push', a, '--tar', '--json', '-x', '*.tmp');
    expect(withSecret.code, withSecret.stderr).toBe(0);
    expect(gnuTarList((await t.backend.read((await layerObjects(t.backend))[0]!.key))!.body)).toContain('secret/key');
    writeFileSync(join(a, 'src/main.py'), 'print(2)\n');
    const excludedAgain = await t.sync('push', a, '--tar', '--json', '-x', 'secret/', '-x', '*.tmp');
    expect(excludedAgain.code, excludedAgain.stderr).toBe(0);
    const manifest = (await readManifest(t.backend))!;
    expect(manifest.layers).toHaveLength(2);
    expect(manifest.layers.flatMap((l) => l.deleted ?? [])).toEqual([]);

    // pull -x: the excluded folder is not written, the rest is
    const b = t.scratch.path('pulled');
    const pull = await t.sync('pull', b, '--tar', '-x', 'logs/');
    expect(pull.code, pull.stderr).toBe(0);
    expect(existsSync(join(b, 'logs'))).toBe(false);
    expect(readFileSync(join(b, 'keep.txt'), 'utf8')).toBe('kept\n');
    expect(readFileSync(join(b, 'secret/key'), 'utf8')).toBe('changed, excluded by -x\n');
    expect(readFileSync(join(b, 'src/main.py'), 'utf8')).toBe('print(2)\n');
  });

  it("pull --tar leaves the local workspace's excluded files alone, also when a layer deletes them", async () => {
    const t = await setup();
    const a = t.ws('source');
    writeTree(a, { 'keep.txt': 'kept\n', 'data/shard.bin': 'remote shard\n', 'logs/keep.txt': 'remote log\n', 'padding.bin': 'x'.repeat(20_000) });
    const push = await t.sync('push', a, '--tar');
    expect(push.code, push.stderr).toBe(0);
    rmSync(join(a, 'logs/keep.txt'));
    writeFileSync(join(a, 'keep.txt'), 'kept, changed\n');
    const layer = await t.sync('push', a, '--tar', '--json');
    expect(layer.code, layer.stderr).toBe(0);
    expect((await readManifest(t.backend))!.layers[0]!.deleted).toEqual(['logs/keep.txt']);

    // the puller excludes data/ in its .swmignore and logs/ with -x: its own files there stay as they are
    const c = t.ws('puller');
    mkdirSync(join(c, 'data'));
    mkdirSync(join(c, 'logs'));
    writeFileSync(join(c, '.swmignore'), 'data/\n');
    writeFileSync(join(c, 'data/shard.bin'), 'local shard\n');
    writeFileSync(join(c, 'logs/keep.txt'), 'local log\n');
    const pull = await t.sync('pull', c, '--tar', '-x', 'logs/');
    expect(pull.code, pull.stderr).toBe(0);
    expect(readFileSync(join(c, 'data/shard.bin'), 'utf8')).toBe('local shard\n');
    expect(readFileSync(join(c, 'logs/keep.txt'), 'utf8')).toBe('local log\n');
    expect(readFileSync(join(c, 'keep.txt'), 'utf8')).toBe('kept, changed\n');
  });
});
