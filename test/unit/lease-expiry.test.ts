import { describe, expect, it } from 'vitest';
import { LeaseStore, type Lease } from '../../src/leases/store.js';
import { goRfc3339Millis } from '../../src/records/go-time.js';
import { storedInstant } from '../../src/clock.js';

const lease = (expire?: string): Lease => ({
  id: 'l',
  createdAt: storedInstant('2026-01-01T00:00:00Z'),
  labels: expire === undefined ? {} : { 'containerd.io/gc.expire': expire },
});
const now = Date.parse('2026-06-01T00:00:00Z');

describe('a lease\'s containerd.io/gc.expire, read as containerd reads it (time.Parse RFC 3339)', () => {
  it('expires a lease once an RFC 3339 time has passed, not before', () => {
    expect(LeaseStore.expired(lease('2026-05-31T23:59:59Z'), now)).toBe(true);
    expect(LeaseStore.expired(lease('2026-06-01T00:00:01Z'), now)).toBe(false);
    expect(LeaseStore.expired(lease(), now)).toBe(false);
  });

  it('applies the zone offset', () => {
    // 01:30 at +02:00 is 23:30 the day before
    expect(LeaseStore.expired(lease('2026-06-01T01:30:00+02:00'), now)).toBe(true);
    expect(LeaseStore.expired(lease('2026-05-31T23:30:00-02:00'), now)).toBe(false);
  });

  it.each(['60', '2024-01-01', '2024-01-01 00:00:00Z', 'Mon, 01 Jan 2024 00:00:00 GMT', '2024-01-01T00:00:00', '1'])(
    'never expires a lease whose value Go cannot parse (%j), as containerd ignores it',
    (value) => {
      expect(Date.parse(value) < now).toBe(true); // what the label used to be taken for
      expect(LeaseStore.expired(lease(value), now)).toBe(false);
    },
  );

  it.each([
    ['2024-01-02T03:04:05Z', Date.UTC(2024, 0, 2, 3, 4, 5)],
    ['2024-01-02T03:04:05.678901234Z', Date.UTC(2024, 0, 2, 3, 4, 5, 678)],
    ['2024-01-02T03:04:05,5+01:00', Date.UTC(2024, 0, 2, 2, 4, 5, 500)],
    ['2024-01-02T3:04:05Z', Date.UTC(2024, 0, 2, 3, 4, 5)],
    // the years 0 to 99 are not 1900 to 1999, as Date.UTC would take them
    ['0050-01-01T00:00:00Z', new Date('0050-01-01T00:00:00Z').getTime()],
  ])('reads %j as Go does', (raw, ms) => {
    expect(goRfc3339Millis(raw)).toBe(ms);
  });

  it.each(['2024-02-30T00:00:00Z', '2024-01-01T24:00:00Z', '2024-01-01t00:00:00Z', '2024-01-01T00:00:00z'])('refuses %j as Go does', (raw) => {
    expect(goRfc3339Millis(raw)).toBeUndefined();
  });
});
