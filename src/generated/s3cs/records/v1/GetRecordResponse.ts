// Original file: proto/s3cs/records/v1/records.proto

import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../../google/protobuf/Timestamp.js';
import type { Long } from '@grpc/proto-loader';

export interface GetRecordResponse {
  /**
   * BuildKit's cache config JSON: {"layers":[…],"records":[…]}.
   */
  'config'?: (Buffer | Uint8Array | string);
  /**
   * sha256 of config.
   */
  'digest'?: (string);
  'size'?: (number | string | Long);
  'last_modified'?: (_google_protobuf_Timestamp | null);
}

export interface GetRecordResponse__Output {
  /**
   * BuildKit's cache config JSON: {"layers":[…],"records":[…]}.
   */
  'config': (Buffer);
  /**
   * sha256 of config.
   */
  'digest': (string);
  'size': (number);
  'last_modified': (_google_protobuf_Timestamp__Output | null);
}
