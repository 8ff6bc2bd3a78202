// Text rendering of status reports: every section appears in readable, aligned lines.
import { describe, expect, it } from 'vitest';
import { autoStatusLines, statusLines } from '../../src/cli/render-status.js';
import type { StatusReport } from '../../src/verbs/types.js';

const none = { count: 0, sample: [] };

describe('statusLines', () => {
  it('renders a fresh workspace', () => {
    const lines = statusLines({
      id: 'demo',
      workspace: '/ws',
      bucket: 'file:/b',
      dest: 'demo/',
      watcher: { running: false },
      daemon: { running: false },
      pending: { changed: none, new: none, deleted: none },
    });
    expect(lines).toEqual([
      'workspace  demo → /ws',
      'bucket     file:/b',
      'dest       demo/',
      'last push  never',
      'last pull  never',
      'watcher    not running',
      'daemon     not running',
      'pending    none',
    ]);
  });

  it('renders a busy workspace with remote and tar sections', () => {
    const report: StatusReport = {
      id: 'runpod:abc',
      workspace: '/ws',
      bucket: 's3:team',
      dest: '',
      lastPush: { at: '2025-01-02T03:04:05Z', files: 1 },
      lastPull: { at: '2025-01-01T00:00:00Z', files: 12 },
      watcher: { running: true, pid: 42, since: '2025-01-02T00:00:00Z', fingerprint: 'drifted' },
      daemon: { running: true, pid: 43, interval: 60, lastCycle: { at: '2025-01-02T03:05:00Z', result: 'ok', files: 2, bytes: 2048 } },
      pending: { changed: { count: 7, sample: ['a', 'b'] }, new: { count: 1, sample: ['c'] }, deleted: none },
      remote: { toDownload: { count: 2, sample: ['r1', 'r2'] }, toDeleteLocal: none, conflicts: { count: 1, sample: ['x'] } },
      tar: { exists: true, size: 1024 ** 3, at: '2025-01-01T00:00:00Z' },
    };
    const text = statusLines(report).join('\n');
    expect(text).toContain('dest       (bucket root)');
    expect(text).toContain('last push  2025-01-02T03:04:05Z (1 file)');
    expect(text).toContain('last pull  2025-01-01T00:00:00Z (12 files)');
    expect(text).toContain('watcher    running (pid 42, since 2025-01-02T00:00:00Z, excludes drifted)');
    expect(text).toContain('daemon     running every 60s (pid 43); last cycle 2025-01-02T03:05:00Z ok (2 files, 2.00 KiB)');
    expect(text).toContain('pending    7 changed, 1 new: a, b, c, …');
    expect(text).toContain('remote     2 to download, 1 conflict: r1, r2, x');
    expect(text).toContain('tar        1.00 GiB at 2025-01-01T00:00:00Z');
  });
});

describe('autoStatusLines', () => {
  it('shows the daemon, its last cycle and the log tail', () => {
    const lines = autoStatusLines('demo', {
      running: false,
      lastCycle: { at: 't1', result: 'error', files: 0, bytes: 0, error: 'endpoint unreachable' },
      logTail: ['line one', 'line two'],
      watcher: { running: true, pid: 7 },
    });
    expect(lines[2]).toBe('watcher     running (pid 7)');
    expect(lines[0]).toBe('daemon      demo: not running');
    expect(lines[1]).toBe('last cycle  t1 error (0 files, 0 B): endpoint unreachable');
    expect(lines.slice(-3)).toEqual(['log (most recent last):', '  line one', '  line two']);
  });

  it('shows the running totals of files, bytes and errors', () => {
    const lines = autoStatusLines('demo', {
      running: true,
      pid: 9,
      interval: 60,
      logTail: [],
      totals: { cycles: 3, files: 12, bytes: 2048, errors: 1 },
    });
    expect(lines).toContain('totals  3 cycles, 12 files pushed, 2.00 KiB, 1 error');
  });
});
