// Child process of the watcher: crawls the workspace with @parcel/watcher into a new snapshot, then lists the events since an
// older snapshot as JSON lines on stdout. It runs apart from the watcher because, in a process with a live subscription,
// @parcel/watcher answers snapshot calls from its in-memory tree (as incomplete as the live events) instead of a fresh crawl.
import watcher from '@parcel/watcher';
import { join } from 'node:path';
import { SWM_DIR } from '../state/paths.js';

async function main(): Promise<number> {
  const [root, newSnapshot, oldSnapshot] = process.argv.slice(2);
  if (!root || !newSnapshot || !oldSnapshot) {
    process.stderr.write('usage: snapshot-process.js <workspace> <new snapshot|-> <old snapshot|->\n');
    return 2;
  }
  const opts = { ignore: [join(root, SWM_DIR)] };
  try {
    // new first: a change between the two crawls then shows in this diff and again in the next one, never in neither
    if (newSnapshot !== '-') await watcher.writeSnapshot(root, newSnapshot, opts);
    if (oldSnapshot !== '-') {
      const events = await watcher.getEventsSince(root, oldSnapshot, opts);
      let out = '';
      for (const e of events) {
        out += JSON.stringify({ type: e.type, path: e.path }) + '\n';
        if (out.length > 1 << 20) {
          await write(out);
          out = '';
        }
      }
      await write(out);
    }
    await write(JSON.stringify({ done: true }) + '\n');
    return 0;
  } catch (e) {
    await write(JSON.stringify({ error: (e as Error).message }) + '\n');
    return 1;
  }
}

function write(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (text.length === 0) return resolve();
    process.stdout.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

main().then((code) => process.exit(code), () => process.exit(1));
