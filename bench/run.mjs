#!/usr/bin/env node
// The benchmark harness (issue 5): times swm against rclone, aws-cli, s5cmd and a bare-SDK ceiling on one local S3 server, alternating tools.
//
//   npm run bench                 quick sizes (~1/10), 3 runs each, a few minutes
//   npm run bench -- --full       the issue's sizes (10,000 files, 1 GiB, 100,000 tar files, 200,000-file tree)
//   options: --runs N  --cases a,b,c,d,e,f,g,h  --tools swm,rclone,aws,s5cmd,sdk-ceiling  --keep (keep the temp folder)
//            --no-install (skip scripts/install-bench-peers)  --out DIR (default bench/results)
//
// Progress goes to stderr; the table to stdout and to <out>/<date>.md (+ .json); quick runs write <date>-quick.*.
// Each timed step writes into a fresh prefix and pulls into a fresh folder; nothing is deleted right before a timed step.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { changedIndexes, changeFiles, makeBigFile, makeTree, restoreFiles, treeFilePath } from './lib/datasets.mjs';
import { hasGnuTime, measure } from './lib/measure.mjs';
import { markdownTable, rssScalingTable, summarize } from './lib/report.mjs';
import { makeTools } from './lib/tools.mjs';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const KiB = 1024;
const MiB = 1024 * KiB;
const ALL_CASES = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];

const { values: opts } = parseArgs({
  options: {
    full: { type: 'boolean', default: false },
    runs: { type: 'string' },
    cases: { type: 'string' },
    tools: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'no-install': { type: 'boolean', default: false },
    out: { type: 'string', default: join(repo, 'bench', 'results') },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opts.help) {
  process.stdout.write('usage: npm run bench [-- --full] [--runs N] [--cases a,b,...,h] [--tools swm,rclone,aws,s5cmd,sdk-ceiling] [--keep] [--no-install] [--out DIR]\n');
  process.exit(0);
}

const mode = opts.full ? 'full' : 'quick';
const runs = opts.runs ? Number(opts.runs) : 3;
if (!Number.isInteger(runs) || runs < 1) fail(`--runs must be a positive integer, got ${opts.runs}`);
const cases = new Set(opts.cases ? opts.cases.split(',').map((s) => s.trim()) : ALL_CASES);
for (const c of cases) if (!ALL_CASES.includes(c)) fail(`unknown case ${c} (cases: ${ALL_CASES.join(',')})`);

/** Sizes: the issue's in --full, about a tenth otherwise. */
const SIZES = opts.full
  ? { smallFiles: 10_000, bigBytes: 1024 * MiB, tarFiles: 100_000, scaleFiles: 200_000 }
  : { smallFiles: 1_000, bigBytes: 100 * MiB, tarFiles: 10_000, scaleFiles: 20_000 };
const CHANGED = 100;
const STARTUP_RUNS = Math.max(opts.full ? 10 : 5, runs);
const TIMEOUT_S = opts.full ? 3600 : 600;

const smallSpec = { files: SIZES.smallFiles, size: 4 * KiB, perFolder: SIZES.smallFiles / 100, seed: 'small' };
const tarSpec = { files: SIZES.tarFiles, size: 1 * KiB, perFolder: 100, perGroup: 100, seed: 'tar' };
const scaleSpec = { files: SIZES.scaleFiles, size: 1 * KiB, perFolder: 100, perGroup: 100, seed: 'scale' };

const t0 = Date.now();
/** progress prints one line to stderr, stamped with the seconds since start. */
function progress(msg) {
  process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);
}
function fail(msg) {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

// ---------- peers ----------

/** installPeers runs scripts/install-bench-peers and reads its `peer NAME ok PATH | missing REASON` lines. */
function installPeers() {
  const peers = {};
  let out = '';
  if (opts['no-install']) {
    progress('peers: --no-install, looking for installed ones only');
    const guess = { rclone: '/usr/bin/rclone', aws: '/usr/bin/aws', time: '/usr/bin/time', s5cmd: join(repo, '.cache', 'bin', 's5cmd') };
    for (const [name, path] of Object.entries(guess)) peers[name] = existsSync(path) ? { ok: true, path } : { ok: false, reason: `${path} not found (--no-install)` };
    return peers;
  }
  progress('peers: scripts/install-bench-peers');
  try {
    out = execFileSync(join(repo, 'scripts', 'install-bench-peers'), [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CI: 'true' }, timeout: 30 * 60_000 });
  } catch (e) {
    out = e.stdout ?? ''; // exit 1 = some peer missing; its lines are still on stdout
    if (!out) progress(`peers: install script failed: ${e.message.split('\n')[0]}`);
  }
  for (const line of out.split('\n')) {
    const m = /^peer (\S+) (ok|missing) ?(.*)$/.exec(line.trim());
    if (m) peers[m[1]] = m[2] === 'ok' ? { ok: true, path: m[3] } : { ok: false, reason: m[3] || 'install failed' };
  }
  for (const name of ['rclone', 'aws', 's5cmd', 'time']) peers[name] ??= { ok: false, reason: 'install script gave no answer' };
  for (const [name, p] of Object.entries(peers)) progress(`peer ${name}: ${p.ok ? p.path : `MISSING (${p.reason})`}`);
  return peers;
}

// ---------- S3 server ----------

/** startServer runs scripts/s3-server (pinned MinIO on a free loopback port) and waits for its five `export` lines. */
async function startServer(bucket, logFile) {
  const script = join(repo, 'scripts', 's3-server');
  let hasSetpriv = false;
  try {
    hasSetpriv = /pdeathsig/.test(execFileSync('setpriv', ['--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  } catch {}
  const [cmd, args] = hasSetpriv ? ['setpriv', ['--pdeathsig', 'TERM', script, bucket]] : [script, [bucket]];
  const { openSync } = await import('node:fs');
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', openSync(logFile, 'a')] });
  const vars = {};
  const lines = createInterface({ input: child.stdout });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`s3-server did not start in 15 min (log: ${logFile})`)), 15 * 60_000);
    child.on('exit', (code) => reject(new Error(`s3-server exited (${code}) before it was ready (log: ${logFile})`)));
    lines.on('line', (line) => {
      const m = /^export (\w+)=(.*)$/.exec(line);
      if (m) vars[m[1]] = m[2];
      if (Object.keys(vars).length >= 5) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return {
    endpoint: vars.AWS_ENDPOINT_URL,
    accessKeyId: vars.AWS_ACCESS_KEY_ID,
    secretAccessKey: vars.AWS_SECRET_ACCESS_KEY,
    region: vars.AWS_REGION,
    bucket: vars.SWM_TEST_BUCKET,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', resolve);
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 30_000).unref();
      }),
  };
}

// ---------- helpers ----------

/** countFiles counts the regular files under root whose relative path `accept`s (all when omitted). */
function countFiles(root, accept = () => true) {
  let n = 0;
  const stack = [''];
  while (stack.length) {
    const rel = stack.pop();
    let entries;
    try {
      entries = readdirSync(join(root, rel), { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile() && accept(p)) n++;
    }
  }
  return n;
}

/** isDataPath: a file of the generated data sets (f000123.bin), not swm's state or anything a tool adds beside it. */
const isDataPath = (p) => /(^|\/)f\d{6}\.bin$/.test(p) && !p.startsWith('.swm/');

/** rotate gives the tool order for run r: each run starts one tool later, so no tool always goes first. */
const rotate = (list, r) => list.map((_, i) => list[(i + r) % list.length]);

function version(argv) {
  try {
    return execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 }).split('\n')[0].trim();
  } catch {
    return 'unknown';
  }
}

// ---------- main ----------

async function main() {
  if (!existsSync(join(repo, 'dist', 'cli', 'main.js'))) fail('dist/cli/main.js is missing: run `npm run bench` (it builds first) or `npm run build`');
  const peers = installPeers();
  if (!hasGnuTime()) progress('WARNING: /usr/bin/time missing: peak RSS will be reported as unknown');

  const tmp = mkdtempSync(join(tmpdir(), 'swm-bench-'));
  const data = join(tmp, 'data');
  const pulls = join(tmp, 'pulls');
  const logs = join(tmp, 'logs');
  for (const d of [data, pulls, logs]) mkdirSync(d, { recursive: true });
  progress(`mode ${mode}: ${JSON.stringify(SIZES)}, ${runs} runs; temp folder ${tmp}`);

  let server;
  const cleanup = async () => {
    if (server) await server.stop().catch(() => {});
    server = undefined;
    if (!opts.keep) {
      progress(`removing ${tmp}`);
      rmSync(tmp, { recursive: true, force: true });
    } else progress(`kept ${tmp}`);
  };
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      progress(`${sig}: stopping`);
      cleanup().finally(() => process.exit(130));
    });
  }

  try {
    server = await startServer('swm-bench', join(logs, 's3-server.log'));
    progress(`S3 server on ${server.endpoint}, bucket ${server.bucket}`);
    const { makeS3Client, listKeys } = await import('./lib/s3-client.mjs');
    process.env.AWS_ENDPOINT_URL = server.endpoint;
    process.env.AWS_ACCESS_KEY_ID = server.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = server.secretAccessKey;
    process.env.AWS_REGION = server.region;
    const s3 = await makeS3Client();
    const bucket = server.bucket;

    /** remoteObjects lists {rel → size} under prefix/. */
    const remoteObjects = async (prefix) => {
      const m = new Map();
      for await (const o of listKeys(s3, bucket, `${prefix}/`)) m.set(o.Key.slice(prefix.length + 1), o.Size);
      return m;
    };
    /** deletePrefix removes every object under prefix/ (and prefix.tar*), untimed, to keep the server's disk small. */
    const deletePrefix = async (prefix) => {
      const { DeleteObjectsCommand } = await import('@aws-sdk/client-s3');
      const keys = [];
      for await (const o of listKeys(s3, bucket, prefix)) keys.push({ Key: o.Key });
      for (let i = 0; i < keys.length; i += 1000) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.slice(i, i + 1000), Quiet: true } }));
    };

    let tools = makeTools({ repo, tmp, bucket, server, peers });
    if (opts.tools) {
      const want = opts.tools.split(',').map((s) => s.trim());
      for (const w of want) if (!tools.some((t) => t.name === w)) fail(`unknown tool ${w} (tools: ${tools.map((t) => t.name).join(',')})`);
      tools = tools.filter((t) => want.includes(t.name));
    }
    const live = tools.filter((t) => !t.missing);
    const swmTool = tools.find((t) => t.kind === 'swm');

    const rows = [];
    const setupRows = [];
    /** row returns the result row of (case, tool), creating it in table order. */
    const rowOf = (list, caseId, label, unit, amount, tool) => {
      let r = list.find((x) => x.caseId === caseId && x.tool === tool.name);
      if (!r) {
        r = { caseId, label, unit, amount, tool: tool.name, kind: tool.kind, missing: tool.missing, runs: [] };
        list.push(r);
      }
      return r;
    };
    const addMissingRows = (caseId, label, unit, amount, step) => {
      for (const t of tools) if (t.missing && t.steps[step]) rowOf(rows, caseId, label, unit, amount, t);
    };

    /** timed runs one step of one tool and records it; `verify` (untimed) may turn a success into a failure. */
    const timed = async (row, tool, step, args, label, verify) => {
      const stages = tool.steps[step](args);
      const logFile = join(logs, `${row.caseId}-${tool.name}.log`);
      const res = await measure({ stages, env: tool.env, logFile, timeoutS: TIMEOUT_S });
      if (res.ok && verify) {
        try {
          const problem = await verify();
          if (problem) Object.assign(res, { ok: false, error: `verify: ${problem}` });
        } catch (e) {
          Object.assign(res, { ok: false, error: `verify: ${e.message}` });
        }
      }
      row.runs.push(res);
      const rss = res.rssKiB === null ? '?' : `${(res.rssKiB / 1024).toFixed(0)} MiB`;
      progress(`${label} ${tool.name}: ${res.ok ? `${res.wallS.toFixed(3)} s, ${rss}` : `FAILED ${res.error}`}`);
      return res.ok;
    };
    const skipped = (row, why) => row.runs.push({ ok: false, wallS: 0, rssKiB: null, error: why });

    // ----- data sets -----
    const smallDir = join(data, 'small');
    const bigDir = join(data, 'big');
    const bigFile = join(bigDir, 'big.bin');
    const tarDir = join(data, 'tar');
    const scaleDir = join(data, 'scale');
    const needSmall = ['a', 'b', 'c', 'd', 'h'].some((c) => cases.has(c));
    if (needSmall) {
      progress(`data: ${smallSpec.files} × 4 KiB in 100 folders`);
      makeTree(smallDir, smallSpec);
    }
    if (cases.has('e')) {
      progress(`data: one ${SIZES.bigBytes / MiB} MiB file`);
      mkdirSync(bigDir, { recursive: true });
      makeBigFile(bigFile, SIZES.bigBytes, 'big');
    }
    if (cases.has('f')) {
      progress(`data: ${tarSpec.files} × 1 KiB for --tar`);
      makeTree(tarDir, tarSpec);
    }
    if (cases.has('g')) {
      progress(`data: ${scaleSpec.files} × 1 KiB scale tree`);
      makeTree(scaleDir, scaleSpec);
    }
    const dataDone = Date.now();
    const swmState = (dir) => join(dir, '.swm');
    const dropSwmState = (dir) => rmSync(swmState(dir), { recursive: true, force: true });
    const pullDir = (caseId, tool, r) => {
      const d = join(pulls, caseId, `${tool.name}-r${r}`);
      mkdirSync(d, { recursive: true });
      return d;
    };

    // ----- (a)–(d): small files -----
    const N = smallSpec.files;
    const smallLabels = {
      a: `a push ${N.toLocaleString('en-US')} × 4 KiB (100 folders), empty prefix`,
      b: 'b no-op push (nothing changed)',
      c: `c push after changing ${CHANGED}`,
      d: 'd pull into an empty folder',
    };
    let statusTarget = null;
    if (['a', 'b', 'c', 'd'].some((c) => cases.has(c))) {
      const steps = { a: 'smallPush', b: 'smallNoop', c: 'smallChanged', d: 'smallPull' };
      for (const c of ['a', 'b', 'c', 'd']) if (cases.has(c)) addMissingRows(c, smallLabels[c], 'files', N, steps[c]);
      const changed = changedIndexes(smallSpec, CHANGED);
      const changedSet = new Set(changed.map((i) => treeFilePath(smallSpec, i)));
      const listFile = join(tmp, 'changed.txt');
      writeFileSync(listFile, [...changedSet].join('\n') + '\n');
      for (let r = 1; r <= runs; r++) {
        for (const tool of rotate(live, r - 1)) {
          const prefix = `small/${tool.name}-r${r}`;
          const args = { dir: smallDir, prefix, listFile };
          const row = (c) => rowOf(rows, c, smallLabels[c], 'files', N, tool);
          if (tool.kind === 'swm') dropSwmState(smallDir);
          // (a) needs an empty prefix (fresh per run) and no state; (b)–(d) build on it.
          let pushed = true;
          {
            const verifyA = async () => {
              const remote = await remoteObjects(prefix);
              const have = [...remote.keys()].filter(isDataPath).length;
              return have === N ? null : `${have} of ${N} objects under ${prefix}/`;
            };
            if (cases.has('a')) pushed = await timed(row('a'), tool, 'smallPush', args, `a r${r}/${runs}`, verifyA);
            else {
              const res = await measure({ stages: tool.steps.smallPush(args), env: tool.env, logFile: join(logs, `a-${tool.name}.log`) });
              pushed = res.ok && !(await verifyA());
            }
          }
          if (cases.has('b')) {
            if (pushed) await timed(row('b'), tool, 'smallNoop', args, `b r${r}/${runs}`);
            else skipped(row('b'), 'skipped: the push of (a) failed');
          }
          if (cases.has('c')) {
            if (pushed) {
              const times = changeFiles(smallDir, smallSpec, changed, r);
              await timed(row('c'), tool, 'smallChanged', args, `c r${r}/${runs}`, async () => {
                const remote = await remoteObjects(prefix);
                let n = 0;
                for (const rel of changedSet) if (remote.get(rel) === smallSpec.size + 16) n++;
                return n === CHANGED ? null : `${n} of ${CHANGED} changed files are updated under ${prefix}/`;
              });
              restoreFiles(smallDir, smallSpec, changed, times);
            } else skipped(row('c'), 'skipped: the push of (a) failed');
          }
          if (cases.has('d')) {
            if (pushed) {
              const into = pullDir('d', tool, r);
              await timed(row('d'), tool, 'smallPull', { prefix, into }, `d r${r}/${runs}`, async () => {
                const n = countFiles(into, isDataPath);
                return n === N ? null : `${n} of ${N} files pulled into ${into}`;
              });
              if (tool.kind === 'swm') statusTarget = { dir: into, prefix };
            } else skipped(row('d'), 'skipped: the push of (a) failed');
          }
          if (tool.kind === 'swm') dropSwmState(smallDir); // peers must not see (and upload) swm's state
        }
      }
    }

    // ----- (e): one big file -----
    if (cases.has('e')) {
      const mib = SIZES.bigBytes / MiB;
      const labels = { push: `e push one ${mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`} file`, pull: 'e pull of it' };
      addMissingRows('e-push', labels.push, 'MiB', mib, 'bigPush');
      addMissingRows('e-pull', labels.pull, 'MiB', mib, 'bigPull');
      for (let r = 1; r <= runs; r++) {
        for (const tool of rotate(live, r - 1)) {
          const prefix = `big/${tool.name}-r${r}`;
          if (tool.kind === 'swm') dropSwmState(bigDir);
          const pushRow = rowOf(rows, 'e-push', labels.push, 'MiB', mib, tool);
          const pullRow = rowOf(rows, 'e-pull', labels.pull, 'MiB', mib, tool);
          const ok = await timed(pushRow, tool, 'bigPush', { dir: bigDir, file: bigFile, prefix }, `e-push r${r}/${runs}`, async () => {
            const size = (await remoteObjects(prefix)).get('big.bin');
            return size === SIZES.bigBytes ? null : `${prefix}/big.bin is ${size ?? 'missing'}, not ${SIZES.bigBytes} bytes`;
          });
          if (tool.kind === 'swm') dropSwmState(bigDir);
          if (ok) {
            const into = pullDir('e', tool, r);
            await timed(pullRow, tool, 'bigPull', { prefix, into }, `e-pull r${r}/${runs}`, async () => {
              const f = join(into, 'big.bin');
              const size = existsSync(f) ? statSync(f).size : null;
              return size === SIZES.bigBytes ? null : `pulled big.bin is ${size ?? 'missing'}, not ${SIZES.bigBytes} bytes`;
            });
            rmSync(into, { recursive: true, force: true }); // 1 file: cheap; keeps the disk from filling in --full
          } else skipped(pullRow, 'skipped: the push failed');
          await deletePrefix(`${prefix}/`);
        }
      }
    }

    // ----- (f): --tar, many tiny files -----
    if (cases.has('f')) {
      const F = tarSpec.files;
      const labels = { push: `f --tar push ${F.toLocaleString('en-US')} × 1 KiB`, pull: 'f --tar pull of it' };
      addMissingRows('f-push', labels.push, 'files', F, 'tarPush');
      addMissingRows('f-pull', labels.pull, 'files', F, 'tarPull');
      for (let r = 1; r <= runs; r++) {
        for (const tool of rotate(live.filter((t) => t.steps.tarPush), r - 1)) {
          const prefix = `tar/${tool.name}-r${r}`;
          if (tool.kind === 'swm') dropSwmState(tarDir);
          const pushRow = rowOf(rows, 'f-push', labels.push, 'files', F, tool);
          const pullRow = rowOf(rows, 'f-pull', labels.pull, 'files', F, tool);
          const ok = await timed(pushRow, tool, 'tarPush', { dir: tarDir, prefix }, `f-push r${r}/${runs}`);
          if (tool.kind === 'swm') dropSwmState(tarDir);
          if (ok) {
            const into = pullDir('f', tool, r);
            await timed(pullRow, tool, 'tarPull', { prefix, into }, `f-pull r${r}/${runs}`, async () => {
              const n = countFiles(into, isDataPath);
              return n === F ? null : `${n} of ${F} files extracted into ${into}`;
            });
          } else skipped(pullRow, 'skipped: the push failed');
        }
      }
    }

    // ----- (g): scale, no-op push of a big tree -----
    if (cases.has('g')) {
      const G = scaleSpec.files;
      const label = `g no-op push of a ${G.toLocaleString('en-US')}-file tree`;
      const setupLabel = `g setup: first push of the ${G.toLocaleString('en-US')}-file tree (1 run)`;
      addMissingRows('g', label, 'files', G, 'scaleNoop');
      // swm keeps its own prefix (its state must match it); the peers share one prefix filled once by rclone
      // (which stores mtimes as metadata; aws and s5cmd compare size + LastModified), or by the ceiling without rclone.
      const swmPrefix = 'scale/swm';
      const peerPrefix = 'scale/peers';
      const stash = join(tmp, 'swm-scale-state');
      const ready = new Map();
      const setupPeer = live.find((t) => t.name === 'rclone') ?? live.find((t) => t.kind === 'ceiling');
      const setups = [];
      if (live.includes(swmTool)) setups.push([swmTool, 'scaleSetup', swmPrefix]);
      if (setupPeer && live.some((t) => t.kind !== 'swm')) setups.push([setupPeer, setupPeer.steps.scaleSetup ? 'scaleSetup' : 'smallPush', peerPrefix]);
      for (const [tool, step, prefix] of setups) {
        const row = rowOf(setupRows, 'g-setup', setupLabel, 'files', G, tool);
        const ok = await timed(row, tool, step, { dir: scaleDir, prefix }, 'g-setup', async () => {
          const have = [...(await remoteObjects(prefix)).keys()].filter(isDataPath).length;
          return have === G ? null : `${have} of ${G} objects under ${prefix}/`;
        });
        if (tool.kind === 'swm') {
          if (existsSync(swmState(scaleDir))) renameSync(swmState(scaleDir), stash);
          ready.set('swm', ok);
        } else ready.set('peers', ok);
      }
      for (let r = 1; r <= runs; r++) {
        for (const tool of rotate(live.filter((t) => t.steps.scaleNoop), r - 1)) {
          const row = rowOf(rows, 'g', label, 'files', G, tool);
          const isSwm = tool.kind === 'swm';
          if (!ready.get(isSwm ? 'swm' : 'peers')) {
            skipped(row, 'skipped: the setup push failed');
            continue;
          }
          if (isSwm && existsSync(stash)) renameSync(stash, swmState(scaleDir));
          await timed(row, tool, 'scaleNoop', { dir: scaleDir, prefix: isSwm ? swmPrefix : peerPrefix }, `g r${r}/${runs}`);
          if (isSwm && existsSync(swmState(scaleDir))) renameSync(swmState(scaleDir), stash);
        }
      }
    }

    // ----- (h): start-up -----
    if (cases.has('h')) {
      const helpLabel = 'h start-up: `--help` (peers: `version`; ceiling: `node -e 0`)';
      const statusLabel = `h start-up: \`sync status\` of a ${N.toLocaleString('en-US')}-file workspace (ceiling: \`node -e 0\`)`;
      addMissingRows('h-help', helpLabel, null, null, 'help');
      const target = statusTarget ?? { dir: smallDir, prefix: 'small/none' };
      for (let r = 1; r <= STARTUP_RUNS; r++) {
        for (const tool of rotate(live.filter((t) => t.steps.help), r - 1)) {
          await timed(rowOf(rows, 'h-help', helpLabel, null, null, tool), tool, 'help', {}, `h-help r${r}/${STARTUP_RUNS}`);
        }
      }
      for (let r = 1; r <= STARTUP_RUNS; r++) {
        for (const tool of rotate(live.filter((t) => t.steps.status), r - 1)) {
          await timed(rowOf(rows, 'h-status', statusLabel, null, null, tool), tool, 'status', target, `h-status r${r}/${STARTUP_RUNS}`);
        }
      }
    }

    // ----- report -----
    const order = ['a', 'b', 'c', 'd', 'e-push', 'e-pull', 'f-push', 'f-pull', 'g', 'h-help', 'h-status'];
    const toolOrder = tools.map((t) => t.name);
    rows.sort((x, y) => order.indexOf(x.caseId) - order.indexOf(y.caseId) || toolOrder.indexOf(x.tool) - toolOrder.indexOf(y.tool));
    summarize(rows);
    summarize(setupRows);
    const date = new Date().toISOString().slice(0, 10);
    const machine = {
      date: new Date().toISOString(),
      nproc: availableParallelism(),
      cpu: cpus()[0]?.model ?? 'unknown',
      memoryGiB: +(totalmem() / 1024 ** 3).toFixed(1),
      node: process.version,
      kernel: release(),
      loadavgAtEnd: loadavg().map((x) => +x.toFixed(2)),
      swmCommit: version(['git', '-C', repo, 'describe', '--always', '--dirty']),
      minio: version(['cat', join(repo, '.cache', 'bin', 'minio.version')]),
      versions: {
        rclone: peers.rclone?.ok ? version([peers.rclone.path, 'version']) : 'missing',
        aws: peers.aws?.ok ? version([peers.aws.path, '--version']) : 'missing',
        s5cmd: peers.s5cmd?.ok ? version([peers.s5cmd.path, 'version']) : 'missing',
        gnuTime: peers.time?.ok ? 'yes' : 'missing',
      },
    };
    const md = renderMarkdown({ rows, setupRows, machine, peers, tools, dataS: (dataDone - t0) / 1000, totalS: (Date.now() - t0) / 1000 });
    process.stdout.write(md + '\n');
    mkdirSync(opts.out, { recursive: true });
    const base = join(opts.out, mode === 'full' ? date : `${date}-quick`);
    writeFileSync(`${base}.md`, md + '\n');
    writeFileSync(`${base}.json`, JSON.stringify({ mode, sizes: SIZES, runs, machine, peers, rows, setupRows }, null, 2) + '\n');
    progress(`wrote ${base}.md and ${base}.json`);
    const swmFailures = rows.filter((r) => r.kind === 'swm' && r.failed);
    for (const r of swmFailures) progress(`swm FAILED in ${r.caseId}: ${r.error}`);
  } finally {
    await cleanup();
  }
}

/** renderMarkdown writes the results page: machine, sizes, the table, RSS scaling, setup rows, and how each tool was run. */
function renderMarkdown({ rows, setupRows, machine, peers, tools, dataS, totalS }) {
  const peerStatus = ['rclone', 'aws', 's5cmd']
    .map((n) => `${n} ${peers[n]?.ok ? `(${machine.versions[n]})` : `**missing**: ${peers[n]?.reason ?? 'unknown'}`}`)
    .join('; ');
  const rss = rssScalingTable(rows, smallSpec.files, scaleSpec.files);
  return [
    `# swm benchmark, ${machine.date.slice(0, 10)} (${mode})`,
    '',
    `Machine: ${machine.nproc} cores (${machine.cpu}), ${machine.memoryGiB} GiB memory, Node ${machine.node}, Linux ${machine.kernel}; load average at the end ${machine.loadavgAtEnd.join(' ')}.`,
    `swm ${machine.swmCommit}; S3 server: MinIO ${machine.minio} on loopback; peers: ${peerStatus}; GNU time: ${machine.versions.gnuTime}.`,
    `Sizes: ${SIZES.smallFiles.toLocaleString('en-US')} small files, ${SIZES.bigBytes / MiB} MiB big file, ${SIZES.tarFiles.toLocaleString('en-US')} tar files, ${SIZES.scaleFiles.toLocaleString('en-US')}-file scale tree; ${runs} runs per case (start-up: ${STARTUP_RUNS}), tools alternating within each run. Data generation ${dataS.toFixed(0)} s, whole run ${totalS.toFixed(0)} s.`,
    '',
    markdownTable(rows),
    '',
    'Median wall time over the runs (all runs must succeed). Rates: files (or MiB) in the data set ÷ median (for b, c and g: files examined). Peak RSS: the largest over the runs, from GNU `time -f %M` around each process; for a pipeline the sum of its stages (bash itself not counted). Ratios are wall-time ratios (> 1 = slower): to the fastest of rclone, aws and s5cmd on that case, and to the bare-SDK ceiling.',
    rss ? `\n### Peak RSS, small vs scale tree\n\n${rss}` : '',
    setupRows.length ? `\n### Setup (one run, not in the comparisons)\n\n${markdownTable(setupRows)}` : '',
    '',
    '### How each tool was run',
    '',
    '- **swm**: `node dist/cli/main.js sync push|pull bench <dir> -b s3:<bucket> -d <prefix> -q` (`--tar` for f); state deleted before each (a), a fresh prefix per run.',
    '- **rclone**: `rclone copy` (`copyto` for one file) `--transfers 32 --checkers 32`, otherwise defaults; remote `bench:` from `RCLONE_CONFIG_BENCH_*` (provider Minio, path style).',
    '- **aws**: Debian `/usr/bin/aws` (v2) with `--endpoint-url`, config `s3.addressing_style = path`, `max_concurrent_requests = 32`; `s3 cp --recursive` for fresh pushes and pulls, `s3 sync` for b, c and g; f: `tar cf - | aws s3 cp - …` and back.',
    '- **s5cmd**: `cp` for fresh pushes and pulls, `sync` (size + mtime) for b, c and g, `tar cf - | s5cmd pipe` / `s5cmd cat | tar xf -` for f; default workers.',
    '- **sdk-ceiling**: `bench/ceiling-small.mjs` (PutObject/GetObject at concurrency 64; b and g = one LIST + a local stat of every file; c = PUT of the 100 known changed files) and `bench/ceiling-big.mjs` (lib-storage `Upload`, 16 MiB parts, 8 in flight; 8 MiB ranged GETs, 8 in flight; f: the same behind `tar`). Keep-alive agents, maxSockets 256, checksums only where required. For h: `node -e 0`.',
    '- g: swm pushes the tree once to its own prefix; the peers share one prefix filled once by rclone (rows "g setup").',
    '- Every timed push goes to a fresh prefix and every pull into a fresh folder; results are checked after each run (object or file counts, sizes) and a run that fails the check counts as failed.',
  ]
    .filter((x) => x !== undefined)
    .join('\n');
}

main().catch((e) => {
  process.stderr.write(`bench: ${e?.stack ?? e}\n`);
  process.exit(1);
});
