// Original file: proto/s3cs/records/v1/records.proto

import type { RecordEntry as _s3cs_records_v1_RecordEntry, RecordEntry__Output as _s3cs_records_v1_RecordEntry__Output } from '../../../s3cs/records/v1/RecordEntry.js';

export interface ListRecordsResponse {
  'records'?: (_s3cs_records_v1_RecordEntry)[];
  /**
   * Empty when this is the last page. A page may hold fewer records than page_size, even none,
   * where the bucket layout puts blobs or the daemon's own documents among the records: go on
   * while a token comes back.
   */
  'next_page_token'?: (string);
}

export interface ListRecordsResponse__Output {
  'records': (_s3cs_records_v1_RecordEntry__Output)[];
  /**
   * Empty when this is the last page. A page may hold fewer records than page_size, even none,
   * where the bucket layout puts blobs or the daemon's own documents among the records: go on
   * while a token comes back.
   */
  'next_page_token': (string);
}
