// Upload intents: before an upload starts, its (path, xxh64) is appended to `<state file>.intents`, so that after a crash an
// object in the bucket that this workspace put there — but never recorded in the state — is recognised as ours, not a conflict.
import { appendFileSync, readFileSync, unlinkSync } from 'node:fs';
import { errnoCode } from '../errors.js';

/** UploadIntents maps a workspace-relative path to the hashes this workspace started uploading for it since the last commit. */
export type UploadIntents = ReadonlyMap<string, ReadonlySet<string>>;

function intentsFile(stateFile: string): string {
  return `${stateFile}.intents`;
}

/**
 * recordUploadIntent appends one intent. A plain append survives a kill -9 (the page cache outlives the process), which
 * is the crash this guards against; an OS crash loses at most intents of uploads that then never finished either.
 */
export function recordUploadIntent(stateFile: string, path: string, hash: string): void {
  appendFileSync(intentsFile(stateFile), JSON.stringify([path, hash]) + '\n', { mode: 0o600 });
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
