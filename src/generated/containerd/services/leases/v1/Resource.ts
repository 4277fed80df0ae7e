// Original file: proto/containerd/services/leases/v1/leases.proto


export interface Resource {
  'id'?: (string);
  /**
   * e.g. "content" or "snapshots/overlayfs".
   */
  'type'?: (string);
}

export interface Resource__Output {
  'id': (string);
  /**
   * e.g. "content" or "snapshots/overlayfs".
   */
  'type': (string);
}
