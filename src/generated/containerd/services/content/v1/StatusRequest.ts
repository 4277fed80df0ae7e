// Original file: proto/containerd/services/content/v1/content.proto


export interface StatusRequest {
  'ref'?: (string);
}

export interface StatusRequest__Output {
  'ref': (string);
}
