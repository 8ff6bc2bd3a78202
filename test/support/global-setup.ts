// Vitest globalSetup: starts one MinIO S3 server for the whole test run and provides its coordinates as inject('s3').
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { startS3Server } from './s3-server.js';

export interface ProvidedS3 {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  bucket: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    s3: ProvidedS3;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const server = await startS3Server({ bucket: 'swm-test' });
  const s3: ProvidedS3 = {
    endpoint: server.endpoint,
    accessKeyId: server.accessKeyId,
    secretAccessKey: server.secretAccessKey,
    region: server.region,
    bucket: server.bucket,
  };
  project.provide('s3', s3);
  if (process.env.SWM_S3_SERVER_LOG) {
    process.stderr.write(`s3 test server ready at ${server.endpoint} in ${Date.now() - started} ms\n`);
  }
  return async () => {
    await server.stop();
  };
}
