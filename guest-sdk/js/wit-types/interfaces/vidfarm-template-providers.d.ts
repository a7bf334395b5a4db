/// <reference path="./vidfarm-template-types.d.ts" />
declare module 'vidfarm:template/providers@0.1.0' {
  /**
   * Every call leases one of the customer's keys, is rate-limited and billed by the host,
   * and is journaled: a replay returns the recorded answer and never pays twice.
   */
  export function generateText(request: TextRequest): TextResponse;
  export function generateImage(request: ImageRequest): ImageResponse;
  export function analyzeImageLayout(request: LayoutRequest): LayoutResponse;
  export type Provider = import('vidfarm:template/types@0.1.0').Provider;
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
}
