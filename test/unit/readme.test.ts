import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../src/config.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('documents every setting with its flag and environment variables', () => {
    for (const spec of Object.values(SETTINGS)) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`--${spec.flag}\` |`));
      expect(row, `README row for --${spec.flag}`).toBeDefined();
      for (const env of spec.env) expect(row).toContain(`\`${env}\``);
    }
  });

  it('gives exactly the two one-line set-up commands', () => {
    const setup = readme.split('## Set up')[1]!.split('\n## ')[0]!;
    const commands = [...setup.matchAll(/```sh\n([^\n]+)\n```/g)].map((m) => m[1]);
    expect(commands).toEqual([
      'npm ci && npm run build && npx s3-content-store serve --address unix:///tmp/s3cs/content.sock --root /tmp/s3cs/data',
      'bash scripts/test-deps.sh && npm ci && npm test',
    ]);
  });
});
