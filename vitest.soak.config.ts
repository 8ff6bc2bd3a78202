// Soak-test runner settings (`npm run soak`, not in CI): only test/soak/**/*.soak.ts, which start their own S3 server; timeouts follow SOAK_MINUTES.
import { defineConfig } from 'vitest/config';

// The AWS SDK warns on Node 20 (NOTES.md); the soak and the CLI children it spawns run on Node 20 on purpose.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

/** soakMinutes is how long the writer runs (SOAK_MINUTES, default 10): the test's time limit is that plus room for setup and catch-up. */
const soakMinutes = Number(process.env.SOAK_MINUTES) > 0 ? Number(process.env.SOAK_MINUTES) : 10;

export default defineConfig({
  test: {
    include: ['test/soak/**/*.soak.ts'],
    testTimeout: (soakMinutes + 25) * 60_000,
    hookTimeout: 300_000,
    pool: 'forks',
    fileParallelism: false,
    reporters: ['default'],
  },
});
