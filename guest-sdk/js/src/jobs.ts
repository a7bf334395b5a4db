// Child jobs and human approvals. Waiting suspends the job: the host drops the instance and
// replays the workflow from the start once the answer exists, so the wait "returns" then.

import * as jobs from "vidfarm:template/jobs@0.1.0";
import type { Provider } from "vidfarm:template/types@0.1.0";
import { callImport, jobsError, parseJson, TemplateError } from "./errors";

export interface ChildOptions {
  /** Defaults to the operation's workflow. */
  workflow?: string;
  providerHint?: Provider;
}

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
  /** Enqueue a child running `operation` of this template; returns its job id (journaled). */
  async enqueueChild(operation: string, payload: unknown, options: ChildOptions = {}): Promise<string> {
    return callImport(
      () =>
        jobs.enqueueChild({
          operation,
          workflow: options.workflow,
          payload: JSON.stringify(payload ?? {}),
          providerHint: options.providerHint,
        }),
      jobsError,
    );
  }

  /** The children's results in order; the job suspends until every one has ended. */
  async awaitChildren(ids: string[]): Promise<ChildResult[]> {
    return callImport(() => jobs.awaitChildren(ids), jobsError).map((child) => ({
      jobId: child.jobId,
      outcome: childOutcome(child.jobId, child.outcome),
    }));
  }

  /**
   * The outputs of the children, in order; the first failed or cancelled child fails this
   * workflow too (with the child's own error).
   */
  async awaitOutputs<T = unknown>(ids: string[]): Promise<T[]> {
    return (await this.awaitChildren(ids)).map(({ jobId, outcome }) => {
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
