// The tools the benchmark times (swm, its peers and the SDK ceiling): how each one does each step, as argv stages, with its env.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * makeTools returns the tool list in table order. ctx: { repo, tmp, bucket, server: {endpoint, accessKeyId, secretAccessKey, region}, peers: {name → {ok, path, reason}} }.
 * Each tool: { name, kind: 'swm'|'peer'|'ceiling', missing: reason|null, env, steps: { stepName(args) → argv[][] } }.
 * A step a tool has no way to do is absent from its `steps` (that row is simply not in the table).
 */
export function makeTools(ctx) {
  const { repo, tmp, bucket, server, peers } = ctx;
  const base = { ...process.env };
  for (const k of ['AWS_PROFILE', 'AWS_DEFAULT_PROFILE', 'AWS_ENDPOINT_URL_S3', 'AWS_SESSION_TOKEN', 'SWM_BUCKET', 'SWM_DEST', 'SWM_CONFIG']) delete base[k];
  Object.assign(base, {
    AWS_ENDPOINT_URL: server.endpoint,
    AWS_ACCESS_KEY_ID: server.accessKeyId,
    AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
    AWS_REGION: server.region,
    AWS_DEFAULT_REGION: server.region,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  });
  const s3url = (key) => `s3://${bucket}/${key}`;
  const node = process.execPath;
  const tools = [];

  // swm: the CLI as built by `npm run build`, quiet (per-file lines off, as for every tool).
  const swmMain = join(repo, 'dist', 'cli', 'main.js');
  const swmHome = join(tmp, 'swm-home');
  const swm = (...a) => [node, swmMain, ...a];
  const loc = (p) => ['-b', `s3:${bucket}`, '-d', p, '-q'];
  tools.push({
    name: 'swm',
    kind: 'swm',
    missing: null,
    env: { ...base, XDG_CONFIG_HOME: join(swmHome, 'config'), XDG_DATA_HOME: join(swmHome, 'data'), XDG_STATE_HOME: join(swmHome, 'state') },
    steps: {
      smallPush: ({ dir, prefix }) => [swm('sync', 'push', 'bench', dir, ...loc(prefix))],
      smallNoop: ({ dir, prefix }) => [swm('sync', 'push', 'bench', dir, ...loc(prefix))],
      smallChanged: ({ dir, prefix }) => [swm('sync', 'push', 'bench', dir, ...loc(prefix))],
      smallPull: ({ prefix, into }) => [swm('sync', 'pull', 'bench', into, ...loc(prefix))],
      bigPush: ({ dir, prefix }) => [swm('sync', 'push', 'bench', dir, ...loc(prefix))],
      bigPull: ({ prefix, into }) => [swm('sync', 'pull', 'bench', into, ...loc(prefix))],
      tarPush: ({ dir, prefix }) => [swm('sync', 'push', 'bench', dir, ...loc(prefix), '--tar')],
      tarPull: ({ prefix, into }) => [swm('sync', 'pull', 'bench', into, ...loc(prefix), '--tar')],
      scaleSetup: ({ dir, prefix }) => [swm('sync', 'push', 'bench', dir, ...loc(prefix))],
      scaleNoop: ({ dir, prefix }) => [swm('sync', 'push', 'bench', dir, ...loc(prefix))],
      help: () => [swm('--help')],
      status: ({ dir, prefix }) => [swm('sync', 'status', 'bench', dir, '-b', `s3:${bucket}`, '-d', prefix)],
    },
  });

  // rclone: `copy` (non-destructive, like swm push), --transfers 32 --checkers 32, remote configured by env.
  const rcloneConf = join(tmp, 'rclone.conf');
  writeFileSync(rcloneConf, '');
  const rcloneEnv = {
    ...base,
    RCLONE_CONFIG: rcloneConf,
    RCLONE_CONFIG_BENCH_TYPE: 's3',
    RCLONE_CONFIG_BENCH_PROVIDER: 'Minio',
    RCLONE_CONFIG_BENCH_ENDPOINT: server.endpoint,
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: server.accessKeyId,
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: server.secretAccessKey,
    RCLONE_CONFIG_BENCH_REGION: server.region,
    RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
  };
  delete rcloneEnv.AWS_CA_BUNDLE; // rclone fails with LoadCustomCABundleError on some bundles
  const rclone = (...a) => [peers.rclone?.path ?? 'rclone', ...a, '--transfers', '32', '--checkers', '32'];
  const rr = (key) => `bench:${bucket}/${key}`;
  tools.push({
    name: 'rclone',
    kind: 'peer',
    missing: peers.rclone?.ok ? null : peers.rclone?.reason ?? 'not installed',
    env: rcloneEnv,
    steps: {
      smallPush: ({ dir, prefix }) => [rclone('copy', dir, rr(prefix))],
      smallNoop: ({ dir, prefix }) => [rclone('copy', dir, rr(prefix))],
      smallChanged: ({ dir, prefix }) => [rclone('copy', dir, rr(prefix))],
      smallPull: ({ prefix, into }) => [rclone('copy', rr(prefix), into)],
      bigPush: ({ file, prefix }) => [rclone('copyto', file, rr(`${prefix}/big.bin`))],
      bigPull: ({ prefix, into }) => [rclone('copyto', rr(`${prefix}/big.bin`), join(into, 'big.bin'))],
      scaleSetup: ({ dir, prefix }) => [rclone('copy', dir, rr(prefix))],
      scaleNoop: ({ dir, prefix }) => [rclone('copy', dir, rr(prefix))],
      help: () => [[peers.rclone?.path ?? 'rclone', 'version']],
    },
  });

  // aws-cli v2 (Debian's /usr/bin/aws): path addressing and 32 concurrent requests from a temp config file.
  const awsConf = join(tmp, 'aws-config');
  writeFileSync(awsConf, `[default]\nregion = ${server.region}\ns3 =\n  addressing_style = path\n  max_concurrent_requests = 32\n`);
  const awsCreds = join(tmp, 'aws-credentials');
  writeFileSync(awsCreds, '');
  const aws = (...a) => [peers.aws?.path ?? '/usr/bin/aws', '--endpoint-url', server.endpoint, 's3', ...a];
  const quietAws = ['--only-show-errors', '--no-progress'];
  tools.push({
    name: 'aws',
    kind: 'peer',
    missing: peers.aws?.ok ? null : peers.aws?.reason ?? 'not installed',
    env: { ...base, AWS_CONFIG_FILE: awsConf, AWS_SHARED_CREDENTIALS_FILE: awsCreds, AWS_PAGER: '' },
    steps: {
      smallPush: ({ dir, prefix }) => [aws('cp', '--recursive', ...quietAws, dir, s3url(`${prefix}/`))],
      smallNoop: ({ dir, prefix }) => [aws('sync', ...quietAws, dir, s3url(`${prefix}/`))],
      smallChanged: ({ dir, prefix }) => [aws('sync', ...quietAws, dir, s3url(`${prefix}/`))],
      smallPull: ({ prefix, into }) => [aws('cp', '--recursive', ...quietAws, s3url(`${prefix}/`), into)],
      bigPush: ({ file, prefix }) => [aws('cp', ...quietAws, file, s3url(`${prefix}/big.bin`))],
      bigPull: ({ prefix, into }) => [aws('cp', ...quietAws, s3url(`${prefix}/big.bin`), join(into, 'big.bin'))],
      tarPush: ({ dir, prefix }) => [['tar', 'cf', '-', '-C', dir, '.'], aws('cp', ...quietAws, '-', s3url(`${prefix}.tar`))],
      tarPull: ({ prefix, into }) => [aws('cp', ...quietAws, s3url(`${prefix}.tar`), '-'), ['tar', 'xf', '-', '-C', into]],
      scaleNoop: ({ dir, prefix }) => [aws('sync', ...quietAws, dir, s3url(`${prefix}/`))],
      help: () => [[peers.aws?.path ?? '/usr/bin/aws', '--version']],
    },
  });

  // s5cmd: cp for fresh transfers, sync (size + mtime) for re-pushes, pipe/cat for tar streams; default 256 workers.
  const s5 = (...a) => [peers.s5cmd?.path ?? 's5cmd', '--endpoint-url', server.endpoint, '--log', 'error', ...a];
  tools.push({
    name: 's5cmd',
    kind: 'peer',
    missing: peers.s5cmd?.ok ? null : peers.s5cmd?.reason ?? 'not installed',
    env: base,
    steps: {
      smallPush: ({ dir, prefix }) => [s5('cp', `${dir}/*`, s3url(`${prefix}/`))],
      smallNoop: ({ dir, prefix }) => [s5('sync', `${dir}/`, s3url(`${prefix}/`))],
      smallChanged: ({ dir, prefix }) => [s5('sync', `${dir}/`, s3url(`${prefix}/`))],
      smallPull: ({ prefix, into }) => [s5('cp', s3url(`${prefix}/*`), `${into}/`)],
      bigPush: ({ file, prefix }) => [s5('cp', file, s3url(`${prefix}/big.bin`))],
      bigPull: ({ prefix, into }) => [s5('cp', s3url(`${prefix}/big.bin`), join(into, 'big.bin'))],
      tarPush: ({ dir, prefix }) => [['tar', 'cf', '-', '-C', dir, '.'], s5('pipe', s3url(`${prefix}.tar`))],
      tarPull: ({ prefix, into }) => [s5('cat', s3url(`${prefix}.tar`)), ['tar', 'xf', '-', '-C', into]],
      scaleNoop: ({ dir, prefix }) => [s5('sync', `${dir}/`, s3url(`${prefix}/`))],
      help: () => [[peers.s5cmd?.path ?? 's5cmd', 'version']],
    },
  });

  // ceiling: bare SDK scripts (bench/ceiling-*.mjs); no state, no checks; `node -e 0` for start-up.
  const small = (...a) => [node, join(repo, 'bench', 'ceiling-small.mjs'), ...a];
  const big = (...a) => [node, join(repo, 'bench', 'ceiling-big.mjs'), ...a];
  tools.push({
    name: 'sdk-ceiling',
    kind: 'ceiling',
    missing: null,
    env: base,
    steps: {
      smallPush: ({ dir, prefix }) => [small('put', dir, bucket, prefix)],
      smallNoop: ({ dir, prefix }) => [small('check', dir, bucket, prefix)],
      smallChanged: ({ dir, prefix, listFile }) => [small('put', dir, bucket, prefix, listFile)],
      smallPull: ({ prefix, into }) => [small('get', bucket, prefix, into)],
      bigPush: ({ file, prefix }) => [big('put', file, bucket, `${prefix}/big.bin`)],
      bigPull: ({ prefix, into }) => [big('get', bucket, `${prefix}/big.bin`, join(into, 'big.bin'))],
      tarPush: ({ dir, prefix }) => [['tar', 'cf', '-', '-C', dir, '.'], big('put', '-', bucket, `${prefix}.tar`)],
      tarPull: ({ prefix, into }) => [big('get', bucket, `${prefix}.tar`, '-'), ['tar', 'xf', '-', '-C', into]],
      scaleNoop: ({ dir, prefix }) => [small('check', dir, bucket, prefix)],
      help: () => [[node, '-e', '0']],
      status: () => [[node, '-e', '0']],
    },
  });
  return tools;
}
