/// <reference path="./vidfarm-template-types.d.ts" />
declare module 'vidfarm:template/providers@0.1.0' {
  /**
   * Every call leases one of the customer's keys, is rate-limited and billed by the host,
   * and is journaled: a replay returns the recorded answer and never pays twice.
   */
  export function generateText(request: TextRequest): TextResponse;
  export function generateImage(request: ImageRequest): ImageResponse;
  export function analyzeImageLayout(request: LayoutRequest): LayoutResponse;
  export function generateSpeech(request: SpeechRequest): SpeechResponse;
  export function generateVideo(request: VideoRequest): VideoResponse;
  export type Provider = import('vidfarm:template/types@0.1.0').Provider;
  export type Json = import('vidfarm:template/types@0.1.0').Json;
  export type ProviderError = ProviderErrorNoValidKey | ProviderErrorInvalidRequest | ProviderErrorUpstream | ProviderErrorUnsupported;
  /**
   * The customer has no usable key for this provider (none, or all invalid).
   */
  export interface ProviderErrorNoValidKey {
    tag: 'no-valid-key',
    val: string,
  }
  /**
   * The request is malformed for this provider or model.
   */
  export interface ProviderErrorInvalidRequest {
    tag: 'invalid-request',
    val: string,
  }
  /**
   * The provider failed in a way retries did not fix.
   */
  export interface ProviderErrorUpstream {
    tag: 'upstream',
    val: string,
  }
  /**
   * The provider cannot do this (e.g. images from perplexity).
   */
  export interface ProviderErrorUnsupported {
    tag: 'unsupported',
    val: string,
  }
  export interface TextRequest {
    provider: Provider,
    model: string,
    prompt: string,
    system?: string,
    temperature?: number,
    maxOutputTokens?: number,
  }
  export interface TextResponse {
    text: string,
    provider: Provider,
    model: string,
    inputTokens: number,
    outputTokens: number,
  }
  export interface ImageRequest {
    provider: Provider,
    model: string,
    prompt: string,
    /**
     * e.g. `1024x1024`
     */
    size?: string,
  }
  export interface ImageResponse {
    bytes: Uint8Array,
    contentType: string,
    revisedPrompt?: string,
  }
  /**
   * # Variants
   * 
   * ## `"top"`
   * 
   * ## `"center"`
   * 
   * ## `"bottom"`
   */
  export type LayoutZone = 'top' | 'center' | 'bottom';
  /**
   * # Variants
   * 
   * ## `"left"`
   * 
   * ## `"center"`
   * 
   * ## `"right"`
   */
  export type LayoutAlign = 'left' | 'center' | 'right';
  export interface LayoutRequest {
    provider: Provider,
    model: string,
    imageUrl: string,
    overlayText: string,
  }
  export interface LayoutResponse {
    zone: LayoutZone,
    align: LayoutAlign,
    maxWidthPercent: number,
    justification: string,
  }
  /**
   * Text to speech. The host stores the audio itself, as a 16-bit PCM WAV under the job's
   * prefix (counted against the storage quota like `storage.put`), so minutes of audio pass
   * through neither the template's memory nor the journal.
   */
  export interface SpeechRequest {
    /**
     * `openai` (`/audio/speech`) or `gemini` (TTS models).
     */
    provider: Provider,
    /**
     * e.g. `gpt-4o-mini-tts`, `tts-1`, `gemini-2.5-flash-preview-tts`
     */
    model: string,
    /**
     * What is said: 1 to 4,096 characters.
     */
    text: string,
    /**
     * The provider's voice: `alloy`, `nova`, … (OpenAI), `Kore`, `Puck`, … (Gemini).
     */
    voice: string,
    /**
     * Where the audio is stored under the job's prefix, e.g. `narration/scene-01.wav`.
     */
    key: string,
    /**
     * How to speak (tone, pace); models without the option ignore it.
     */
    instructions?: string,
  }
  export interface SpeechResponse {
    key: string,
    /**
     * A signed URL of the audio, when the store makes them.
     */
    url?: string,
    size: bigint,
    /**
     * `audio/wav`.
     */
    contentType: string,
    /**
     * The audio's length, counted from its samples.
     */
    durationSeconds: number,
  }
  /**
   * A video clip generated from a prompt: a long-running generation (minutes at the
   * provider). The host holds its price, submits it with one of the customer's keys,
   * stores the provider's operation id before anything else, and suspends the job (no
   * instance is kept) while it polls; the clip is downloaded into storage and the job
   * resumes with it. A host that stops after the submit polls the same operation; one that
   * stops during the submit fails the call rather than submit (and pay) again.
   */
  export interface VideoRequest {
    /**
     * `gemini` (Veo, `predictLongRunning`); OpenAI's Videos API shut down in 2026.
     */
    provider: Provider,
    /**
     * e.g. `veo-3.1-generate-preview`, `veo-3.1-fast-generate-preview`
     */
    model: string,
    /**
     * What to show: 1 to 4,000 characters.
     */
    prompt: string,
    /**
     * The clip's length: 4, 6 or 8 (Veo 3.1).
     */
    durationSeconds: number,
    /**
     * `16:9` or `9:16`.
     */
    aspectRatio: string,
    /**
     * What to keep out of the clip: at most 1,000 characters.
     */
    negativePrompt?: string,
    /**
     * Where the clip is stored, relative to the job's prefix (default
     * `generations/<id>.mp4`).
     */
    outputKey?: string,
  }
  export interface VideoResponse {
    /**
     * The generation's id on this platform (`<job id>_r<n>`).
     */
    generationId: string,
    /**
     * Where the clip is stored, relative to the job's prefix.
     */
    outputKey: string,
    /**
     * A signed URL of the clip, when the store makes them.
     */
    outputUrl?: string,
    /**
     * `{provider, model, duration_seconds, width, height, fps, has_audio, size_bytes}`.
     */
    metadata: Json,
  }
}
