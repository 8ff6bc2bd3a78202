// Text rendering of `swm sync status` and `swm sync auto --status` reports: aligned, readable lines.
import type { AutoStatusReport, CycleRecord, PathSample, StatusReport } from '../verbs/types.js';
import { formatBytes } from './output.js';

/** statusLines renders a StatusReport as labelled lines. */
export function statusLines(r: StatusReport): string[] {
  const rows: [string, string][] = [
    ['workspace', `${r.id} → ${r.workspace}`],
    ['bucket', r.bucket],
    ['dest', r.dest === '' ? '(bucket root)' : r.dest],
    ['last push', r.lastPush ? `${r.lastPush.at} (${plural(r.lastPush.files, 'file')})` : 'never'],
    ['last pull', r.lastPull ? `${r.lastPull.at} (${plural(r.lastPull.files, 'file')})` : 'never'],
    ['watcher', watcherText(r.watcher)],
    ['daemon', daemonText(r.daemon)],
    ['pending', pendingText([
      [r.pending.changed, 'changed'],
      [r.pending.new, 'new'],
      [r.pending.deleted, 'deleted'],
    ])],
  ];
  if (r.remote) {
    rows.push(['remote', pendingText([
      [r.remote.toDownload, 'to download'],
      [r.remote.toDeleteLocal, 'to delete locally'],
      [r.remote.conflicts, r.remote.conflicts.count === 1 ? 'conflict' : 'conflicts'],
    ])]);
  }
  if (r.tar) rows.push(['tar', r.tar.exists ? [r.tar.size !== undefined ? formatBytes(r.tar.size) : 'present', r.tar.at ? `at ${r.tar.at}` : ''].filter(Boolean).join(' ') : 'none']);
  return aligned(rows);
}

/** autoStatusLines renders the daemon's state and the tail of its log. */
export function autoStatusLines(
  id: string,
  r: AutoStatusReport & { watcher?: StatusReport['watcher']; totals?: { cycles: number; files: number; bytes: number; errors: number } },
): string[] {
  const rows: [string, string][] = [['daemon', daemonText({ ...r, lastCycle: undefined })]];
  if (r.lastCycle) rows.push(['last cycle', cycleText(r.lastCycle)]);
  if (r.totals) {
    const t = r.totals;
    rows.push(['totals', `${plural(t.cycles, 'cycle')}, ${plural(t.files, 'file')} pushed, ${formatBytes(t.bytes)}, ${plural(t.errors, 'error')}`]);
  }
  if (r.watcher) rows.push(['watcher', watcherText(r.watcher)]);
  const lines = aligned(rows.map(([k, v]) => [k, k === 'daemon' ? `${id}: ${v}` : v]));
  if (r.logTail.length > 0) {
    lines.push('log (most recent last):');
    for (const l of r.logTail) lines.push(`  ${l}`);
  }
  return lines;
}

function watcherText(w: StatusReport['watcher']): string {
  if (!w.running) return 'not running';
  const parts = [w.pid !== undefined ? `pid ${w.pid}` : '', w.since ? `since ${w.since}` : '', w.fingerprint ? `excludes ${w.fingerprint}` : ''].filter(Boolean);
  return `running${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

function daemonText(d: { running: boolean; pid?: number; since?: string; interval?: number; lastCycle?: CycleRecord }): string {
  if (!d.running) return d.lastCycle ? `not running; last cycle ${cycleText(d.lastCycle)}` : 'not running';
  const parts = [d.pid !== undefined ? `pid ${d.pid}` : '', d.since ? `since ${d.since}` : ''].filter(Boolean);
  const every = d.interval !== undefined ? ` every ${d.interval}s` : '';
  return `running${every}${parts.length ? ` (${parts.join(', ')})` : ''}${d.lastCycle ? `; last cycle ${cycleText(d.lastCycle)}` : ''}`;
}

function cycleText(c: CycleRecord): string {
  const what = `${plural(c.files, 'file')}, ${formatBytes(c.bytes)}`;
  return `${c.at} ${c.result} (${what})${c.error ? `: ${c.error}` : ''}`;
}

function pendingText(groups: [PathSample, string][]): string {
  const total = groups.reduce((n, [g]) => n + g.count, 0);
  if (total === 0) return 'none';
  const counts = groups.filter(([g]) => g.count > 0).map(([g, label]) => `${g.count} ${label}`).join(', ');
  const sample = groups.flatMap(([g]) => g.sample);
  const shown = sample.slice(0, 5);
  return `${counts}${shown.length ? `: ${shown.join(', ')}${total > shown.length ? ', …' : ''}` : ''}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function aligned(rows: [string, string][]): string[] {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
}
