// End-to-end `pull --tar` of hostile snapshots planted in the bucket (both backends): escaping entries and manifest deletions are refused and nothing outside the workspace is written or removed.
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BACKENDS, readTree, sha256, useBackend, type Backend } from '../support/e2e.js';
import { createFileStorage } from '../../src/storage/file.js';
import { craftTar, gnuTarList, manifestKey, tarKey, type CraftedEntry } from './support.js';

/** etagSeenBySwm is the object's etag as swm's storage reports it (what a manifest must name for pull to accept the object). */
async function etagSeenBySwm(backend: Backend, key: string): Promise<string> {
  if (backend.name === 's3') return (await backend.read(key))!.etag;
  const storage = createFileStorage(backend.bucket.slice('file:'.length), { create: false });
  try {
    return (await storage.head(key))!.etag;
  } finally {
    await storage.close();
  }
}

/** snapshotOf lists a folder's names and contents (one level deep is enough for the folders the attacks aim at). */
function snapshotOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir)) {
    if (name === 'bucket') continue; // the file: backend's bucket, made when the test plants its objects
    const p = join(dir, name);
    out[name] = statSync(p).isFile() ? sha256(readFileSync(p)) : 'dir';
  }
  return out;
}

/** staysInside: a symlink at path (in ws) with this target resolves to ws or below it. */
function staysInside(ws: string, path: string, target: string): boolean {
  const resolved = resolve(dirname(join(ws, path)), target);
  return resolved === ws || resolved.startsWith(ws + '/');
}

describe.each(BACKENDS)('pull --tar refuses hostile snapshots on $name', (factory) => {
  const setup = useBackend(factory);

  /** prepare makes the workspace (with one file of its own) and a folder outside it holding a victim file. */
  async function prepare() {
    const t = await setup();
    const ws = t.ws('ws');
    writeFileSync(join(ws, 'mine.txt'), 'my own file\n');
    const outside = t.ws('outside');
    writeFileSync(join(outside, 'victim.txt'), 'must survive\n');
    const before = { outside: snapshotOf(outside), scratch: snapshotOf(t.scratch.root), passwd: sha256(readFileSync('/etc/passwd')) };
    const unchanged = () => {
      expect(snapshotOf(outside)).toEqual(before.outside);
      expect(snapshotOf(t.scratch.root)).toEqual(before.scratch);
      expect(sha256(readFileSync('/etc/passwd'))).toBe(before.passwd);
      expect(readFileSync(join(ws, 'mine.txt'), 'utf8')).toBe('my own file\n');
    };
    return { t, ws, outside, unchanged };
  }

  const attacks: { name: string; entries: (outside: string) => CraftedEntry[]; refused: RegExp }[] = [
    {
      name: '../x',
      entries: () => [{ name: 'fine.txt', body: 'ok\n' }, { name: '../outside/escaped.txt', body: 'pwned\n' }],
      refused: /refusing tar entry "\.\.\/outside\/escaped\.txt".*"\.\."/,
    },
    {
      name: '/abs/x',
      entries: (outside) => [{ name: join(outside, 'absolute.txt'), body: 'pwned\n' }],
      refused: /refusing tar entry ".*absolute\.txt": absolute path/,
    },
    {
      name: 'symlink l -> .. then l/x',
      entries: () => [{ name: 'l', type: 'symlink', linkname: '..' }, { name: 'l/outside/through-link.txt', body: 'pwned\n' }],
      refused: /refusing tar entry "l": symlink points outside the workspace/,
    },
    {
      name: 'symlink sub/l -> .. (inside) then a file written through it',
      entries: () => [
        { name: 'sub/', type: 'directory', mode: 0o755 },
        { name: 'sub/l', type: 'symlink', linkname: '..' },
        { name: 'sub/l/through-link.txt', body: 'written through a symlink\n' },
      ],
      refused: /refusing tar entry "sub\/l\/through-link\.txt": its folder "sub\/l" is a symlink/,
    },
    {
      name: 'hardlink to /etc/passwd, then a write to it',
      entries: () => [{ name: 'passwd', type: 'link', linkname: '/etc/passwd' }, { name: 'passwd', body: 'root::0:0::/:/bin/sh\n' }],
      refused: /refusing tar entry "passwd": hard links are not extracted/,
    },
  ];

  for (const attack of attacks) {
    it(`a planted tar with ${attack.name} is refused (exit 2) and writes nothing outside the workspace`, async () => {
      const { t, ws, outside, unchanged } = await prepare();
      await t.backend.plant(tarKey(t.backend.dest), await craftTar(attack.entries(outside)));
      const run = await t.sync('pull', ws, '--tar');
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(attack.refused);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      unchanged();
      // the workspace holds nothing that leads out of it, and the refused pull recorded no stamp
      for (const [path, entry] of Object.entries(readTree(ws))) {
        if (entry.type === 'symlink') expect(staysInside(ws, path, entry.target!), `${path} -> ${entry.target}`).toBe(true);
      }
      expect(existsSync(join(ws, 'passwd'))).toBe(false);
      expect(existsSync(join(ws, '.swm/stamp.json'))).toBe(false);
    });
  }

  it('a manifest whose layer deletes ../x or .swm/ is refused before anything is extracted', async () => {
    const { t, ws, unchanged } = await prepare();
    const base = await craftTar([{ name: 'from-the-base.txt', body: 'base\n' }]);
    await t.backend.plant(tarKey(t.backend.dest), base);
    const baseEtag = await etagSeenBySwm(t.backend, tarKey(t.backend.dest));
    const layerKey = `${tarKey(t.backend.dest)}.d/000001-deadbeef.tar`;
    await t.backend.plant(layerKey, await craftTar([{ name: 'from-the-layer.txt', body: 'layer\n' }]));
    const layerEtag = await etagSeenBySwm(t.backend, layerKey);
    for (const deleted of [['../outside/victim.txt'], ['/etc/passwd'], ['.swm/stamp.json'], ['ok/../../outside/victim.txt']]) {
      const manifest = {
        version: 1,
        base: { key: tarKey(t.backend.dest), etag: baseEtag, size: base.length, hash: '', files: 1, at: 0 },
        layers: [{ key: layerKey, etag: layerEtag, size: 0, hash: '', files: 1, at: 0, deleted }],
      };
      await t.backend.plant(manifestKey(t.backend.dest), JSON.stringify(manifest));
      const run = await t.sync('pull', ws, '--tar');
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/refusing deletion of .* listed in the tar manifest/);
      unchanged();
      expect(existsSync(join(ws, 'from-the-base.txt'))).toBe(false);
    }
  });

  it('a layer deleting a path under a symlinked folder of the workspace is refused; the file the link leads to survives', async () => {
    const { t, ws, outside, unchanged } = await prepare();
    // the user's own link to a folder outside the workspace (a mounted data disk, say)
    symlinkSync(outside, join(ws, 'data'));
    const base = await craftTar([{ name: 'from-the-base.txt', body: 'base\n' }]);
    await t.backend.plant(tarKey(t.backend.dest), base);
    const layerKey = `${tarKey(t.backend.dest)}.d/000001-0badf00d.tar`;
    await t.backend.plant(layerKey, await craftTar([{ name: 'from-the-layer.txt', body: 'layer\n' }]));
    const manifest = {
      version: 1,
      base: { key: tarKey(t.backend.dest), etag: await etagSeenBySwm(t.backend, tarKey(t.backend.dest)), size: base.length, hash: '', files: 1, at: 0 },
      layers: [{ key: layerKey, etag: await etagSeenBySwm(t.backend, layerKey), size: 0, hash: '', files: 1, at: 0, deleted: ['data/victim.txt'] }],
    };
    await t.backend.plant(manifestKey(t.backend.dest), JSON.stringify(manifest));
    const run = await t.sync('pull', ws, '--tar');
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/refusing deletion of "data\/victim\.txt".*"data" is a symlink/);
    unchanged();
    expect(existsSync(join(ws, 'from-the-layer.txt'))).toBe(false);
    expect(existsSync(join(ws, '.swm/stamp.json'))).toBe(false);
  });

  it('a manifest naming objects outside the snapshot as its layers does not make push --tar delete them', async () => {
    const t = await setup();
    const ws = t.ws('ws');
    writeFileSync(join(ws, 'mine.txt'), 'my own file\n');
    const foreign = [`${t.backend.dest}precious.bin`, `other-team/${t.backend.dest}model.bin`, `${tarKey(t.backend.dest)}.d.bak/000001-aaaa.tar`];
    for (const key of foreign) await t.backend.plant(key, 'not yours\n');
    const base = await craftTar([{ name: 'old.txt', body: 'old\n' }]);
    await t.backend.plant(tarKey(t.backend.dest), base);
    const manifest = {
      version: 1,
      base: { key: tarKey(t.backend.dest), etag: await etagSeenBySwm(t.backend, tarKey(t.backend.dest)), size: base.length, hash: '', files: 1, at: 0 },
      layers: foreign.map((key) => ({ key, etag: 'x', size: 10, hash: '', files: 1, at: 0 })),
    };
    await t.backend.plant(manifestKey(t.backend.dest), JSON.stringify(manifest));
    // no .swm/tar.json here: this push writes a full base and drops the old layers
    const run = await t.sync('push', ws, '--tar');
    expect(run.code, run.stderr).toBe(0);
    for (const key of foreign) expect((await t.backend.read(key))?.body.toString(), key).toBe('not yours\n');
    expect(gnuTarList((await t.backend.read(tarKey(t.backend.dest)))!.body)).toEqual(['mine.txt']);
  });

  it('a sane planted tar with a symlink that stays inside is extracted (the refusals above are not blanket ones)', async () => {
    const { t, ws, unchanged } = await prepare();
    mkdirSync(join(ws, 'pre-existing'));
    await t.backend.plant(
      tarKey(t.backend.dest),
      await craftTar([
        { name: 'sub/', type: 'directory', mode: 0o755 },
        { name: 'sub/up', type: 'symlink', linkname: '../mine.txt' },
        { name: 'sub/file.txt', body: 'fine\n' },
      ]),
    );
    const run = await t.sync('pull', ws, '--tar');
    expect(run.code, run.stderr).toBe(0);
    unchanged();
    expect(readFileSync(join(ws, 'sub/up'), 'utf8')).toBe('my own file\n');
    expect(readFileSync(join(ws, 'sub/file.txt'), 'utf8')).toBe('fine\n');
  });
});
