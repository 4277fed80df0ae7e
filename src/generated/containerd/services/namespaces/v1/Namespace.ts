// Original file: proto/containerd/services/namespaces/v1/namespace.proto


export interface Namespace {
  'name'?: (string);
  /**
   * Each label's key and value together are at most 4096 bytes.
   */
  'labels'?: ({[key: string]: string});
}

export interface Namespace__Output {
  'name': (string);
  /**
   * Each label's key and value together are at most 4096 bytes.
   */
  'labels': ({[key: string]: string});
}
