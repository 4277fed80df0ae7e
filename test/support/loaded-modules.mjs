/*
 * Preloaded (`node --import`) into a daemon a test runs in its own process. On SIGUSR2 it writes
 * to stderr one line, `loaded-modules ` and a JSON array of every module file the process has
 * loaded so far: CommonJS ones from require's cache, ES modules as a load hook saw them (a module
 * can come in either way, and which way may change with the code that loads it).
 */
import { createRequire, register } from 'node:module';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';

const esModules = new Set();
const { port1, port2 } = new MessageChannel();
port1.on('message', (url) => esModules.add(url));
port1.unref();
register('./loaded-modules-hooks.mjs', import.meta.url, { data: { port: port2 }, transferList: [port2] });

const commonJs = createRequire(import.meta.url).cache;
process.on('SIGUSR2', () => {
  const files = new Set(Object.keys(commonJs));
  for (const url of esModules) if (url.startsWith('file:')) files.add(fileURLToPath(url));
  process.stderr.write(`loaded-modules ${JSON.stringify([...files])}\n`);
});
