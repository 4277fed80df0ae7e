// Original file: proto/s3cs/records/v1/records.proto


export interface ListRecordsRequest {
  'prefix'?: (string);
  /**
   * At most 1000; 0 means 100.
   */
  'page_size'?: (number);
  'page_token'?: (string);
}

export interface ListRecordsRequest__Output {
  'prefix': (string);
  /**
   * At most 1000; 0 means 100.
   */
  'page_size': (number);
  'page_token': (string);
}
