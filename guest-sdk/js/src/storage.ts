// Artifacts under the job's prefix, and the customer's workspace (read-only).

import * as storage from "vidfarm:template/storage@0.1.0";
import { callImport, parseJson, storageError } from "./errors";

/** How to store an artifact; `contentType` defaults per method. */
export interface PutOptions {
  contentType?: string;
  /** What the artifact is (`script`, `image`, `video`, ...); shown in job events. */
  kind?: string;
  metadata?: Record<string, unknown>;
}

/** An artifact that was stored. */
export interface StoredObject {
  /** The key relative to the job's artifact prefix. */
  key: string;
  /** A signed public URL when the backend can give one. */
  url: string | null;
  size: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** `putText`/`putJson`/`putBuffer`'s third argument: options, or (as in the spec) a content type. */
export type PutOptionsOrContentType = PutOptions | string;

function putOptions(
  options: PutOptionsOrContentType | undefined,
  defaultContentType: string,
): PutOptions & { contentType: string } {
  const given: PutOptions = typeof options === "string" ? { contentType: options } : (options ?? {});
  return { ...given, contentType: given.contentType ?? defaultContentType };
}

/**
 * The spec's `storage` (`putJson`, `putText`, `putBuffer`, `getPublicUrl`) plus reads. The
 * `put*` methods are `async` as in the spec; the host answers synchronously, so each promise is
 * already settled when it is returned. `putBytes` and `publicUrl` are the older names.
 */
export class Storage {
  /** Write bytes under `key` (journaled: a replay does not write twice). */
  async putBuffer(key: string, value: Uint8Array, options?: PutOptionsOrContentType): Promise<StoredObject> {
    const { contentType, kind, metadata } = putOptions(options, "application/octet-stream");
    const stored = callImport(
      () =>
        storage.put(key, value, {
          contentType,
          kind,
          metadata: JSON.stringify(metadata ?? {}),
        }),
      storageError,
    );
    return { key: stored.key, url: stored.url ?? null, size: Number(stored.size) };
  }

  /** The older name of `putBuffer`. */
  async putBytes(key: string, bytes: Uint8Array, options?: PutOptionsOrContentType): Promise<StoredObject> {
    return this.putBuffer(key, bytes, options);
  }

  /** Store text (UTF-8); the third argument is a content type (spec) or `PutOptions`. */
  async putText(key: string, value: string, options?: PutOptionsOrContentType): Promise<StoredObject> {
    return this.putBuffer(key, encoder.encode(value), putOptions(options, "text/plain; charset=utf-8"));
  }

  /** Store `JSON.stringify(value)`; the third argument is a content type or `PutOptions`. */
  async putJson(key: string, value: unknown, options?: PutOptionsOrContentType): Promise<StoredObject> {
    return this.putBuffer(key, encoder.encode(JSON.stringify(value)), putOptions(options, "application/json"));
  }

  /** Read back an artifact of this job. */
  async get(key: string): Promise<Uint8Array> {
    return callImport(() => storage.get(key), storageError);
  }

  async getText(key: string): Promise<string> {
    return decoder.decode(await this.get(key));
  }

  async getJson<T = unknown>(key: string): Promise<T> {
    return parseJson<T>(await this.getText(key), `artifact ${key}`);
  }

  /** Read a file from the customer's workspace (read-only to templates). */
  async readWorkspace(key: string): Promise<Uint8Array> {
    return callImport(() => storage.readWorkspace(key), storageError);
  }

  async readWorkspaceText(key: string): Promise<string> {
    return decoder.decode(await this.readWorkspace(key));
  }

  /**
   * A signed public URL of an artifact of this job, or `null` when the backend cannot give one.
   * Synchronous as in the spec (the host call is); a malformed key throws `storage_invalid_key`.
   */
  getPublicUrl(key: string): string | null {
    return callImport(() => storage.publicUrl(key), storageError) ?? null;
  }

  /** The older, `async` form of `getPublicUrl`. */
  async publicUrl(key: string): Promise<string | null> {
    return this.getPublicUrl(key);
  }
}
