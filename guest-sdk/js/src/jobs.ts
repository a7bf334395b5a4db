// Child jobs and human approvals. Waiting suspends the job: the host drops the instance and
// replays the workflow from the start once the answer exists, so the wait "returns" then.

import * as jobs from "vidfarm:template/jobs@0.1.0";
import type { Provider } from "vidfarm:template/types@0.1.0";
import { callImport, jobsError, parseJson, TemplateError } from "./errors";

/** The options of the positional form `enqueueChild(operation, payload, options)`. */
export interface ChildOptions {
  /** Defaults to the operation's workflow. */
  workflow?: string;
  providerHint?: Provider;
}

/** The spec's form: `enqueueChild({ operationName, workflowName, payload, providerHint })`. */
export interface EnqueueChildInput {
  /** An operation of this template; the payload is validated against its input schema. */
  operationName: string;
  /** The workflow the child runs; defaults to the operation's workflow. */
  workflowName?: string;
  /** Any JSON value the operation's schema accepts (default `{}`). */
  payload?: unknown;
  /** Passed to the host with the child request (see the README: not yet acted on). */
  providerHint?: Provider;
}

/** What the spec's form of `enqueueChild` returns. */
export interface EnqueuedChild {
  jobId: string;
}

/** A child to wait for: its id, or what `enqueueChild({...})` returned. */
export type ChildRef = string | EnqueuedChild;

/** How one child ended. */
export type ChildOutcome =
  | { status: "succeeded"; output: unknown }
  | { status: "failed"; error: TemplateError }
  | { status: "cancelled" };

export interface ChildResult {
  jobId: string;
  outcome: ChildOutcome;
}

export class Jobs {
  /**
   * Enqueue a child job of this template (journaled: a replay gets the same id). The spec's
   * form takes `{ operationName, workflowName?, payload?, providerHint? }` and returns
   * `{ jobId }`; the older positional form `(operation, payload, { workflow?, providerHint? })`
   * returns the id itself.
   */
  enqueueChild(input: EnqueueChildInput): Promise<EnqueuedChild>;
  enqueueChild(operation: string, payload: unknown, options?: ChildOptions): Promise<string>;
  async enqueueChild(
    first: string | EnqueueChildInput,
    payload?: unknown,
    options: ChildOptions = {},
  ): Promise<string | EnqueuedChild> {
    if (typeof first === "string") {
      return enqueue(first, options.workflow, payload, options.providerHint);
    }
    if (first === null || typeof first !== "object" || typeof first.operationName !== "string") {
      throw new TemplateError(
        "child_invalid_request",
        "enqueueChild takes `{ operationName, workflowName?, payload?, providerHint? }` or `(operation, payload, options?)`",
      );
    }
    return { jobId: enqueue(first.operationName, first.workflowName, first.payload, first.providerHint) };
  }

  /** The children's results in order; the job suspends until every one has ended. */
  async awaitChildren(children: ChildRef[]): Promise<ChildResult[]> {
    const ids = children.map((child) => (typeof child === "string" ? child : child.jobId));
    return callImport(() => jobs.awaitChildren(ids), jobsError).map((child) => ({
      jobId: child.jobId,
      outcome: childOutcome(child.jobId, child.outcome),
    }));
  }

  /**
   * The outputs of the children, in order; the first failed or cancelled child fails this
   * workflow too (with the child's own error).
   */
  async awaitOutputs<T = unknown>(children: ChildRef[]): Promise<T[]> {
    return (await this.awaitChildren(children)).map(({ jobId, outcome }) => {
      if (outcome.status === "succeeded") return outcome.output as T;
      if (outcome.status === "failed") throw outcome.error;
      throw new TemplateError("child_cancelled", `child ${jobId} was cancelled`);
    });
  }

  /** Ask a human; the job suspends until `POST .../jobs/:id/resume`, whose body this returns. */
  async awaitHuman<T = unknown>(prompt: unknown): Promise<T> {
    const answer = callImport(() => jobs.awaitHuman(JSON.stringify(prompt)), jobsError);
    try {
      return JSON.parse(answer) as T;
    } catch (e) {
      throw new TemplateError("invalid_human_answer", (e as Error).message);
    }
  }
}

function enqueue(operation: string, workflow: string | undefined, payload: unknown, providerHint?: Provider): string {
  return callImport(
    () => jobs.enqueueChild({ operation, workflow, payload: JSON.stringify(payload ?? {}), providerHint }),
    jobsError,
  );
}

function childOutcome(jobId: string, outcome: jobs.ChildOutcome): ChildOutcome {
  switch (outcome.tag) {
    case "succeeded":
      return { status: "succeeded", output: parseJson(outcome.val, `the output of child ${jobId}`) };
    case "failed":
      return { status: "failed", error: TemplateError.fromWit(outcome.val) };
    case "cancelled":
      return { status: "cancelled" };
  }
}
