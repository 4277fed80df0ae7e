// Original file: proto/s3cs/records/v1/records.proto

import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../../google/protobuf/Timestamp.js';
import type { Long } from '@grpc/proto-loader';

export interface RecordEntry {
  'name'?: (string);
  'size'?: (number | string | Long);
  'last_modified'?: (_google_protobuf_Timestamp | null);
}

export interface RecordEntry__Output {
  'name': (string);
  'size': (number);
  'last_modified': (_google_protobuf_Timestamp__Output | null);
}
