/**
 * Client text as a message quotes it: a config may hold strings and numbers megabytes long, and
 * a message is logged as well as sent, so only its start is shown (as parseDigest shows a digest).
 */
export function shortened(text: string, max = 100): string {
  return text.length > max ? `${JSON.stringify(`${text.slice(0, max)}…`)} (${text.length} characters)` : JSON.stringify(text);
}

/** As shortened, for a number literal, which reads best as it was written, unquoted. */
export function shortenedNumber(text: string, max = 100): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
}
