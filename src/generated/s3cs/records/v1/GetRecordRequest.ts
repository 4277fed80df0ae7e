// Original file: proto/s3cs/records/v1/records.proto


export interface GetRecordRequest {
  'name'?: (string);
}

export interface GetRecordRequest__Output {
  'name': (string);
}
