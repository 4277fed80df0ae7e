import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Loads one of the package's optional native modules (native/<dir>, built when the package is
 * installed), or says why it cannot be used: not built (no compiler at install), or not loadable.
 */
export function requireNative<T>(file: URL, dir: string): { loaded: true; binding: T } | { loaded: false; reason: string } {
  try {
    return { loaded: true, binding: createRequire(import.meta.url)(fileURLToPath(file)) as T };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { loaded: false, reason: e.code === 'MODULE_NOT_FOUND' ? `not built: native/${dir} was not compiled at install` : `cannot be loaded: ${e.message}` };
  }
}
