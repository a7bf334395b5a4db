/// <reference path="./vidfarm-template-types.d.ts" />
declare module 'vidfarm:template/jobs@0.1.0' {
  /**
   * Enqueue a child job of this template (journaled: a replay returns the same id).
   */
  export function enqueueChild(request: ChildRequest): string;
  /**
   * The results of these children, in order. While any is unfinished the job suspends
   * (`waiting_for_child`, instance dropped) and replays when the last one ends.
   */
  export function awaitChildren(ids: Array<string>): Array<ChildResult>;
  /**
   * Ask a human: the job suspends in `waiting_for_human` until
   * `POST .../jobs/:id/resume`, whose JSON body this returns.
   */
  export function awaitHuman(prompt: Json): Json;
  export type Json = import('vidfarm:template/types@0.1.0').Json;
  export type Provider = import('vidfarm:template/types@0.1.0').Provider;
  export type TemplateError = import('vidfarm:template/types@0.1.0').TemplateError;
  export type JobsError = JobsErrorLimitReached | JobsErrorInvalidRequest | JobsErrorNotAChild;
  /**
   * The per-job cap on children is reached.
   */
  export interface JobsErrorLimitReached {
    tag: 'limit-reached',
    val: string,
  }
  /**
   * Unknown operation, or a payload that fails its schema.
   */
  export interface JobsErrorInvalidRequest {
    tag: 'invalid-request',
    val: string,
  }
  /**
   * The id is not a child of this job.
   */
  export interface JobsErrorNotAChild {
    tag: 'not-a-child',
    val: string,
  }
  export interface ChildRequest {
    /**
     * An operation of this template.
     */
    operation: string,
    /**
     * Defaults to the operation's workflow.
     */
    workflow?: string,
    payload: Json,
    providerHint?: Provider,
  }
  export type ChildOutcome = ChildOutcomeSucceeded | ChildOutcomeFailed | ChildOutcomeCancelled;
  export interface ChildOutcomeSucceeded {
    tag: 'succeeded',
    val: Json,
  }
  export interface ChildOutcomeFailed {
    tag: 'failed',
    val: TemplateError,
  }
  export interface ChildOutcomeCancelled {
    tag: 'cancelled',
  }
  export interface ChildResult {
    jobId: string,
    outcome: ChildOutcome,
  }
}
