// End-to-end `push --tar` while a 30 MiB file keeps growing (both backends): the push reports it, the stored snapshot is a valid tar with no torn entry, and the next push once it is quiet carries it.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, statSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BACKENDS, expectSameTree, manyFilesTree, summaryOf, useBackend, writeTree, waitForExit } from '../support/e2e.js';
import { gnuTarExtract, gnuTarList, layerObjects, tarKey } from './support.js';

const START_BYTES = 30 * 1024 * 1024;

/** startAppender runs a child that appends 8 KiB of 'g' to file every millisecond or so until killed. */
function startAppender(file: string): ChildProcess {
  const script = `
    const fs = require('node:fs');
    const fd = fs.openSync(${JSON.stringify(file)}, 'a');
    const chunk = Buffer.alloc(8192, 'g');
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (;;) { fs.writeSync(fd, chunk); Atomics.wait(pause, 0, 0, 1); }
  `;
  return spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
}

/** waitForGrowth resolves once file is bigger than `than` bytes (the appender is running). */
async function waitForGrowth(file: string, than: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (statSync(file).size <= than) {
    if (Date.now() > deadline) throw new Error('the appender did not start');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.each(BACKENDS)('push --tar of a growing file on $name', (factory) => {
  const setup = useBackend(factory);

  it('reports the file, stores a snapshot GNU tar extracts without a torn entry, and carries the file once it is quiet', async () => {
    const t = await setup();
    const a = t.ws('source');
    writeTree(a, manyFilesTree(200));
    const big = join(a, 'big.log');
    const start = Buffer.alloc(START_BYTES);
    for (let i = 0; i < start.length; i += 4096) start.write(`offset ${i}\n`, i);
    const fd = openSync(big, 'w');
    writeSync(fd, start);
    closeSync(fd);

    const appender = startAppender(big);
    let run;
    try {
      await waitForGrowth(big, START_BYTES);
      run = await t.sync('push', a, '--tar', '--json');
    } finally {
      appender.kill('SIGKILL');
      await waitForExit(appender, 5_000);
    }

    // reported: warnings naming it while it was packed again, then an error (exit 1) saying it is not in this snapshot
    expect(run.code, run.stderr).toBe(1);
    const warnings = run.events.filter((e) => e.type === 'warning' && e.path === 'big.log').map((e) => String(e.message));
    expect(warnings).toEqual([
      expect.stringMatching(/changed while it was being packed; packing again$/),
      expect.stringMatching(/changed again .* without it$/),
      expect.stringMatching(/^kept changing .* not in this snapshot/),
    ]);
    expect(summaryOf(run).errors).toEqual([expect.objectContaining({ path: 'big.log', message: expect.stringMatching(/not in this snapshot/) })]);

    // what was stored is a complete tar: GNU tar reads every header, and big.log, if present, would be a true prefix
    const final = readFileSync(big);
    const base = (await t.backend.read(tarKey(t.backend.dest)))!;
    expect(base).toBeDefined();
    const names = gnuTarList(base.body);
    expect(names.filter((n) => n.startsWith('many/') && !n.endsWith('/'))).toHaveLength(200);
    const extracted = t.scratch.path('gnu');
    gnuTarExtract(base.body, extracted);
    if (names.includes('big.log')) {
      const got = readFileSync(join(extracted, 'big.log'));
      expect(got.equals(final.subarray(0, got.length))).toBe(true);
    }
    // no stamp for a push that left a file out; the tar record still names the stored snapshot
    expect(() => readFileSync(join(a, '.swm/stamp.json'))).toThrow();

    // quiet now: the next push carries it (as a layer or a new base) and a pull restores the whole tree
    const again = await t.sync('push', a, '--tar', '--json');
    expect(again.code, again.stderr).toBe(0);
    const stored = [(await t.backend.read(tarKey(t.backend.dest)))!.body, ...(await Promise.all((await layerObjects(t.backend)).map(async (l) => (await t.backend.read(l.key))!.body)))];
    expect(stored.some((tar) => gnuTarList(tar).includes('big.log'))).toBe(true);
    const b = t.scratch.path('pulled');
    const pulled = await t.sync('pull', b, '--tar');
    expect(pulled.code, pulled.stderr).toBe(0);
    expectSameTree(b, a);
  });
});
