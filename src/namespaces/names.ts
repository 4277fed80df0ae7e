import { invalidArgument } from '../errors.js';

// containerd's rule: dot, dash or underscore separated alphanumeric runs, at most 76 characters.
const NAMESPACE = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
const MAX_NAMESPACE = 76;

export function isNamespace(ns: string): boolean {
  return ns.length <= MAX_NAMESPACE && NAMESPACE.test(ns);
}

export function validateNamespace(ns: string): string {
  if (!isNamespace(ns)) {
    const shown = JSON.stringify(ns.length > 100 ? `${ns.slice(0, 100)}…` : ns);
    throw invalidArgument(`namespace ${shown}: invalid (letters, digits and inner ".", "_" or "-", at most 76)`);
  }
  return ns;
}
