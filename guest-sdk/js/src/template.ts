// `defineTemplate`: the template's operations, their zod schemas and the workflows behind them.
//
// The manifest (JSON Schemas included) is computed when the module is evaluated, which
// componentize-js does once at build time (Wizer snapshot): a schema zod cannot express as
// JSON Schema, or an operation pointing at a missing workflow, fails the build, and `describe`
// costs nothing at run time.

import { z } from "zod";
import type { JobContext, Manifest, Operation, Provider, TemplateError as WitTemplateError } from "vidfarm:template/types@0.1.0";
import { Context } from "./context";
import { TemplateError } from "./errors";
import { panic } from "./panic";

/** Limits an operation may ask for; the host caps them at its own maxima. */
export interface Limits {
  fuel?: number | bigint;
  memoryMib?: number;
  timeoutMs?: number | bigint;
  maxChildren?: number;
  maxRetries?: number;
}

/** One operation the template sells through `POST /templates/:id/operations/:name`. */
export interface OperationDef<S extends z.ZodType = z.ZodType> {
  description: string;
  /** The payload's schema: its JSON Schema is what the host validates every request against. */
  inputSchema: S;
  /** The workflow (a key of `jobs`) this operation runs; defaults to the operation's name. */
  workflow?: string;
  providerHint?: Provider;
  /** The job notifies the customer's webhooks as it progresses. */
  webhookSupport?: boolean;
  /** What the host reserves from the customer's balance when the job is created. */
  estimatedCostUsd?: number;
  limits?: Limits;
}

type Operations = Record<string, OperationDef>;
type WorkflowOf<O extends Operations, K extends keyof O> = O[K] extends { workflow: infer W extends string }
  ? W
  : K & string;
type WorkflowNames<O extends Operations> = { [K in keyof O]: WorkflowOf<O, K> }[keyof O];
/** A workflow's input: the parsed payload of the operations that run it. */
type InputOf<O extends Operations, W> = {
  [K in keyof O]: WorkflowOf<O, K> extends W ? z.output<O[K]["inputSchema"]> : never;
}[keyof O];

/** A workflow: its result (any JSON value) is the job's output; a `TemplateError` fails the job. */
export type Workflow<Config, Input> = (ctx: Context<Config>, input: Input) => unknown;

export interface TemplateDef<C extends z.ZodType, O extends Operations> {
  /** `[a-z0-9-]{1,64}` */
  id: string;
  /** semver */
  version: string;
  description: string;
  /** The per-customer config (`POST /templates/:id/config`); read as `ctx.config`. */
  configSchema?: C;
  operations: O;
  /** Workflows by name. Those no operation names are reachable by child jobs only (input untyped). */
  jobs: { [W in WorkflowNames<O>]: Workflow<z.output<C>, InputOf<O, W>> } & {
    [name: string]: Workflow<z.output<C>, any>;
  };
}

/** Marks a template across module copies, so the component entry can find it among exports. */
export const TEMPLATE_BRAND = Symbol.for("vidfarm.template");

type WitResult = { tag: "ok"; val: string } | { tag: "err"; val: WitTemplateError };

/** A defined template: what `describe` reports and which workflow each name runs. */
export class Template<Config = unknown> {
  readonly [TEMPLATE_BRAND] = true;
  readonly manifest: Manifest;
  private readonly configSchema: z.ZodType;
  private readonly operations: Operations;
  private readonly jobs: Record<string, Workflow<Config, unknown>>;

  constructor(def: TemplateDef<z.ZodType, Operations>) {
    this.configSchema = def.configSchema ?? z.object({});
    this.operations = def.operations;
    this.jobs = def.jobs as Record<string, Workflow<Config, unknown>>;
    this.manifest = manifestOf(def);
  }

  describe(): Manifest {
    return this.manifest;
  }

  /** Run one workflow: parse config and input, await the workflow, encode its result. */
  async run(workflow: string, job: JobContext, input: string): Promise<WitResult> {
    try {
      const run = Object.prototype.hasOwnProperty.call(this.jobs, workflow) ? this.jobs[workflow] : undefined;
      if (run === undefined) {
        throw new TemplateError("unknown_workflow", `this template has no workflow \`${workflow}\``);
      }
      const config = parse(this.configSchema, job.config, "invalid_config", "the template config");
      const output = await run(new Context(job, config as Config), this.input(workflow, job.operation, input));
      return { tag: "ok", val: JSON.stringify(output === undefined ? null : output) };
    } catch (error) {
      if (error instanceof TemplateError) return { tag: "err", val: error.toWit() };
      return panic(workflow, error);
    }
  }

  /** The payload, parsed by the operation's schema when this workflow is that operation's. */
  private input(workflow: string, operation: string, input: string): unknown {
    const op = Object.prototype.hasOwnProperty.call(this.operations, operation) ? this.operations[operation] : undefined;
    if (op !== undefined && (op.workflow ?? operation) === workflow) {
      return parse(op.inputSchema, input, "invalid_input", "the payload");
    }
    return parse(z.unknown(), input, "invalid_input", "the payload");
  }
}

function parse(schema: z.ZodType, json: string, code: string, what: string): unknown {
  let value: unknown;
  try {
    value = json.trim() === "" ? {} : JSON.parse(json);
  } catch (e) {
    throw new TemplateError(code, `${what} is not JSON: ${(e as Error).message}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new TemplateError(code, `${what} does not match its schema: ${z.prettifyError(parsed.error)}`, {
      issues: parsed.error.issues,
    });
  }
  return parsed.data;
}

const ID = /^[a-z0-9-]{1,64}$/;
const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

function manifestOf(def: TemplateDef<z.ZodType, Operations>): Manifest {
  if (!ID.test(def.id)) throw new Error(`template id \`${def.id}\` is not [a-z0-9-]{1,64}`);
  if (!SEMVER.test(def.version)) throw new Error(`template version \`${def.version}\` is not semver`);
  const operations = Object.entries(def.operations).map(([name, op]): Operation => {
    const workflow = op.workflow ?? name;
    if (typeof def.jobs[workflow] !== "function") {
      throw new Error(`operation \`${name}\` runs workflow \`${workflow}\`, which is not in \`jobs\``);
    }
    return {
      name,
      description: op.description,
      inputSchema: jsonSchema(op.inputSchema, `the input of operation \`${name}\``),
      workflow,
      providerHint: op.providerHint,
      webhookSupport: op.webhookSupport ?? false,
      estimatedCostUsd: op.estimatedCostUsd,
      limits: {
        fuel: op.limits?.fuel === undefined ? undefined : BigInt(op.limits.fuel),
        memoryMib: op.limits?.memoryMib,
        timeoutMs: op.limits?.timeoutMs === undefined ? undefined : BigInt(op.limits.timeoutMs),
        maxChildren: op.limits?.maxChildren,
        maxRetries: op.limits?.maxRetries,
      },
    };
  });
  return {
    id: def.id,
    version: def.version,
    description: def.description,
    configSchema: jsonSchema(def.configSchema ?? z.object({}), "the config"),
    operations,
  };
}

/** The JSON Schema of what a client sends (`io: "input"`: fields with defaults are optional). */
function jsonSchema(schema: z.ZodType, what: string): string {
  try {
    return JSON.stringify(z.toJSONSchema(schema, { io: "input", unrepresentable: "throw" }));
  } catch (e) {
    throw new Error(`${what} has no JSON Schema: ${(e as Error).message}`);
  }
}

/**
 * Define a template. Export the result from the template's entry module (`export default`
 * or one named export); `vidfarm-build` turns it into the component's `describe` and `run`.
 */
export function defineTemplate<const O extends Operations, C extends z.ZodType = z.ZodObject<{}>>(
  def: TemplateDef<C, O>,
): Template<z.output<C>> {
  return new Template<z.output<C>>(def as unknown as TemplateDef<z.ZodType, Operations>);
}
