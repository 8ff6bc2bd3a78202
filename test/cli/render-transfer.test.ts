// Rendering push/pull progress: plain lines off a TTY, a live line on a TTY, JSON lines, quiet mode, summaries and exit codes.
import { describe, expect, it } from 'vitest';
import { Output, formatBytes, type OutputStream } from '../../src/cli/output.js';
import { exitCodeOf, renderTransfer, summaryLine } from '../../src/cli/render-transfer.js';
import { createProgress, type ProgressEvent } from '../../src/engine/progress.js';
import type { TransferSummary } from '../../src/verbs/types.js';

class FakeStream implements OutputStream {
  text = '';
  constructor(
    readonly isTTY = false,
    readonly columns = 80,
  ) {}
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

function summary(over: Partial<TransferSummary> = {}): TransferSummary {
  return { uploaded: 0, downloaded: 0, deletedRemote: 0, deletedLocal: 0, bytes: 0, unchanged: 0, conflicts: [], errors: [], dryRun: false, seconds: 1, ...over };
}

const EVENTS: ProgressEvent[] = [
  { type: 'phase', phase: 'scan' },
  { type: 'plan', action: 'upload', path: 'a.txt', size: 2048 },
  { type: 'plan', action: 'skip', path: 'same.txt', reason: 'unchanged' },
  { type: 'phase', phase: 'transfer' },
  { type: 'bytes', path: 'a.txt', bytes: 1024, total: 2048 },
  { type: 'done', action: 'upload', path: 'a.txt', size: 2048 },
  { type: 'warning', message: 'permission denied', path: 'locked.bin' },
  { type: 'conflict', path: 'both.txt', reason: 'changed locally and remotely' },
];

function run(mode: { json?: boolean; quiet?: boolean; verbose?: boolean; tty?: boolean }, result: TransferSummary, dryRun = false, events = EVENTS) {
  const stdout = new FakeStream(mode.tty ?? false);
  const stderr = new FakeStream(false);
  const out = new Output({ json: mode.json ?? false, quiet: mode.quiet ?? false, verbose: mode.verbose ?? false }, stdout, stderr);
  const progress = createProgress();
  let t = 0;
  const renderer = renderTransfer(progress, out, { verb: 'push', id: 'demo', dryRun }, () => (t += 1000));
  for (const e of events) progress.next(e);
  const code = renderer.finish(result);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe('exit codes', () => {
  it('conflicts → 3, per-path errors → 1, else 0', () => {
    expect(exitCodeOf(summary())).toBe(0);
    expect(exitCodeOf(summary({ errors: [{ path: 'x', message: 'EACCES' }] }))).toBe(1);
    expect(exitCodeOf(summary({ conflicts: ['x'], errors: [{ path: 'y', message: 'EACCES' }] }))).toBe(3);
  });
});

describe('plain output (not a terminal)', () => {
  it('prints one line per finished file, problems on stderr, and a summary', () => {
    const r = run({}, summary({ uploaded: 1, bytes: 2048, unchanged: 1, conflicts: ['both.txt'], errors: [{ path: 'locked.bin', message: 'permission denied' }] }));
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('uploaded a.txt (2.00 KiB)\n');
    expect(r.stdout).not.toContain('same.txt');
    expect(r.stdout).toMatch(/^push demo: 1 uploaded, 2.00 KiB, 1 unchanged, 1 conflict, 1 error in 1.0s/m);
    expect(r.stderr).toContain('swm: warning: locked.bin: permission denied');
    expect(r.stderr).toContain('conflict: both.txt: changed locally and remotely');
    // printed once, not again from the summary
    expect(r.stderr.match(/both\.txt/g)).toHaveLength(1);
    expect(r.stderr.match(/locked\.bin/g)).toHaveLength(1);
    expect(r.stdout).not.toContain('\r');
  });

  it('reports conflicts and errors that came only in the summary', () => {
    const r = run({}, summary({ conflicts: ['late.txt'], errors: [{ path: 'gone.bin', message: 'vanished' }] }), false, []);
    expect(r.stderr).toContain('conflict: late.txt');
    expect(r.stderr).toContain('swm: gone.bin: vanished');
  });

  it('verbose adds skipped files and phases', () => {
    const r = run({ verbose: true }, summary({ uploaded: 1 }));
    expect(r.stdout).toContain('skip same.txt (unchanged)');
    expect(r.stdout).toContain('push demo: scan');
  });

  it('dry run prints the plan', () => {
    const plan: ProgressEvent[] = [
      { type: 'plan', action: 'upload', path: 'new.txt', size: 5 },
      { type: 'plan', action: 'delete-remote', path: 'old.txt' },
    ];
    const r = run({}, summary({ uploaded: 1, deletedRemote: 1, dryRun: true }), true, plan);
    expect(r.stdout).toContain('would upload new.txt (5 B)\n');
    expect(r.stdout).toContain('would delete remotely old.txt\n');
    expect(r.stdout).toContain('push demo (dry run): 1 to upload, 1 to delete remotely');
    expect(r.code).toBe(0);
    // counts come from the plan when the verb's summary leaves them at zero
    const untallied = run({}, summary({ dryRun: true }), true, plan);
    expect(untallied.stdout).toContain('push demo (dry run): 1 to upload, 1 to delete remotely');
  });

  it('says up to date when nothing moved', () => {
    expect(summaryLine({ verb: 'pull', id: 'x', dryRun: false }, summary({ unchanged: 4, seconds: 0.25 }))).toBe('pull x: up to date (4 unchanged) in 0.3s');
  });
});

describe('quiet', () => {
  it('prints only conflicts and errors', () => {
    const r = run({ quiet: true }, summary({ uploaded: 1, conflicts: ['both.txt'] }));
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('conflict: both.txt');
    expect(r.stderr).not.toContain('warning');
    expect(r.code).toBe(3);
  });
});

describe('json', () => {
  it('prints every event as one JSON line and a final summary', () => {
    const r = run({ json: true }, summary({ uploaded: 1, bytes: 2048 }));
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(EVENTS.length + 1);
    expect(lines.slice(0, EVENTS.length)).toEqual(EVENTS);
    expect(lines.at(-1)).toMatchObject({ type: 'summary', verb: 'push', id: 'demo', uploaded: 1, bytes: 2048, exitCode: 0 });
    expect(r.stderr).toBe('');
  });
});

describe('terminal', () => {
  it('draws a live line in place instead of per-file lines, and clears it before the summary', () => {
    const r = run({ tty: true }, summary({ uploaded: 1, bytes: 2048 }));
    expect(r.stdout).toContain('\r\x1b[K');
    expect(r.stdout).toMatch(/push demo: transfer · 1\/1 files · 2.00 KiB\/2.00 KiB/);
    expect(r.stdout).not.toContain('uploaded a.txt');
    expect(r.stdout.endsWith('\r\x1b[Kpush demo: 1 uploaded, 2.00 KiB in 1.0s, 2.00 KiB/s\n')).toBe(true);
  });
});

describe('formatBytes', () => {
  it('uses binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(148.148)).toBe('148 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(5 * 1024 ** 3)).toBe('5.00 GiB');
    expect(formatBytes(200 * 1024 ** 2)).toBe('200 MiB');
  });
});
