// Rendering a push or pull: subscribes to the progress stream and prints a live line, per-file lines or JSON lines, then the summary and exit code.
import type { Observable } from 'rxjs';
import type { FileAction, ProgressEvent } from '../engine/progress.js';
import { ExitCode } from '../errors.js';
import type { TransferSummary } from '../verbs/types.js';
import { formatBytes, formatSeconds, type Output } from './output.js';

/** TransferInfo names the run being rendered. */
export interface TransferInfo {
  verb: 'push' | 'pull';
  id: string;
  dryRun: boolean;
}

/** TransferRenderer is handed the verb's result at the end (or told that the verb failed). */
export interface TransferRenderer {
  /** finish prints what is left (unseen conflicts and errors, the summary) and returns the exit code. */
  finish(summary: TransferSummary): ExitCode;
  /** abandon stops rendering after the verb threw; the caller prints the error. */
  abandon(): void;
}

/** LIVE_REDRAW_MS throttles the in-place progress line. */
const LIVE_REDRAW_MS = 100;

const PAST_TENSE: Record<FileAction, string> = {
  upload: 'uploaded',
  download: 'downloaded',
  'delete-remote': 'deleted remotely',
  'delete-local': 'deleted locally',
  mkdir: 'created folder',
  conflict: 'conflict',
  skip: 'skipped',
};

const PLANNED: Record<FileAction, string> = {
  upload: 'would upload',
  download: 'would download',
  'delete-remote': 'would delete remotely',
  'delete-local': 'would delete locally',
  mkdir: 'would create folder',
  conflict: 'conflict',
  skip: 'would skip',
};

/**
 * exitCodeOf picks the exit code of a finished push/pull: conflicts → 3, per-path errors → 1 (2 when one of them was bad
 * input, e.g. an object key refused for escaping the workspace), else 0.
 */
export function exitCodeOf(summary: TransferSummary): ExitCode {
  if (summary.conflicts.length > 0) return ExitCode.conflicts;
  if (summary.errors.length > 0) return summary.errors.some((e) => e.exitCode === ExitCode.usage) ? ExitCode.usage : ExitCode.failed;
  return ExitCode.ok;
}

/** renderTransfer subscribes to a verb's progress events and renders them according to the output mode. */
export function renderTransfer(progress: Observable<ProgressEvent>, out: Output, info: TransferInfo, now: () => number = Date.now): TransferRenderer {
  const startedAt = now();
  let phase = '';
  let planned = 0;
  const plannedByAction: Partial<Record<FileAction, number>> = {};
  let plannedBytes = 0;
  let finished = 0;
  let finishedBytes = 0;
  const inFlight = new Map<string, number>();
  const conflictsShown = new Set<string>();
  const problemPaths = new Set<string>();
  let lastDraw = 0;

  const moved = () => {
    let sum = finishedBytes;
    for (const b of inFlight.values()) sum += b;
    return sum;
  };

  const draw = (force = false) => {
    if (!out.live) return;
    const t = now();
    if (!force && t - lastDraw < LIVE_REDRAW_MS) return;
    lastDraw = t;
    const seconds = Math.max((t - startedAt) / 1000, 0.001);
    const bytes = moved();
    const files = planned > 0 ? `${finished}/${planned} files` : `${finished} files`;
    const size = plannedBytes > 0 ? `${formatBytes(bytes)}/${formatBytes(plannedBytes)}` : formatBytes(bytes);
    out.status(`${info.verb} ${info.id}: ${phase || 'starting'} · ${files} · ${size} · ${formatBytes(bytes / seconds)}/s`);
  };

  const onEvent = (event: ProgressEvent) => {
    if (out.json) {
      out.jsonLine(event);
      return;
    }
    switch (event.type) {
      case 'phase':
        phase = event.phase;
        if (out.verbose && !out.live) out.line(`${info.verb} ${info.id}: ${event.phase}`);
        draw(true);
        break;
      case 'plan':
        plannedByAction[event.action] = (plannedByAction[event.action] ?? 0) + 1;
        if (event.action !== 'skip' && event.action !== 'conflict') {
          planned++;
          plannedBytes += event.size ?? 0;
        }
        if (info.dryRun && (event.action !== 'skip' || out.verbose) && event.action !== 'conflict') {
          out.line(`${PLANNED[event.action]} ${event.path}${sizeNote(event.size)}${event.reason && out.verbose ? ` (${event.reason})` : ''}`);
        } else if (out.verbose && event.action === 'skip') {
          out.line(`skip ${event.path}${event.reason ? ` (${event.reason})` : ''}`);
        }
        draw();
        break;
      case 'bytes':
        inFlight.set(event.path, event.bytes);
        draw();
        break;
      case 'done': {
        const partial = inFlight.get(event.path);
        inFlight.delete(event.path);
        if (event.action === 'upload' || event.action === 'download') finishedBytes += event.size ?? partial ?? 0;
        if (event.action !== 'skip' && event.action !== 'conflict') finished++;
        if (!out.live || out.verbose) {
          if (event.action !== 'skip' || out.verbose) out.line(`${PAST_TENSE[event.action]} ${event.path}${sizeNote(event.size)}`);
        }
        draw();
        break;
      }
      case 'warning':
        if (event.path !== undefined) problemPaths.add(event.path);
        // engine messages often name their path already (they also go to the daemon log, which has no path column)
        out.warning(`swm: warning: ${event.path !== undefined && !startsWithPath(event.message, event.path) ? `${event.path}: ` : ''}${event.message}`);
        break;
      case 'conflict':
        conflictsShown.add(event.path);
        out.problem(`conflict: ${event.path}: ${event.reason}`);
        break;
    }
  };

  const subscription = progress.subscribe({ next: onEvent });

  return {
    finish(summary) {
      subscription.unsubscribe();
      out.clearStatus();
      const code = exitCodeOf(summary);
      if (out.json) {
        out.jsonLine({ type: 'summary', verb: info.verb, id: info.id, ...summary, exitCode: code });
        return code;
      }
      for (const path of summary.conflicts) if (!conflictsShown.has(path)) out.problem(`conflict: ${path}`);
      for (const error of summary.errors) {
        if (!problemPaths.has(error.path)) out.problem(`swm: ${error.path}: ${error.message}`);
      }
      // a dry run's counts are what the plan announced, whether or not the verb tallied them in its summary
      const shown = info.dryRun
        ? {
            ...summary,
            uploaded: Math.max(summary.uploaded, plannedByAction.upload ?? 0),
            downloaded: Math.max(summary.downloaded, plannedByAction.download ?? 0),
            deletedRemote: Math.max(summary.deletedRemote, plannedByAction['delete-remote'] ?? 0),
            deletedLocal: Math.max(summary.deletedLocal, plannedByAction['delete-local'] ?? 0),
          }
        : summary;
      out.line(summaryLine(info, shown));
      if (summary.conflicts.length > 0) {
        out.problem(
          `swm: ${summary.conflicts.length} conflict${summary.conflicts.length === 1 ? '' : 's'}: both sides changed, both were left as they are; keep one side (edit or delete the other) and run ${info.verb} again`,
        );
      }
      return code;
    },
    abandon() {
      subscription.unsubscribe();
      out.clearStatus();
    },
  };
}

/** startsWithPath: the message already opens with the path ("a.txt: …", "a.txt changed …"), so it is not prefixed again. */
function startsWithPath(message: string, path: string): boolean {
  return message.startsWith(path) && (message[path.length] === ':' || message[path.length] === ' ');
}

function sizeNote(size: number | undefined): string {
  return size === undefined ? '' : ` (${formatBytes(size)})`;
}

/** summaryLine is the one closing line of a push or pull. */
export function summaryLine(info: TransferInfo, s: TransferSummary): string {
  const counts: string[] = [];
  const add = (n: number, what: string) => {
    if (n > 0) counts.push(`${n} ${what}`);
  };
  if (info.dryRun) {
    add(s.uploaded, 'to upload');
    add(s.downloaded, 'to download');
    add(s.deletedRemote, 'to delete remotely');
    add(s.deletedLocal, 'to delete locally');
  } else {
    add(s.uploaded, 'uploaded');
    add(s.downloaded, 'downloaded');
    add(s.deletedRemote, 'deleted remotely');
    add(s.deletedLocal, 'deleted locally');
  }
  const moved = counts.length > 0;
  if (s.bytes > 0) counts.push(formatBytes(s.bytes));
  add(s.unchanged, 'unchanged');
  add(s.conflicts.length, s.conflicts.length === 1 ? 'conflict' : 'conflicts');
  add(s.errors.length, s.errors.length === 1 ? 'error' : 'errors');
  const head = `${info.verb} ${info.id}${info.dryRun ? ' (dry run)' : ''}:`;
  const body = !moved && s.conflicts.length === 0 && s.errors.length === 0 ? `up to date${s.unchanged > 0 ? ` (${s.unchanged} unchanged)` : ''}` : counts.join(', ');
  const rate = !info.dryRun && s.bytes > 0 && s.seconds > 0 ? `, ${formatBytes(s.bytes / s.seconds)}/s` : '';
  return `${head} ${body}${info.dryRun ? '' : ` in ${formatSeconds(s.seconds)}${rate}`}`;
}
