// Original file: proto/s3cs/records/v1/records.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { DeleteRecordRequest as _s3cs_records_v1_DeleteRecordRequest, DeleteRecordRequest__Output as _s3cs_records_v1_DeleteRecordRequest__Output } from '../../../s3cs/records/v1/DeleteRecordRequest.js';
import type { Empty as _google_protobuf_Empty, Empty__Output as _google_protobuf_Empty__Output } from '../../../google/protobuf/Empty.js';
import type { GetRecordRequest as _s3cs_records_v1_GetRecordRequest, GetRecordRequest__Output as _s3cs_records_v1_GetRecordRequest__Output } from '../../../s3cs/records/v1/GetRecordRequest.js';
import type { GetRecordResponse as _s3cs_records_v1_GetRecordResponse, GetRecordResponse__Output as _s3cs_records_v1_GetRecordResponse__Output } from '../../../s3cs/records/v1/GetRecordResponse.js';
import type { ListRecordsRequest as _s3cs_records_v1_ListRecordsRequest, ListRecordsRequest__Output as _s3cs_records_v1_ListRecordsRequest__Output } from '../../../s3cs/records/v1/ListRecordsRequest.js';
import type { ListRecordsResponse as _s3cs_records_v1_ListRecordsResponse, ListRecordsResponse__Output as _s3cs_records_v1_ListRecordsResponse__Output } from '../../../s3cs/records/v1/ListRecordsResponse.js';
import type { PutRecordRequest as _s3cs_records_v1_PutRecordRequest, PutRecordRequest__Output as _s3cs_records_v1_PutRecordRequest__Output } from '../../../s3cs/records/v1/PutRecordRequest.js';
import type { PutRecordResponse as _s3cs_records_v1_PutRecordResponse, PutRecordResponse__Output as _s3cs_records_v1_PutRecordResponse__Output } from '../../../s3cs/records/v1/PutRecordResponse.js';

export interface CacheRecordsClient extends grpc.Client {
  Delete(argument: _s3cs_records_v1_DeleteRecordRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  Delete(argument: _s3cs_records_v1_DeleteRecordRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  Delete(argument: _s3cs_records_v1_DeleteRecordRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  Delete(argument: _s3cs_records_v1_DeleteRecordRequest, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  delete(argument: _s3cs_records_v1_DeleteRecordRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  delete(argument: _s3cs_records_v1_DeleteRecordRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  delete(argument: _s3cs_records_v1_DeleteRecordRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  delete(argument: _s3cs_records_v1_DeleteRecordRequest, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  
  /**
   * The record's bytes exactly as stored. NotFound when the name has no record.
   */
  Get(argument: _s3cs_records_v1_GetRecordRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_s3cs_records_v1_GetRecordResponse__Output>): grpc.ClientUnaryCall;
  Get(argument: _s3cs_records_v1_GetRecordRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_s3cs_records_v1_GetRecordResponse__Output>): grpc.ClientUnaryCall;
  Get(argument: _s3cs_records_v1_GetRecordRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_s3cs_records_v1_GetRecordResponse__Output>): grpc.ClientUnaryCall;
  Get(argument: _s3cs_records_v1_GetRecordRequest, callback: grpc.requestCallback<_s3cs_records_v1_GetRecordResponse__Output>): grpc.ClientUnaryCall;
  /**
   * The record's bytes exactly as stored. NotFound when the name has no record.
   */
  get(argument: _s3cs_records_v1_GetRecordRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_s3cs_records_v1_GetRecordResponse__Output>): grpc.ClientUnaryCall;
  get(argument: _s3cs_records_v1_GetRecordRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_s3cs_records_v1_GetRecordResponse__Output>): grpc.ClientUnaryCall;
  get(argument: _s3cs_records_v1_GetRecordRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_s3cs_records_v1_GetRecordResponse__Output>): grpc.ClientUnaryCall;
  get(argument: _s3cs_records_v1_GetRecordRequest, callback: grpc.requestCallback<_s3cs_records_v1_GetRecordResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Names in key order, a page at a time.
   */
  List(argument: _s3cs_records_v1_ListRecordsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_s3cs_records_v1_ListRecordsResponse__Output>): grpc.ClientUnaryCall;
  List(argument: _s3cs_records_v1_ListRecordsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_s3cs_records_v1_ListRecordsResponse__Output>): grpc.ClientUnaryCall;
  List(argument: _s3cs_records_v1_ListRecordsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_s3cs_records_v1_ListRecordsResponse__Output>): grpc.ClientUnaryCall;
  List(argument: _s3cs_records_v1_ListRecordsRequest, callback: grpc.requestCallback<_s3cs_records_v1_ListRecordsResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Names in key order, a page at a time.
   */
  list(argument: _s3cs_records_v1_ListRecordsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_s3cs_records_v1_ListRecordsResponse__Output>): grpc.ClientUnaryCall;
  list(argument: _s3cs_records_v1_ListRecordsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_s3cs_records_v1_ListRecordsResponse__Output>): grpc.ClientUnaryCall;
  list(argument: _s3cs_records_v1_ListRecordsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_s3cs_records_v1_ListRecordsResponse__Output>): grpc.ClientUnaryCall;
  list(argument: _s3cs_records_v1_ListRecordsRequest, callback: grpc.requestCallback<_s3cs_records_v1_ListRecordsResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Stores `config` under every name (BuildKit's `name=a;b`). The JSON is validated and every
   * layer blob must already be in the store (FailedPrecondition names the missing ones).
   */
  Put(argument: _s3cs_records_v1_PutRecordRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_s3cs_records_v1_PutRecordResponse__Output>): grpc.ClientUnaryCall;
  Put(argument: _s3cs_records_v1_PutRecordRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_s3cs_records_v1_PutRecordResponse__Output>): grpc.ClientUnaryCall;
  Put(argument: _s3cs_records_v1_PutRecordRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_s3cs_records_v1_PutRecordResponse__Output>): grpc.ClientUnaryCall;
  Put(argument: _s3cs_records_v1_PutRecordRequest, callback: grpc.requestCallback<_s3cs_records_v1_PutRecordResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Stores `config` under every name (BuildKit's `name=a;b`). The JSON is validated and every
   * layer blob must already be in the store (FailedPrecondition names the missing ones).
   */
  put(argument: _s3cs_records_v1_PutRecordRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_s3cs_records_v1_PutRecordResponse__Output>): grpc.ClientUnaryCall;
  put(argument: _s3cs_records_v1_PutRecordRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_s3cs_records_v1_PutRecordResponse__Output>): grpc.ClientUnaryCall;
  put(argument: _s3cs_records_v1_PutRecordRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_s3cs_records_v1_PutRecordResponse__Output>): grpc.ClientUnaryCall;
  put(argument: _s3cs_records_v1_PutRecordRequest, callback: grpc.requestCallback<_s3cs_records_v1_PutRecordResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface CacheRecordsHandlers extends grpc.UntypedServiceImplementation {
  Delete: grpc.handleUnaryCall<_s3cs_records_v1_DeleteRecordRequest__Output, _google_protobuf_Empty>;
  
  /**
   * The record's bytes exactly as stored. NotFound when the name has no record.
   */
  Get: grpc.handleUnaryCall<_s3cs_records_v1_GetRecordRequest__Output, _s3cs_records_v1_GetRecordResponse>;
  
  /**
   * Names in key order, a page at a time.
   */
  List: grpc.handleUnaryCall<_s3cs_records_v1_ListRecordsRequest__Output, _s3cs_records_v1_ListRecordsResponse>;
  
  /**
   * Stores `config` under every name (BuildKit's `name=a;b`). The JSON is validated and every
   * layer blob must already be in the store (FailedPrecondition names the missing ones).
   */
  Put: grpc.handleUnaryCall<_s3cs_records_v1_PutRecordRequest__Output, _s3cs_records_v1_PutRecordResponse>;
  
}

export interface CacheRecordsDefinition extends grpc.ServiceDefinition {
  Delete: MethodDefinition<_s3cs_records_v1_DeleteRecordRequest, _google_protobuf_Empty, _s3cs_records_v1_DeleteRecordRequest__Output, _google_protobuf_Empty__Output>
  Get: MethodDefinition<_s3cs_records_v1_GetRecordRequest, _s3cs_records_v1_GetRecordResponse, _s3cs_records_v1_GetRecordRequest__Output, _s3cs_records_v1_GetRecordResponse__Output>
  List: MethodDefinition<_s3cs_records_v1_ListRecordsRequest, _s3cs_records_v1_ListRecordsResponse, _s3cs_records_v1_ListRecordsRequest__Output, _s3cs_records_v1_ListRecordsResponse__Output>
  Put: MethodDefinition<_s3cs_records_v1_PutRecordRequest, _s3cs_records_v1_PutRecordResponse, _s3cs_records_v1_PutRecordRequest__Output, _s3cs_records_v1_PutRecordResponse__Output>
}
