// Original file: proto/containerd/services/content/v1/content.proto


export interface ListContentRequest {
  /**
   * Several filters are OR-ed; each one may AND selectors with commas.
   */
  'filters'?: (string)[];
}

export interface ListContentRequest__Output {
  /**
   * Several filters are OR-ed; each one may AND selectors with commas.
   */
  'filters': (string)[];
}
