// npx looks for commands in node_modules/.bin, where npm links the bins of dependencies but
// not the project's own. Linking ours there after a build makes `npx s3-content-store` run
// this checkout's CLI (and never fetch a same-named package from a registry).
import { chmodSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const binDir = fileURLToPath(new URL('../node_modules/.bin/', import.meta.url));
chmodSync(cli, 0o755);
mkdirSync(binDir, { recursive: true });
rmSync(`${binDir}s3-content-store`, { force: true });
symlinkSync('../../dist/cli.js', `${binDir}s3-content-store`);
