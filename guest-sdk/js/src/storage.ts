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

/**
 * Every method is `async` to match the spec's API; the host answers synchronously, so each
 * promise is already settled when it is returned.
 */
export class Storage {
  /** Write bytes under `key` (journaled: a replay does not write twice). */
  async putBytes(key: string, bytes: Uint8Array, options: PutOptions = {}): Promise<StoredObject> {
    const stored = callImport(
      () =>
        storage.put(key, bytes, {
          contentType: options.contentType ?? "application/octet-stream",
          kind: options.kind,
          metadata: JSON.stringify(options.metadata ?? {}),
        }),
      storageError,
    );
    return { key: stored.key, url: stored.url ?? null, size: Number(stored.size) };
  }

  async putText(key: string, text: string, options: PutOptions = {}): Promise<StoredObject> {
    const contentType = options.contentType ?? "text/plain; charset=utf-8";
    return this.putBytes(key, encoder.encode(text), { ...options, contentType });
  }

  async putJson(key: string, value: unknown, options: PutOptions = {}): Promise<StoredObject> {
    const contentType = options.contentType ?? "application/json";
    return this.putBytes(key, encoder.encode(JSON.stringify(value)), { ...options, contentType });
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

  /** A signed public URL of an artifact of this job, when the backend can give one. */
  async publicUrl(key: string): Promise<string | null> {
    return callImport(() => storage.publicUrl(key), storageError) ?? null;
  }
}
