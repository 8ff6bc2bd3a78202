// Journal unit tests: coalescing per path, folder deletes, cursors, torn last lines, rotation, pruning, identity, file modes.
import { afterEach, describe, expect, it } from 'vitest';
import { appendFileSync, rmSync, statSync } from 'node:fs';
import { JournalWriter, journalFiles, listSegments, pruneJournal, readJournalDeltas, type FileEventLine } from '../../src/watch/journal.js';
import { swmPaths } from '../../src/state/paths.js';
import { cleanup, tempFolder } from './fixtures.js';

afterEach(cleanup);

const ev = (e: 'c' | 'u' | 'd', p: string): FileEventLine => ({ t: Date.now(), e, p });

function openJournal(rotateBytes?: number): { ws: string; w: JournalWriter } {
  const ws = tempFolder();
  const w = new JournalWriter(ws, rotateBytes);
  w.open();
  return { ws, w };
}

describe('readJournalDeltas', () => {
  it('coalesces per path with the last event winning, and a folder delete covers what was recorded under it', () => {
    const { ws, w } = openJournal();
    w.append([
      ev('c', 'a'), ev('u', 'a'),
      ev('c', 'b'), ev('d', 'b'),
      ev('c', 'dir/x'), ev('c', 'dir/sub/y'), ev('d', 'dir'), ev('c', 'dir/z'),
      ev('d', 'back'), ev('c', 'back'),
      ev('c', 'a/b'), ev('c', 'a.b'), ev('c', 'a0'),
    ]);
    w.append([{ t: Date.now(), e: 'gap', reason: 'test' }]);
    w.close();
    const d = readJournalDeltas(ws, undefined);
    expect(d.changed).toEqual(['a', 'a.b', 'a/b', 'a0', 'back', 'dir/z']); // S3 byte order: '.' < '/' < '0'
    expect(d.deleted).toEqual(['b', 'dir', 'dir/sub/y', 'dir/x']);
  });

  it('reads only what follows a cursor, ignores a torn last line until it is complete, and skips a torn line followed by others', () => {
    const { ws, w } = openJournal();
    w.append([ev('c', 'one')]);
    const first = readJournalDeltas(ws, undefined);
    expect(first.changed).toEqual(['one']);
    w.append([ev('c', 'two')]);
    w.sync();
    const segment = journalFiles(ws).segment(listSegments(ws).at(-1)!);
    appendFileSync(segment, '{"t":1,"e":"c","p":"thr'); // a write in progress (or cut by a crash)
    const second = readJournalDeltas(ws, first.cursor);
    expect(second.changed).toEqual(['two']);
    expect(readJournalDeltas(ws, second.cursor).changed).toEqual([]);
    appendFileSync(segment, 'ee"}\n');
    const third = readJournalDeltas(ws, second.cursor);
    expect(third.changed).toEqual(['three']);
    appendFileSync(segment, '{"t":1,"e":"c","p":"tor\n'); // torn by a crash, then followed by more lines
    w.append([ev('d', 'one')]);
    const fourth = readJournalDeltas(ws, third.cursor);
    expect(fourth).toMatchObject({ changed: [], deleted: ['one'] });
    w.close();
  });

  it('rotates into several segments, reads across them, and prunes the consumed ones', () => {
    const { ws, w } = openJournal(300);
    for (let i = 0; i < 30; i++) w.append([ev('c', `f${String(i).padStart(2, '0')}`)]);
    const mid = readJournalDeltas(ws, undefined);
    for (let i = 30; i < 40; i++) w.append([ev('c', `f${i}`)]);
    w.close();
    expect(listSegments(ws).length).toBeGreaterThan(3);
    expect(mid.changed).toHaveLength(30);
    const rest = readJournalDeltas(ws, mid.cursor);
    expect(rest.changed).toEqual(Array.from({ length: 10 }, (_, i) => `f${30 + i}`));
    const before = listSegments(ws);
    const removed = pruneJournal(ws, rest.cursor);
    expect(removed).toBeGreaterThan(0);
    expect(listSegments(ws)).toEqual(before.filter((s) => s >= rest.cursor.seg));
    expect(readJournalDeltas(ws, rest.cursor).changed).toEqual([]);
  });

  it('starts a new segment on every open, so that a crashed writer\'s torn tail is never appended to', () => {
    const { ws, w } = openJournal();
    w.append([ev('c', 'a')]);
    w.close();
    appendFileSync(journalFiles(ws).segment(1), '{"t":1,"e":"d","p":"a'); // crash mid-line
    const again = new JournalWriter(ws);
    again.open();
    again.append([ev('c', 'b')]);
    again.close();
    expect(listSegments(ws)).toEqual([1, 2]);
    expect(readJournalDeltas(ws, undefined)).toMatchObject({ changed: ['a', 'b'], deleted: [] });
  });

  it('reads a recreated journal from its start even when given a cursor of the old one', () => {
    const { ws, w } = openJournal();
    for (let i = 0; i < 5; i++) w.append([ev('c', `old${i}`)]);
    w.close();
    const { cursor } = readJournalDeltas(ws, undefined);
    rmSync(swmPaths(ws).dir, { recursive: true });
    const fresh = new JournalWriter(ws);
    fresh.open();
    fresh.append([ev('c', 'new')]);
    fresh.close();
    expect(readJournalDeltas(ws, cursor).changed).toEqual(['new']);
  });

  it('keeps the journal private: folder 0700, segments 0600', () => {
    const { ws, w } = openJournal();
    w.append([ev('c', 'x')]);
    w.close();
    expect(statSync(journalFiles(ws).dir).mode & 0o777).toBe(0o700);
    expect(statSync(journalFiles(ws).segment(1)).mode & 0o777).toBe(0o600);
  });

  it('returns an empty delta and a usable cursor when there is no journal yet', () => {
    const ws = tempFolder();
    const d = readJournalDeltas(ws, undefined);
    expect(d).toMatchObject({ changed: [], deleted: [] });
    const w = new JournalWriter(ws);
    w.open();
    w.append([ev('c', 'later')]);
    w.close();
    expect(readJournalDeltas(ws, d.cursor).changed).toEqual(['later']);
  });
});
