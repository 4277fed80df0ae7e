/** A setting that is missing or invalid; the CLI prints its message alone and exits 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
