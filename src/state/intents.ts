// Upload intents: before an upload starts, its (path, xxh64) is appended to `<state file>.intents`, so that after a crash an
// object in the bucket that this workspace put there — but never recorded in the state — is recognised as ours, not a conflict.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { errnoCode } from '../errors.js';

/** UploadIntents maps a workspace-relative path to the hashes this workspace started uploading for it since the last commit. */
export type UploadIntents = ReadonlyMap<string, ReadonlySet<string>>;

function intentsFile(stateFile: string): string {
  return `${stateFile}.intents`;
}

/**
 * UploadIntentLog appends intents to the file, kept open for one upload pass (one open for the pass instead of one per
 * upload). A plain append survives a kill -9 (the page cache outlives the process), which is the crash this guards
 * against; an OS crash loses at most intents of uploads that then never finished either.
 */
export class UploadIntentLog {
  private fd: number | undefined;

  constructor(private readonly stateFile: string) {}

  /** record appends one intent: call it before the upload starts. */
  record(path: string, hash: string): void {
    this.fd ??= openSync(intentsFile(this.stateFile), 'a', 0o600);
    writeSync(this.fd, JSON.stringify([path, hash]) + '\n');
  }

  /** close ends the pass (intents recorded later reopen the file). */
  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/** readUploadIntents loads the intents left since the last full commit (a torn last line is ignored). */
export function readUploadIntents(stateFile: string): UploadIntents {
  const intents = new Map<string, Set<string>>();
  let text: string;
  try {
    text = readFileSync(intentsFile(stateFile), 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return intents;
    throw e;
  }
  for (const line of text.split('\n')) {
    try {
      const [path, hash] = JSON.parse(line) as unknown[];
      if (typeof path === 'string' && typeof hash === 'string') {
        const set = intents.get(path) ?? new Set<string>();
        set.add(hash);
        intents.set(path, set);
      }
    } catch {
      /* empty or torn line */
    }
  }
  return intents;
}

/** clearUploadIntents drops the intents once every upload they describe is in the committed state. */
export function clearUploadIntents(stateFile: string): void {
  try {
    unlinkSync(intentsFile(stateFile));
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
  }
}
