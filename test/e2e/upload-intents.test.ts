// A push killed after its put landed but before the state was committed leaves an object the state does not know: recorded
// upload intents let the next push recognise it as its own (no conflict) and upload the newer local change.
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync, readdirSync, rmSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { createFileStorage } from '../../src/storage/file.js';
import { hashBytes } from '../../src/engine/hash.js';
import { UploadIntentLog } from '../../src/state/intents.js';

const SWM = resolve(import.meta.dirname, '../../dist/cli/main.js');
const scratch = mkdtempSync(join(tmpdir(), 'swm-intents-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function swm(args: string[]) {
  const env = { ...process.env, HOME: scratch, XDG_DATA_HOME: join(scratch, 'data'), XDG_CONFIG_HOME: join(scratch, 'config') };
  return spawnSync('node', [SWM, 'sync', ...args], { env, encoding: 'utf8' });
}

/** plantOwnUpload puts `content` at demo/<path> as swm would, as if a killed push had sent it without committing state. */
async function plantOwnUpload(bucket: string, ws: string, path: string, content: string, withIntent: boolean): Promise<void> {
  const hash = await hashBytes(content);
  const storage = createFileStorage(bucket);
  await storage.put(`demo/${path}`, Buffer.from(content), { meta: { hash, mtimeMs: Date.now(), mode: 0o644, type: 'file' } });
  await storage.close();
  if (withIntent) {
    const stateFile = readdirSync(join(ws, '.swm')).find((f) => /^state-.*\.tsv$/.test(f))!;
    const intents = new UploadIntentLog(join(ws, '.swm', stateFile));
    intents.record(path, hash);
    intents.close();
  }
}

describe('upload intents', () => {
  it('an unrecorded object this workspace uploaded is not a conflict; one it did not upload still is', async () => {
    const ws = join(scratch, 'ws');
    const bucket = join(scratch, 'bucket');
    mkdirSync(ws);
    mkdirSync(bucket);
    writeFileSync(join(ws, 'ours.txt'), 'v0');
    writeFileSync(join(ws, 'theirs.txt'), 'v0');
    expect(swm(['push', 'demo', ws, '-b', `file:${bucket}`]).status).toBe(0);

    await plantOwnUpload(bucket, ws, 'ours.txt', 'v1 sent by a killed push', true);
    writeFileSync(join(ws, 'ours.txt'), 'v2 written after the kill');
    const first = swm(['push', 'demo', ws, '-b', `file:${bucket}`]);
    expect(first.status, first.stdout + first.stderr).toBe(0);
    expect(readFileSync(join(bucket, 'objects', 'demo%', 'ours.txt'), 'utf8')).toBe('v2 written after the kill');
    expect(readdirSync(join(ws, '.swm')).filter((f) => f.endsWith('.intents'))).toEqual([]);

    await plantOwnUpload(bucket, ws, 'theirs.txt', 'v1 from another pod', false);
    writeFileSync(join(ws, 'theirs.txt'), 'v2 local');
    const second = swm(['push', 'demo', ws, '-b', `file:${bucket}`]);
    expect(second.status).toBe(3);
    expect(second.stderr).toContain('theirs.txt');
    expect(readFileSync(join(bucket, 'objects', 'demo%', 'theirs.txt'), 'utf8')).toBe('v1 from another pod');
  });
});
