/* The load hook of loaded-modules.mjs (hooks run on a thread of their own): tells it each ES module loaded. */
let port;

export function initialize(data) {
  port = data.port;
}

export async function load(url, context, nextLoad) {
  port.postMessage(url);
  return nextLoad(url, context);
}
