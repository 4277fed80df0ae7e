import { notFound, resourceExhausted } from '../errors.js';
import { parseFilters } from '../filters.js';
import { validateNamespace } from '../namespaces/names.js';
import { ingestKey, liveStatus, type LiveIngests } from './ingest.js';
import { recordStatus, type IngestRecords } from './ingest-records.js';
import { validateRef } from './refs.js';
import type { IngestStatus } from './types.js';

/** Statuses one ListStatuses may answer with. */
const MAX_LISTED_STATUSES = 10_000;

/** Status and ListStatuses: ingests this process holds, and those recorded in the bucket. */
export class IngestStatuses {
  constructor(
    private readonly live: LiveIngests,
    private readonly records: IngestRecords,
  ) {}

  async status(ns: string, ref: string): Promise<IngestStatus> {
    validateNamespace(ns);
    // as containerd: no ingest has the empty ref (a Write names it InvalidArgument)
    if (ref === '') throw notFound('could not get status for ref "": not found');
    validateRef(ref);
    const live = this.live.get(ingestKey(ns, ref));
    if (live) return liveStatus(live);
    const record = await this.records.read(ns, ref);
    if (!record) throw notFound(`could not get status for ref ${JSON.stringify(ref)}: not found`);
    return recordStatus(record);
  }

  async list(ns: string, filters: readonly string[]): Promise<IngestStatus[]> {
    validateNamespace(ns);
    const filter = parseFilters(filters);
    const byRef = new Map<string, IngestStatus>();
    // as in containerd, a status has one field to filter on: its ref
    const refMatches = (ref: string) => filter.matches((path) => (path.length === 1 && path[0] === 'ref' ? ref : undefined));
    const keep = (st: IngestStatus) => {
      if (!refMatches(st.ref)) return;
      byRef.set(st.ref, st);
      if (byRef.size > MAX_LISTED_STATUSES) {
        throw resourceExhausted(`namespace ${ns} has more than ${MAX_LISTED_STATUSES} matching ingests; narrow the list with a filter`);
      }
    };
    for await (const record of this.records.all(ns, { wantedRef: refMatches })) keep(recordStatus(record));
    for (const ingest of this.live.values()) if (ingest.ns === ns) keep(liveStatus(ingest));
    return [...byRef.values()].sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  }
}
