// Original file: proto/containerd/services/content/v1/content.proto

import type { Long } from '@grpc/proto-loader';

export interface ReadContentResponse {
  /**
   * Absolute position of data within the blob.
   */
  'offset'?: (number | string | Long);
  'data'?: (Buffer | Uint8Array | string);
}

export interface ReadContentResponse__Output {
  /**
   * Absolute position of data within the blob.
   */
  'offset': (number);
  'data': (Buffer);
}
