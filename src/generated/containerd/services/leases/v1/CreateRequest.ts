// Original file: proto/containerd/services/leases/v1/leases.proto


export interface CreateRequest {
  /**
   * Empty asks the server to pick a random id.
   */
  'id'?: (string);
  /**
   * Field 2 is unused on the wire in containerd's definition too.
   */
  'labels'?: ({[key: string]: string});
}

export interface CreateRequest__Output {
  /**
   * Empty asks the server to pick a random id.
   */
  'id': (string);
  /**
   * Field 2 is unused on the wire in containerd's definition too.
   */
  'labels': ({[key: string]: string});
}
