/**
 * `target` seen through a test's lens: the methods in `overrides` replace its own, every other
 * one is its own, bound to it. (A real store with one call counted, held back or made to lag.)
 */
export function overriding<T extends object>(target: T, overrides: { [K in keyof T]?: T[K] }): T {
  return new Proxy(target, {
    get(object, prop) {
      if (Object.prototype.hasOwnProperty.call(overrides, prop)) return overrides[prop as keyof T];
      const value = Reflect.get(object, prop) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(object) : value;
    },
  });
}
