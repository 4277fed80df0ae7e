export { S3BlobStore } from './store.js';
export type { S3StoreOptions } from './options.js';
