/// <reference path="./vidfarm-template-types.d.ts" />
declare module 'vidfarm:template/billing@0.1.0' {
  /**
   * Record a billable event (journaled: a replay never charges twice). A charge that would
   * cross the customer's limit ends the run with `billing_limit_reached`.
   */
  export function record(event: BillingEvent): void;
  export type Json = import('vidfarm:template/types@0.1.0').Json;
  export type Provider = import('vidfarm:template/types@0.1.0').Provider;
  /**
   * # Variants
   * 
   * ## `"ai-generation"`
   * 
   * ## `"render"`
   * 
   * ## `"storage-write"`
   * 
   * ## `"cpu-estimate"`
   * 
   * ## `"egress"`
   */
  export type EventType = 'ai-generation' | 'render' | 'storage-write' | 'cpu-estimate' | 'egress';
  export interface BillingEvent {
    eventType: EventType,
    /**
     * What it cost the platform; finite and >= 0.
     */
    costUsd: number,
    /**
     * What to charge the customer; never below cost × the customer's margin.
     */
    chargeUsd?: number,
    provider?: Provider,
    model?: string,
    metadata: Json,
  }
  export type BillingError = BillingErrorInvalid;
  /**
   * The event is malformed (negative or non-finite cost, bad metadata).
   */
  export interface BillingErrorInvalid {
    tag: 'invalid',
    val: string,
  }
}
