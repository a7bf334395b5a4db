declare module 'vidfarm:template/types@0.1.0' {
  /**
   * JSON text. Objects unless a field says otherwise.
   */
  export type Json = string;
  /**
   * # Variants
   * 
   * ## `"development"`
   * 
   * ## `"production"`
   */
  export type Environment = 'development' | 'production';
  /**
   * The AI providers the host can route to.
   * # Variants
   * 
   * ## `"openai"`
   * 
   * ## `"gemini"`
   * 
   * ## `"openrouter"`
   * 
   * ## `"perplexity"`
   */
  export type Provider = 'openai' | 'gemini' | 'openrouter' | 'perplexity';
  /**
   * Who the job runs for.
   */
  export interface Customer {
    id: string,
    name: string,
  }
  /**
   * Everything a workflow may know about the job it runs in.
   */
  export interface JobContext {
    jobId: string,
    templateId: string,
    templateVersion: string,
    operation: string,
    workflow: string,
    /**
     * The parent job when this job was enqueued by `jobs.enqueue-child`.
     */
    parentJobId?: string,
    customer: Customer,
    /**
     * 1 for the first run; a retry or a resume replays from the start with a higher attempt.
     */
    attempt: number,
    env: Environment,
    /**
     * The customer's template config (validated against the manifest's config schema).
     */
    config: Json,
  }
  /**
   * A workflow's own failure: the job fails with this code and message.
   */
  export interface TemplateError {
    /**
     * snake_case, stable, machine-readable (e.g. `invalid_script`).
     */
    code: string,
    message: string,
    details?: Json,
  }
  /**
   * Per-operation limits a template may ask for; the host caps them at its own maxima.
   */
  export interface Limits {
    fuel?: bigint,
    memoryMib?: number,
    timeoutMs?: bigint,
    maxChildren?: number,
    maxRetries?: number,
  }
  /**
   * One operation the template sells through `POST /templates/:id/operations/:name`.
   */
  export interface Operation {
    name: string,
    description: string,
    /**
     * JSON Schema of the payload; the host validates every request against it.
     */
    inputSchema: Json,
    /**
     * The workflow `run` is called with for this operation.
     */
    workflow: string,
    providerHint?: Provider,
    webhookSupport: boolean,
    /**
     * What the host reserves from the customer's balance when the job is created.
     */
    estimatedCostUsd?: number,
    limits: Limits,
  }
  /**
   * What `describe` returns: the template's public shape.
   */
  export interface Manifest {
    id: string,
    /**
     * semver
     */
    version: string,
    description: string,
    /**
     * JSON Schema of the per-customer template config.
     */
    configSchema: Json,
    operations: Array<Operation>,
  }
}
