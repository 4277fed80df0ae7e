import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { Empty as _google_protobuf_Empty, Empty__Output as _google_protobuf_Empty__Output } from './google/protobuf/Empty.js';
import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from './google/protobuf/Timestamp.js';
import type { CacheRecordsClient as _s3cs_records_v1_CacheRecordsClient, CacheRecordsDefinition as _s3cs_records_v1_CacheRecordsDefinition } from './s3cs/records/v1/CacheRecords.js';
import type { DeleteRecordRequest as _s3cs_records_v1_DeleteRecordRequest, DeleteRecordRequest__Output as _s3cs_records_v1_DeleteRecordRequest__Output } from './s3cs/records/v1/DeleteRecordRequest.js';
import type { GetRecordRequest as _s3cs_records_v1_GetRecordRequest, GetRecordRequest__Output as _s3cs_records_v1_GetRecordRequest__Output } from './s3cs/records/v1/GetRecordRequest.js';
import type { GetRecordResponse as _s3cs_records_v1_GetRecordResponse, GetRecordResponse__Output as _s3cs_records_v1_GetRecordResponse__Output } from './s3cs/records/v1/GetRecordResponse.js';
import type { ListRecordsRequest as _s3cs_records_v1_ListRecordsRequest, ListRecordsRequest__Output as _s3cs_records_v1_ListRecordsRequest__Output } from './s3cs/records/v1/ListRecordsRequest.js';
import type { ListRecordsResponse as _s3cs_records_v1_ListRecordsResponse, ListRecordsResponse__Output as _s3cs_records_v1_ListRecordsResponse__Output } from './s3cs/records/v1/ListRecordsResponse.js';
import type { PutRecordRequest as _s3cs_records_v1_PutRecordRequest, PutRecordRequest__Output as _s3cs_records_v1_PutRecordRequest__Output } from './s3cs/records/v1/PutRecordRequest.js';
import type { PutRecordResponse as _s3cs_records_v1_PutRecordResponse, PutRecordResponse__Output as _s3cs_records_v1_PutRecordResponse__Output } from './s3cs/records/v1/PutRecordResponse.js';
import type { RecordEntry as _s3cs_records_v1_RecordEntry, RecordEntry__Output as _s3cs_records_v1_RecordEntry__Output } from './s3cs/records/v1/RecordEntry.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  google: {
    protobuf: {
      Empty: MessageTypeDefinition<_google_protobuf_Empty, _google_protobuf_Empty__Output>
      Timestamp: MessageTypeDefinition<_google_protobuf_Timestamp, _google_protobuf_Timestamp__Output>
    }
  }
  s3cs: {
    records: {
      v1: {
        CacheRecords: SubtypeConstructor<typeof grpc.Client, _s3cs_records_v1_CacheRecordsClient> & { service: _s3cs_records_v1_CacheRecordsDefinition }
        DeleteRecordRequest: MessageTypeDefinition<_s3cs_records_v1_DeleteRecordRequest, _s3cs_records_v1_DeleteRecordRequest__Output>
        GetRecordRequest: MessageTypeDefinition<_s3cs_records_v1_GetRecordRequest, _s3cs_records_v1_GetRecordRequest__Output>
        GetRecordResponse: MessageTypeDefinition<_s3cs_records_v1_GetRecordResponse, _s3cs_records_v1_GetRecordResponse__Output>
        ListRecordsRequest: MessageTypeDefinition<_s3cs_records_v1_ListRecordsRequest, _s3cs_records_v1_ListRecordsRequest__Output>
        ListRecordsResponse: MessageTypeDefinition<_s3cs_records_v1_ListRecordsResponse, _s3cs_records_v1_ListRecordsResponse__Output>
        PutRecordRequest: MessageTypeDefinition<_s3cs_records_v1_PutRecordRequest, _s3cs_records_v1_PutRecordRequest__Output>
        PutRecordResponse: MessageTypeDefinition<_s3cs_records_v1_PutRecordResponse, _s3cs_records_v1_PutRecordResponse__Output>
        RecordEntry: MessageTypeDefinition<_s3cs_records_v1_RecordEntry, _s3cs_records_v1_RecordEntry__Output>
      }
    }
  }
}

