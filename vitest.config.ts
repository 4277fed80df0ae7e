import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The JSON report is what CI counts (`N passed, M failed`); the default one is for people.
    reporters: ['default', 'json'],
    outputFile: { json: '.test-state/vitest-report.json' },
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Three on CI's two cores: the tests mostly wait on S3 and timers. Measured on one machine,
    // the whole suite: two workers 610 s with the cores 64% busy, three 469 s at 86%.
    maxWorkers: 3,
    minWorkers: 1,
    // The SDK's notice that its 2027 releases will need Node 22 is not news in every test file.
    // AWS_EC2_METADATA_DISABLED: a test without credentials must not make the SDK probe the
    // instance metadata address; only loopback is ever a target here.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', AWS_EC2_METADATA_DISABLED: 'true' },
  },
});
