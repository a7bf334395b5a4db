/// <reference path="./vidfarm-template-types.d.ts" />
declare module 'vidfarm:template/storage@0.1.0' {
  /**
   * Write an artifact under the job's prefix (journaled: a replay does not write twice).
   */
  export function put(key: string, bytes: Uint8Array, options: PutOptions): StoredObject;
  /**
   * Read back an artifact of this job.
   */
  export function get(key: string): Uint8Array;
  /**
   * Read a file from the customer's workspace (read-only to templates).
   */
  export function readWorkspace(key: string): Uint8Array;
  /**
   * A signed public URL of an artifact of this job.
   */
  export function publicUrl(key: string): string | undefined;
  export type Json = import('vidfarm:template/types@0.1.0').Json;
  export type StorageError = StorageErrorInvalidKey | StorageErrorNotFound | StorageErrorTooLarge | StorageErrorUnavailable;
  /**
   * The key is absolute, escapes its prefix (`..`, encoded forms), or is malformed.
   */
  export interface StorageErrorInvalidKey {
    tag: 'invalid-key',
    val: string,
  }
  export interface StorageErrorNotFound {
    tag: 'not-found',
    val: string,
  }
  /**
   * The object is larger than the host allows (the limit in bytes).
   */
  export interface StorageErrorTooLarge {
    tag: 'too-large',
    val: bigint,
  }
  /**
   * The backend failed; retrying the job may help.
   */
  export interface StorageErrorUnavailable {
    tag: 'unavailable',
    val: string,
  }
  export interface PutOptions {
    contentType: string,
    /**
     * What the artifact is (`script`, `image`, `video`, ...); shown in job events.
     */
    kind?: string,
    metadata: Json,
  }
  export interface StoredObject {
    /**
     * The key relative to the job's artifact prefix.
     */
    key: string,
    /**
     * A signed public URL when the backend can give one.
     */
    url?: string,
    size: bigint,
  }
}
