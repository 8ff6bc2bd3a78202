// Runs one timed command (a single program or a shell pipeline) and measures its wall time and peak RSS with GNU time.
//
// Peak RSS: every program (each stage of a pipeline) runs under `/usr/bin/time -f %M`, which reports the
// largest resident set of that process or of any descendant it waited for; a pipeline's peak is the SUM of
// its stages' peaks (they stream concurrently, so this is the process tree's peak, bounded from above).
// Wall time is measured here, from spawn to exit (the GNU time wrapper adds ~1 ms).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';

const GNU_TIME = '/usr/bin/time';

/** shellQuote quotes one argument for bash. */
export function shellQuote(arg) {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(arg) ? arg : `'${String(arg).replace(/'/g, `'\\''`)}'`;
}

/** hasGnuTime says whether /usr/bin/time is there (peak RSS is reported as unknown without it). */
export function hasGnuTime() {
  return existsSync(GNU_TIME);
}

/**
 * measure runs `stages` (an array of argv arrays: one = a plain command, more = a pipeline) with `env`,
 * output appended to logFile; resolves { ok, wallS, rssKiB, code, error }. `timeoutS` kills the process group.
 */
export function measure({ stages, env, logFile, timeoutS = 3600, cwd }) {
  const useTime = hasGnuTime();
  const rssFiles = stages.map((_, i) => `${logFile}.rss${i}`);
  for (const f of rssFiles) rmSync(f, { force: true });
  const wrap = (argv, i) => (useTime ? [GNU_TIME, '-f', '%M', '-o', rssFiles[i], ...argv] : argv);
  let file;
  let args;
  if (stages.length === 1) {
    [file, ...args] = wrap(stages[0], 0);
  } else {
    const script = stages.map((argv, i) => wrap(argv, i).map(shellQuote).join(' ')).join(' | ');
    file = 'bash';
    args = ['-c', `set -o pipefail; ${script}`];
  }
  const log = openSync(logFile, 'a');
  const logStart = readSize(logFile);
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    let timedOut = false;
    const child = spawn(file, args, { env, cwd, stdio: ['ignore', log, log], detached: true });
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, timeoutS * 1000);
    const finish = (code, spawnError) => {
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      clearTimeout(timer);
      closeSync(log);
      let rssKiB = null;
      if (useTime) {
        rssKiB = 0;
        for (const f of rssFiles) {
          const peak = readPeak(f);
          if (peak === null) rssKiB = null;
          else if (rssKiB !== null) rssKiB += peak;
          rmSync(f, { force: true });
        }
      }
      const ok = code === 0 && !timedOut && !spawnError;
      let error = null;
      if (!ok) error = timedOut ? `timed out after ${timeoutS}s` : spawnError ? spawnError.message : `exit ${code}: ${firstErrorLine(logFile, logStart)}`;
      resolve({ ok, wallS, rssKiB, code, error });
    };
    child.on('error', (e) => finish(null, e));
    child.on('exit', (code, signal) => finish(code ?? (signal ? 128 : 1)));
  });
}

function readSize(file) {
  try {
    return readFileSync(file).length;
  } catch {
    return 0;
  }
}

/** readPeak parses GNU time's -o file (its last line is %M; a "Command exited with non-zero status" line may precede it). */
function readPeak(file) {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    const n = Number(lines[lines.length - 1]);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/** firstErrorLine is the first non-empty line the command wrote (its error, usually), from byte `from` of the log. */
function firstErrorLine(logFile, from) {
  try {
    const text = readFileSync(logFile).subarray(from).toString('utf8');
    const line = text.split('\n').map((l) => l.trim()).find((l) => l && !/^Command exited with non-zero status/.test(l));
    return line ? line.slice(0, 200) : '(no output)';
  } catch {
    return '(no log)';
  }
}
