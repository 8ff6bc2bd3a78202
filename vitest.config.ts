// Test runner settings: one S3 server for the whole run (test/support/global-setup.ts), files run in parallel forks.
import { defineConfig } from 'vitest/config';

// The AWS SDK warns on Node 20 (NOTES.md); the tests and the CLI children they spawn run on Node 20 on purpose.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 300_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
