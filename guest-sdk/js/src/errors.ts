// The error a workflow throws on purpose, and how every capability error becomes one.
//
// The codes match the Rust SDK's (guest-sdk/src/error.rs) so clients see the same
// `storage_not_found` whichever language a template is written in.

import type { TemplateError as WitTemplateError } from "vidfarm:template/types@0.1.0";
import type { StorageError } from "vidfarm:template/storage@0.1.0";
import type { BillingError } from "vidfarm:template/billing@0.1.0";
import type { ProviderError } from "vidfarm:template/providers@0.1.0";
import type { RenderError } from "vidfarm:template/remotion@0.1.0";
import type { JobsError } from "vidfarm:template/jobs@0.1.0";

/** A workflow's own failure: the job fails with this `code` and `message`. */
export class TemplateError extends Error {
  /** snake_case and stable, so clients can branch on it. */
  readonly code: string;
  /** Optional machine-readable detail (any JSON value). */
  readonly details: unknown;

  constructor(code: string, message: string, details?: unknown) {
    super(message);
    this.name = "TemplateError";
    this.code = code;
    this.details = details;
  }

  /** The WIT record `run` returns as its error. */
  toWit(): WitTemplateError {
    return {
      code: this.code,
      message: this.message,
      details: this.details === undefined ? undefined : JSON.stringify(this.details),
    };
  }

  /** A child's failure as this SDK sees it (`details` decoded when it is JSON). */
  static fromWit(error: WitTemplateError): TemplateError {
    return new TemplateError(error.code, error.message, decodeDetails(error.details));
  }
}

function decodeDetails(details: string | undefined): unknown {
  if (details === undefined) return undefined;
  try {
    return JSON.parse(details);
  } catch {
    return details;
  }
}

/** JSON from the host or storage; text that is not JSON is the template's `invalid_json`. */
export function parseJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new TemplateError("invalid_json", `${what} is not JSON: ${(e as Error).message}`);
  }
}

type Variant = { tag: string; val?: unknown };

/**
 * Call an import whose WIT result may be an error. componentize-js throws a `ComponentError`
 * whose `payload` is the error variant; that becomes a `TemplateError` with a stable code.
 * Anything else (a bug) propagates untouched.
 */
export function callImport<T>(call: () => T, toError: (variant: Variant) => TemplateError): T {
  try {
    return call();
  } catch (e) {
    if (e !== null && typeof e === "object" && Object.prototype.hasOwnProperty.call(e, "payload")) {
      throw toError((e as { payload: Variant }).payload);
    }
    throw e;
  }
}

function coded(codes: Record<string, string>, family: string) {
  return (variant: Variant): TemplateError => {
    const code = codes[variant.tag] ?? `${family}_error`;
    return new TemplateError(code, String(variant.val ?? variant.tag));
  };
}

export const storageError = (variant: Variant): TemplateError => {
  const error = variant as StorageError;
  if (error.tag === "too-large") {
    return new TemplateError("storage_too_large", `object over the ${error.val}-byte limit`);
  }
  return coded(
    { "invalid-key": "storage_invalid_key", "not-found": "storage_not_found", unavailable: "storage_unavailable" },
    "storage",
  )(variant);
};

export const billingError: (variant: Variant) => TemplateError = coded(
  { invalid: "billing_invalid_event" } satisfies Record<BillingError["tag"], string>,
  "billing",
);

export const providerError: (variant: Variant) => TemplateError = coded(
  {
    "no-valid-key": "no_valid_provider_key",
    "invalid-request": "provider_invalid_request",
    upstream: "provider_failed",
    unsupported: "provider_unsupported",
  } satisfies Record<ProviderError["tag"], string>,
  "provider",
);

export const renderError: (variant: Variant) => TemplateError = coded(
  {
    "invalid-request": "render_invalid_request",
    failed: "render_failed",
    unavailable: "render_unavailable",
  } satisfies Record<RenderError["tag"], string>,
  "render",
);

export const jobsError: (variant: Variant) => TemplateError = coded(
  {
    "limit-reached": "child_limit_reached",
    "invalid-request": "child_invalid_request",
    "not-a-child": "not_a_child",
  } satisfies Record<JobsError["tag"], string>,
  "jobs",
);
