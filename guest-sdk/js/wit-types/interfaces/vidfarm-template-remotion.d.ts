/// <reference path="./vidfarm-template-types.d.ts" />
declare module 'vidfarm:template/remotion@0.1.0' {
  /**
   * Render a Remotion composition. The job suspends while it renders; progress becomes
   * job events; the output lands in storage. Journaled: a replay never renders twice.
   */
  export function render(request: RenderRequest): RenderResult;
  /**
   * Render a JSON video spec (canvas, background tracks, audio tracks) with FFmpeg.
   */
  export function renderSpec(spec: Json, outputKey: string | undefined): RenderResult;
  export type Json = import('vidfarm:template/types@0.1.0').Json;
  export type RenderError = RenderErrorInvalidRequest | RenderErrorFailed | RenderErrorUnavailable;
  /**
   * The request or spec is invalid (the message names the field).
   */
  export interface RenderErrorInvalidRequest {
    tag: 'invalid-request',
    val: string,
  }
  /**
   * The renderer ran and failed.
   */
  export interface RenderErrorFailed {
    tag: 'failed',
    val: string,
  }
  /**
   * No renderer of this kind is configured on this host.
   */
  export interface RenderErrorUnavailable {
    tag: 'unavailable',
    val: string,
  }
  export interface RenderRequest {
    compositionId: string,
    serveUrl?: string,
    entryPoint?: string,
    /**
     * Where the output goes, relative to the job's prefix (default `renders/<id>.mp4`).
     */
    outputKey?: string,
    inputProps: Json,
  }
  export interface RenderResult {
    renderId: string,
    outputKey: string,
    outputUrl?: string,
    metadata: Json,
  }
}
