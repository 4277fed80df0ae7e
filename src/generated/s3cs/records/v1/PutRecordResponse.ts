// Original file: proto/s3cs/records/v1/records.proto

import type { Long } from '@grpc/proto-loader';

export interface PutRecordResponse {
  'digest'?: (string);
  'size'?: (number | string | Long);
}

export interface PutRecordResponse__Output {
  'digest': (string);
  'size': (number);
}
