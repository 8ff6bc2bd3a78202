// End-to-end per-file xxh64s of `--tar` snapshots on both backends: where they are stored (companion list for a big
// base, inline for a small layer), that pull verifies them and records them in the tar state, that a damaged list
// stops the pull before anything is written, and that a new base drops the old list.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BACKENDS, expectOneLineError, manyFilesTree, useBackend, writeTree } from '../support/e2e.js';
import { readState } from '../../src/state/store.js';
import { readDeepTree, readManifest, tarKey, xxh64 } from './support.js';

/** PartHashes is how a manifest part refers to its per-file hashes. */
interface PartHashes {
  key: string;
  fileHashes?: Record<string, string>;
  hashesKey?: string;
  hashesHash?: string;
}

/** tarStateHashes reads a workspace's tar state (.swm/tar-state-*.tsv) as path → hash. */
async function tarStateHashes(ws: string): Promise<Record<string, string>> {
  const files = readdirSync(join(ws, '.swm')).filter((f) => /^tar-state-[0-9a-f]+\.tsv$/.test(f));
  expect(files).toHaveLength(1);
  const out: Record<string, string> = {};
  for await (const e of readState(join(ws, '.swm', files[0]!))) out[e.path] = e.hash;
  return out;
}

/** expectedFileHashes is what the snapshot of a tree must list: every regular file's xxh64, by path. */
async function expectedFileHashes(ws: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [path, e] of Object.entries(readDeepTree(ws, { folderMtimes: false }))) {
    if (e.type === 'file') out[path] = await xxh64(readFileSync(join(ws, path)));
  }
  return out;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe.each(BACKENDS)('per-file xxh64s of --tar snapshots on $name', (factory) => {
  const setup = useBackend(factory);

  it('a big base lists them in a companion object, a small layer inline; push and pull record them in the tar state; a new base drops the old list', async () => {
    const t = await setup();
    const { backend } = t;
    const a = t.ws('source');
    writeTree(a, { ...manyFilesTree(150), 'weights.bin': Buffer.alloc(2 * 1024 * 1024, 7), 'link': { symlink: 'weights.bin' } });
    const first = await t.sync('push', a, '--tar');
    expect(first.code, first.stderr).toBe(0);

    const m1 = (await readManifest(backend))! as unknown as { base: PartHashes; layers: PartHashes[] };
    expect(m1.base.fileHashes).toBeUndefined();
    expect(m1.base.hashesKey).toMatch(new RegExp(`^${escapeRe(tarKey(backend.dest))}\\.d/hashes-[0-9a-f]{8}\\.json$`));
    const list = (await backend.read(m1.base.hashesKey!))!;
    expect(m1.base.hashesHash).toBe(await xxh64(list.body));
    expect(list.meta['swm-hash']).toBe(m1.base.hashesHash);
    const want = await expectedFileHashes(a);
    expect(Object.keys(want)).toHaveLength(151);
    expect(JSON.parse(list.body.toString('utf8'))).toEqual({ version: 1, files: want });
    // the manifest itself stays small: it names the list, it does not hold it
    const manifestBytes = (await backend.read(`${tarKey(backend.dest)}.d/manifest.json`))!.body.length;
    expect(manifestBytes).toBeLessThan(1024);

    // the tar state holds real hashes: files from the packer, the symlink from its target
    const pushedState = await tarStateHashes(a);
    expect(pushedState).toMatchObject(want);
    expect(pushedState['link']).toBe(await xxh64(Buffer.from('weights.bin')));

    const b = t.scratch.path('pulled');
    const pulled = await t.sync('pull', b, '--tar');
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(await tarStateHashes(b)).toEqual(pushedState);

    // ---- a layer of one changed file lists its hash inline ----
    writeFileSync(join(a, 'many/d00/f7.txt'), 'changed in the layer\n');
    const second = await t.sync('push', a, '--tar');
    expect(second.code, second.stderr).toBe(0);
    const m2 = (await readManifest(backend))! as unknown as { base: PartHashes; layers: PartHashes[] };
    expect(m2.base.hashesKey).toBe(m1.base.hashesKey);
    expect(m2.layers).toHaveLength(1);
    expect(m2.layers[0]!.hashesKey).toBeUndefined();
    expect(m2.layers[0]!.fileHashes).toEqual({ 'many/d00/f7.txt': await xxh64(Buffer.from('changed in the layer\n')) });
    const again = await t.sync('pull', b, '--tar');
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(join(b, 'many/d00/f7.txt'), 'utf8')).toBe('changed in the layer\n');
    expect((await tarStateHashes(b))['many/d00/f7.txt']).toBe(m2.layers[0]!.fileHashes!['many/d00/f7.txt']);

    // ---- rewriting most of the bytes compacts into a new base: a new list, the old one deleted ----
    writeFileSync(join(a, 'weights.bin'), Buffer.alloc(2 * 1024 * 1024, 8));
    const third = await t.sync('push', a, '--tar');
    expect(third.code, third.stderr).toBe(0);
    const m3 = (await readManifest(backend))! as unknown as { base: PartHashes; layers: PartHashes[] };
    expect(m3.layers).toEqual([]);
    expect(m3.base.hashesKey).toBeDefined();
    expect(m3.base.hashesKey).not.toBe(m1.base.hashesKey);
    expect(await backend.listKeys(`${tarKey(backend.dest)}.d/`)).toEqual(
      [`${tarKey(backend.dest)}.d/manifest.json`, m3.base.hashesKey!].sort(),
    );
    const c = t.scratch.path('pulled after compaction');
    const fresh = await t.sync('pull', c, '--tar');
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(await expectedFileHashes(c)).toEqual(await expectedFileHashes(a));
  });

  it('a damaged hash list stops the pull (exit 1, one line) before anything is extracted', async () => {
    const t = await setup();
    const { backend } = t;
    const a = t.ws('source');
    writeTree(a, manyFilesTree(120));
    const pushed = await t.sync('push', a, '--tar');
    expect(pushed.code, pushed.stderr).toBe(0);
    const m = (await readManifest(backend))! as unknown as { base: PartHashes };
    const list = (await backend.read(m.base.hashesKey!))!;
    // one hash digit changed: same size, still valid JSON; only the list's own xxh64 can tell
    const text = list.body.toString('utf8');
    const at = text.indexOf('"many/d00/f0.txt":"') + '"many/d00/f0.txt":"'.length;
    const damaged = text.slice(0, at) + (text[at] === '0' ? '1' : '0') + text.slice(at + 1);
    await backend.plant(m.base.hashesKey!, damaged, list.meta);

    const ws = t.ws('ws');
    const run = await t.sync('pull', ws, '--tar');
    expectOneLineError(run, 1, new RegExp(`${escapeRe(m.base.hashesKey!)} does not match its xxh64 \\([0-9a-f]{16} ≠ [0-9a-f]{16}\\): the snapshot is corrupt; nothing extracted`));
    expect(readdirSync(ws).filter((n) => n !== '.swm')).toEqual([]);
  });
});
