// The one progress-event stream: the engine emits these, renderers (TTY, JSON lines, daemon log) subscribe. The engine never prints.
import { Subject } from './flow.js';

export type FileAction = 'upload' | 'download' | 'delete-remote' | 'delete-local' | 'mkdir' | 'conflict' | 'skip';

export type ProgressEvent =
  /** a phase of the verb started: "scan", "list-remote", "compare", "transfer", "commit". */
  | { type: 'phase'; phase: string }
  /** one planned action (also emitted in --dry-run, where nothing follows). */
  | { type: 'plan'; action: FileAction; path: string; size?: number; reason?: string }
  /** bytes moved for a file so far (cumulative for that file). */
  | { type: 'bytes'; path: string; bytes: number; total?: number }
  /** a file's action finished. */
  | { type: 'done'; action: FileAction; path: string; size?: number }
  /** a problem with one path that did not stop the run (unreadable file, skipped special file). */
  | { type: 'warning'; message: string; path?: string }
  /** one conflict: both sides changed with different content. */
  | { type: 'conflict'; path: string; reason: string };

/** ProgressSink is where a verb sends events; a Subject so that several renderers may subscribe. */
export type ProgressSink = Subject<ProgressEvent>;

export function createProgress(): ProgressSink {
  return new Subject<ProgressEvent>();
}
