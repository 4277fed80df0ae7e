// Original file: proto/s3cs/records/v1/records.proto


export interface DeleteRecordRequest {
  'name'?: (string);
}

export interface DeleteRecordRequest__Output {
  'name': (string);
}
