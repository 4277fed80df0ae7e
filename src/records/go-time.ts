/**
 * Whether Go's time.Time.UnmarshalJSON takes this string's raw text (the bytes between the quotes,
 * escapes not undone). Go first tries a strict RFC 3339 reader and, failing that, falls back to
 * time.Parse(time.RFC3339, …) and keeps what it gives (its strict re-check is switched off in Go's
 * source), so the fallback decides: a one-digit hour, a comma before the fraction and a zone offset
 * up to ±24:60 all pass. Returns why it is refused, or undefined when Go accepts it.
 */
export function goRfc3339Problem(raw: string): string | undefined {
  let s = raw;
  const isDigit = (i: number) => i < s.length && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39;
  const literal = (char: string): boolean => {
    if (s[0] !== char) return false;
    s = s.slice(1);
    return true;
  };
  /** Go's getnum: one or two digits, or exactly two when fixed. */
  const number = (fixed: boolean): number | undefined => {
    if (!isDigit(0)) return undefined;
    const width = isDigit(1) ? 2 : fixed ? 0 : 1;
    if (width === 0) return undefined;
    const n = Number(s.slice(0, width));
    s = s.slice(width);
    return n;
  };

  if (s.length < 4 || !/^[0-9]{4}$/.test(s.slice(0, 4))) return 'the year is not four digits';
  const year = Number(s.slice(0, 4));
  s = s.slice(4);
  if (!literal('-')) return "no '-' after the year";
  const month = number(true);
  if (month === undefined) return 'the month is not two digits';
  if (month < 1 || month > 12) return 'month out of range';
  if (!literal('-')) return "no '-' after the month";
  const day = number(true);
  if (day === undefined) return 'the day is not two digits';
  if (!literal('T')) return "no 'T' after the date";
  const hour = number(false);
  if (hour === undefined) return 'no hour';
  if (hour > 23) return 'hour out of range';
  if (!literal(':')) return "no ':' after the hour";
  const minute = number(true);
  if (minute === undefined) return 'the minute is not two digits';
  if (minute > 59) return 'minute out of range';
  if (!literal(':')) return "no ':' after the minute";
  const second = number(true);
  if (second === undefined) return 'the second is not two digits';
  if (second > 59) return 'second out of range';
  if (s.length >= 2 && (s[0] === '.' || s[0] === ',') && isDigit(1)) {
    let n = 2;
    while (isDigit(n)) n++;
    s = s.slice(n);
  }
  if (!literal('Z')) {
    if (s.length < 6 || s[3] !== ':') return 'no time zone (Z or ±hh:mm)';
    const sign = s[0];
    s = s.slice(1);
    const hh = number(true);
    s = s.slice(1);
    const mm = number(true);
    if (hh === undefined || mm === undefined) return 'the zone offset is not ±hh:mm';
    if (hh > 24) return 'zone offset hour out of range';
    if (mm > 60) return 'zone offset minute out of range';
    if (sign !== '+' && sign !== '-') return 'the zone offset is not ±hh:mm';
  }
  if (s.length > 0) return 'extra text after the time';
  if (day < 1 || day > daysIn(month, year)) return 'day out of range';
  return undefined;
}

function daysIn(month: number, year: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * The instant, in milliseconds since the epoch, that Go's time.Parse(time.RFC3339, raw) reads, or
 * undefined where Go refuses it. Date.parse is no stand-in: it takes "60" as the year 1960 and a
 * bare date as its midnight. Go keeps nanoseconds; the first three digits of a fraction are kept.
 */
export function goRfc3339Millis(raw: string): number | undefined {
  if (goRfc3339Problem(raw) !== undefined) return undefined;
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d?):(\d\d):(\d\d)(?:[.,](\d+))?(?:Z|([+-])(\d\d):(\d\d))$/.exec(raw);
  if (!m) return undefined;
  const [, year, month, day, hour, minute, second, fraction = '', sign, zh = '0', zm = '0'] = m;
  const at = new Date(0);
  // setUTCFullYear, since Date.UTC reads the years 0 to 99 as 1900 to 1999
  at.setUTCFullYear(Number(year), Number(month) - 1, Number(day));
  at.setUTCHours(Number(hour), Number(minute), Number(second), Number(fraction.slice(0, 3).padEnd(3, '0')));
  const offsetMs = (Number(zh) * 60 + Number(zm)) * 60_000 * (sign === '-' ? -1 : 1);
  return at.getTime() - offsetMs;
}
