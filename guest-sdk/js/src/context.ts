// The context a workflow receives: the spec's `TemplateJobContext`, one handle per capability.

import { log, progress } from "vidfarm:template/logging@0.1.0";
import type { Customer, Environment, JobContext } from "vidfarm:template/types@0.1.0";
import { Billing, Providers, Remotion } from "./capabilities";
import { Jobs } from "./jobs";
import { Storage } from "./storage";

/** A JSON object of event metadata. */
export type Metadata = Record<string, unknown>;

/** Which job this run belongs to. */
export interface JobInfo {
  jobId: string;
  templateId: string;
  templateVersion: string;
  /** The operation the job was created for. */
  operation: string;
  /** The workflow running now (an operation's, or one a parent asked for). */
  workflow: string;
  /** The parent job when this job was enqueued by `ctx.jobs.enqueueChild`. */
  parentJobId: string | null;
  /** 1 for the first run; a retry or a resume replays from the start with a higher attempt. */
  attempt: number;
}

/** Everything a workflow can know and do. Every effect goes to the host. */
export class Context<Config = Record<string, unknown>> {
  readonly job: JobInfo;
  /** `development` or `production`: where keys come from and how strict the host is. */
  readonly env: Environment;
  /** Who the job runs for. */
  readonly customer: Customer;
  /** The customer's template config, parsed by the template's `configSchema` (defaults applied). */
  readonly config: Config;
  /** The spec's name for `config` (the same object). */
  readonly templateConfig: Config;
  readonly logger = new Logger();
  readonly storage = new Storage();
  readonly billing = new Billing();
  readonly providers = new Providers();
  readonly remotion = new Remotion();
  readonly jobs = new Jobs();

  constructor(job: JobContext, config: Config) {
    this.job = {
      jobId: job.jobId,
      templateId: job.templateId,
      templateVersion: job.templateVersion,
      operation: job.operation,
      workflow: job.workflow,
      parentJobId: job.parentJobId ?? null,
      attempt: job.attempt,
    };
    this.env = job.env;
    this.customer = { id: job.customer.id, name: job.customer.name };
    this.config = config;
    this.templateConfig = config;
  }
}

/** The spec's name for the context a workflow receives. */
export type TemplateJobContext<Config = Record<string, unknown>> = Context<Config>;

/** Structured job events and progress, each with an optional metadata object. Events are capped per job; past the cap the run ends. */
export class Logger {
  debug(message: string, metadata: Metadata = {}): void {
    log("debug", message, JSON.stringify(metadata));
  }
  info(message: string, metadata: Metadata = {}): void {
    log("info", message, JSON.stringify(metadata));
  }
  warn(message: string, metadata: Metadata = {}): void {
    log("warn", message, JSON.stringify(metadata));
  }
  error(message: string, metadata: Metadata = {}): void {
    log("error", message, JSON.stringify(metadata));
  }
  /** `fraction` in [0, 1]; shown on the job and streamed to clients. */
  progress(fraction: number, message: string, metadata: Metadata = {}): void {
    progress(fraction, message, JSON.stringify(metadata));
  }
}
