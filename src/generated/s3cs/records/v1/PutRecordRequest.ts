// Original file: proto/s3cs/records/v1/records.proto


export interface PutRecordRequest {
  'names'?: (string)[];
  'config'?: (Buffer | Uint8Array | string);
  /**
   * When set, the write happens only if the current record's digest is this one; the empty
   * string means "only if absent" when `if_absent` is true.
   */
  'expected_previous_digest'?: (string);
  'if_absent'?: (boolean);
}

export interface PutRecordRequest__Output {
  'names': (string)[];
  'config': (Buffer);
  /**
   * When set, the write happens only if the current record's digest is this one; the empty
   * string means "only if absent" when `if_absent` is true.
   */
  'expected_previous_digest': (string);
  'if_absent': (boolean);
}
