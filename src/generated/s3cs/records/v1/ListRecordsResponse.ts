// Original file: proto/s3cs/records/v1/records.proto

import type { RecordEntry as _s3cs_records_v1_RecordEntry, RecordEntry__Output as _s3cs_records_v1_RecordEntry__Output } from '../../../s3cs/records/v1/RecordEntry.js';

export interface ListRecordsResponse {
  'records'?: (_s3cs_records_v1_RecordEntry)[];
  /**
   * Empty when this is the last page.
   */
  'next_page_token'?: (string);
}

export interface ListRecordsResponse__Output {
  'records': (_s3cs_records_v1_RecordEntry__Output)[];
  /**
   * Empty when this is the last page.
   */
  'next_page_token': (string);
}
