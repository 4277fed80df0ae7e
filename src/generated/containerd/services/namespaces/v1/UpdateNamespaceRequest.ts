// Original file: proto/containerd/services/namespaces/v1/namespace.proto

import type { Namespace as _containerd_services_namespaces_v1_Namespace, Namespace__Output as _containerd_services_namespaces_v1_Namespace__Output } from '../../../../containerd/services/namespaces/v1/Namespace.js';
import type { FieldMask as _google_protobuf_FieldMask, FieldMask__Output as _google_protobuf_FieldMask__Output } from '../../../../google/protobuf/FieldMask.js';

export interface UpdateNamespaceRequest {
  /**
   * The name to update, and the labels the mask's paths take their values from.
   */
  'namespace'?: (_containerd_services_namespaces_v1_Namespace | null);
  /**
   * `labels.<key>` sets (or, empty, removes) one label; no paths replace all labels.
   */
  'update_mask'?: (_google_protobuf_FieldMask | null);
}

export interface UpdateNamespaceRequest__Output {
  /**
   * The name to update, and the labels the mask's paths take their values from.
   */
  'namespace': (_containerd_services_namespaces_v1_Namespace__Output | null);
  /**
   * `labels.<key>` sets (or, empty, removes) one label; no paths replace all labels.
   */
  'update_mask': (_google_protobuf_FieldMask__Output | null);
}
