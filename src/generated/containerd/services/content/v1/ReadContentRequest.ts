// Original file: proto/containerd/services/content/v1/content.proto

import type { Long } from '@grpc/proto-loader';

export interface ReadContentRequest {
  'digest'?: (string);
  'offset'?: (number | string | Long);
  /**
   * Zero or negative reads to the end of the blob.
   */
  'size'?: (number | string | Long);
}

export interface ReadContentRequest__Output {
  'digest': (string);
  'offset': (number);
  /**
   * Zero or negative reads to the end of the blob.
   */
  'size': (number);
}
