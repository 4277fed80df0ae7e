// Builds the native modules when the package is installed: native/sha256 (the saveable SHA-256 on
// Node's own OpenSSL), native/malloc-trim (glibc's malloc_trim, see src/memory-trim.ts) and
// native/clock (the wall clock to the nanosecond, see src/clock.ts).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

function nodeGyp() {
  // npm hands its own node-gyp to install scripts
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    const bundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    return existsSync(bundled) ? bundled : undefined;
  }
}

/**
 * The native modules, each optional: where one cannot be built (no C compiler, python3 or make),
 * the install warns and goes on, and the daemon does without it and says so in its log.
 */
const MODULES = [
  { dir: 'native/sha256/', what: 'the native SHA-256', without: 'crash-resumable ingests will hash with WebAssembly instead' },
  { dir: 'native/malloc-trim/', what: 'malloc_trim', without: 'a quiet daemon will keep the memory glibc holds of freed buffers' },
  { dir: 'native/clock/', what: 'the nanosecond wall clock', without: "timestamps' sub-millisecond part will be interpolated from Node's monotonic clock" },
];

const gyp = nodeGyp();
// Node's own headers where they are installed beside it (Debian's and nodejs.org's builds, the
// official images); elsewhere node-gyp fetches them, which a time limit keeps from hanging
const prefix = join(dirname(process.execPath), '..');
const nodedir = existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];

for (const { dir, what, without } of MODULES) {
  const args = ['rebuild', '--directory', fileURLToPath(new URL(`../${dir}`, import.meta.url)), ...nodedir];
  const result = gyp ? spawnSync(process.execPath, [gyp, ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 180_000 }) : undefined;
  if (!result || result.status !== 0) {
    let why = 'node-gyp not found';
    if (result?.error) why = result.error.message;
    else if (result) {
      // the lines that say what failed, not node-gyp's closing summary
      const lines = `${result.stdout}\n${result.stderr}`.split('\n').map((l) => l.trim()).filter(Boolean);
      const telling = lines.filter((l) => /error|not found|cannot|could not|no such/i.test(l) && !/^gyp ERR! (node -v|node-gyp -v|not ok|cwd|command|System)/.test(l));
      why = (telling.length > 0 ? telling : lines).slice(0, 4).join(' | ');
    }
    console.warn(`s3-content-store: ${what} not built (${why}); ${without}`);
  } else {
    console.log(`s3-content-store: built ${what} (${dir.replace(/\/$/, '')})`);
  }
}
