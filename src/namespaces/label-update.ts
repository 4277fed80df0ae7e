import { invalidArgument } from '../errors.js';
import { labelValue, validateLabels, type Labels } from '../labels.js';

const LABEL_PATH = 'labels.';

/**
 * A namespace's labels after an Update: no paths, or the path `labels`, replace them all with
 * `given`; `labels.<key>` sets that one label from `given`, or removes it when `given` has none
 * or an empty value (an empty value is no label, as containerd's SetLabel has it). Any other
 * path is refused before anything changes, and the result must keep the label limits.
 */
export function updatedLabels(current: Labels, given: Labels, paths: readonly string[], subject: string): Labels {
  // A Map, so that a key like "__proto__" is a label like any other.
  let next = new Map(Object.entries(current));
  const replaced = () => new Map(Object.entries(given));
  if (paths.length === 0) next = replaced();
  for (const path of paths) {
    if (path === 'labels') {
      next = replaced();
    } else if (path.startsWith(LABEL_PATH) && path.length > LABEL_PATH.length) {
      const key = path.slice(LABEL_PATH.length);
      const value = labelValue(given, key);
      if (value === undefined) next.delete(key);
      else next.set(key, value);
    } else {
      throw invalidArgument(`cannot update ${JSON.stringify(path)} field of ${subject}: only "labels" and "labels.<key>" can be updated`);
    }
  }
  return withoutEmpty(Object.fromEntries(next), subject);
}

/** Labels as stored: empty values dropped (they are no label), the rest within the limits. */
export function withoutEmpty(labels: Labels, subject: string): Labels {
  const kept = Object.fromEntries(Object.entries(labels).filter(([, value]) => value !== ''));
  return validateLabels(kept, subject);
}
