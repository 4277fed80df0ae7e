// Original file: proto/containerd/services/namespaces/v1/namespace.proto


export interface Namespace {
  'name'?: (string);
  /**
   * Each key and value together at most 4096 bytes.
   */
  'labels'?: ({[key: string]: string});
}

export interface Namespace__Output {
  'name': (string);
  /**
   * Each key and value together at most 4096 bytes.
   */
  'labels': ({[key: string]: string});
}
