// Stage: list the remote side. Streams the objects under dest as workspace-relative entries in key order, excludes applied, unsafe keys refused.
import type { ObjectInfo, ObjectMeta, Storage } from '../storage/types.js';
import { unsafeRelativePath } from '../keys.js';
import type { ExcludeRules } from './exclude.js';
import type { LocalEntry } from './scan.js';

/** RemoteEntry is one object under dest, named by its workspace-relative path (folder markers end in '/'). */
export interface RemoteEntry {
  path: string;
  info: ObjectInfo;
}

/** UnsafeKey is an object whose key would land outside the workspace; it is refused, never written. */
export interface UnsafeKey {
  key: string;
  reason: string;
}

/**
 * READ_AHEAD is how many listed entries a RemoteListing holds, unread, before it waits for its reader: 3 S3 pages, enough
 * to keep the next request in flight; more would only age entries into the old generation of the heap.
 */
const READ_AHEAD = 3_000;
/** BATCH is the most entries handed on at a time; a smaller batch goes as soon as the listing waits for its next page. */
const BATCH = 256;

/** ListedBatch is a run of listed entries, and the unsafe keys met among them (reported when the batch is read). */
interface ListedBatch {
  entries: RemoteEntry[];
  unsafe: UnsafeKey[];
}

/**
 * RemoteListing lists the objects under dest from the moment it is created, reading ahead of its reader (at most
 * READ_AHEAD entries): the next LIST page is in flight while the current one is compared, and the first pages arrive
 * while the caller still does local work (validating the state, scanning). It also answers "is anything there at all?"
 * from the same listing, so that check costs no request of its own. Entries are read once, in key order, with excludes
 * applied and keys that escape the workspace refused.
 */
export class RemoteListing {
  private readonly queue: ListedBatch[] = [];
  private queued = 0;
  private current: ListedBatch = { entries: [], unsafe: [] };
  private publishScheduled = false;
  private seenAny = false;
  private finished = false;
  private failure: unknown;
  private closed = false;
  /** the reader waiting for a batch, the pump waiting for room, callers of hasAny waiting for the first object. */
  private wakeReader: (() => void) | undefined;
  private wakePump: (() => void) | undefined;
  private firstSeen: (() => void)[] = [];

  constructor(
    private readonly storage: Storage,
    private readonly dest: string,
    private readonly rules: ExcludeRules,
  ) {
    void this.pump();
  }

  private async pump(): Promise<void> {
    const iterator = this.storage.list(this.dest)[Symbol.asyncIterator]();
    try {
      for (;;) {
        while (this.queued >= READ_AHEAD && !this.closed) await new Promise<void>((resolve) => (this.wakePump = resolve));
        if (this.closed) break;
        const next = await iterator.next();
        if (next.done) break;
        this.add(next.value);
      }
    } catch (e) {
      this.failure = e;
    } finally {
      this.finished = true;
      this.publish();
      this.wakeReader?.();
      for (const resolve of this.firstSeen.splice(0)) resolve();
      if (this.closed) await Promise.resolve(iterator.return?.(undefined)).catch(() => {});
    }
  }

  private add(info: ObjectInfo): void {
    const path = info.key.slice(this.dest.length);
    if (path.length === 0) return; // the dest folder marker itself
    if (!this.seenAny) {
      this.seenAny = true;
      for (const resolve of this.firstSeen.splice(0)) resolve();
    }
    const unsafe = unsafeRelativePath(path);
    if (unsafe) this.current.unsafe.push({ key: info.key, reason: unsafe });
    else {
      const isDir = path.endsWith('/');
      if (this.rules.excludes(isDir ? path.slice(0, -1) : path, isDir)) return;
      this.current.entries.push({ path, info });
    }
    if (this.current.entries.length >= BATCH) this.publish();
    else if (!this.publishScheduled) {
      // what arrived goes to the reader as soon as the listing waits for the server
      this.publishScheduled = true;
      setImmediate(() => {
        this.publishScheduled = false;
        this.publish();
      });
    }
  }

  private publish(): void {
    const batch = this.current;
    if (batch.entries.length === 0 && batch.unsafe.length === 0) return;
    this.current = { entries: [], unsafe: [] };
    this.queue.push(batch);
    this.queued += batch.entries.length;
    this.wakeReader?.();
  }

  /** hasAny tells whether anything at all exists under dest (excluded or refused objects count). */
  async hasAny(): Promise<boolean> {
    if (!this.seenAny && !this.finished) await new Promise<void>((resolve) => this.firstSeen.push(resolve));
    if (!this.seenAny && this.failure !== undefined) throw this.failure;
    return this.seenAny;
  }

  /** batches yields the listed entries in key order, a batch at a time; unsafe keys go to onUnsafe and are skipped. Once only. */
  async *batches(onUnsafe: (u: UnsafeKey) => void): AsyncGenerator<RemoteEntry[]> {
    try {
      for (;;) {
        const batch = this.queue.shift();
        if (batch) {
          this.queued -= batch.entries.length;
          this.wakePump?.();
          for (const u of batch.unsafe) onUnsafe(u);
          if (batch.entries.length > 0) yield batch.entries;
          continue;
        }
        if (this.finished) {
          if (this.failure !== undefined) throw this.failure;
          return;
        }
        await new Promise<void>((resolve) => (this.wakeReader = resolve));
        this.wakeReader = undefined;
      }
    } finally {
      this.close();
    }
  }

  /** close stops reading ahead; what was not read is dropped. */
  close(): void {
    this.closed = true;
    this.wakePump?.();
  }
}

/** listRemote streams the objects under dest. Keys that escape the workspace go to onUnsafe and are skipped. */
export async function* listRemote(
  storage: Storage,
  dest: string,
  rules: ExcludeRules,
  onUnsafe: (u: UnsafeKey) => void,
): AsyncGenerator<RemoteEntry> {
  for await (const batch of new RemoteListing(storage, dest, rules).batches(onUnsafe)) yield* batch;
}

/** metaFor is the object metadata that travels with a local entry. */
export function metaFor(entry: LocalEntry, hash: string): ObjectMeta {
  return { hash, mtimeMs: entry.mtimeMs, mode: entry.mode, type: entry.type };
}
