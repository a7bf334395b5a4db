// Write Vidfarm templates in TypeScript or JavaScript: zod-typed operations, one context, and
// `vidfarm-build` to turn the package (npm dependencies included) into a wasm component.
//
//   import { defineTemplate, z } from "@vidfarm/guest";
//
//   export default defineTemplate({
//     id: "hello-ts",
//     version: "1.0.0",
//     description: "Greets people by name.",
//     operations: {
//       greet: { description: "Greet one person.", inputSchema: z.object({ name: z.string().min(1) }) },
//     },
//     jobs: {
//       async greet(ctx, input) {
//         const greeting = `Hello, ${input.name}!`;
//         await ctx.storage.putText("greeting.txt", greeting, "text/plain; charset=utf-8");
//         return { greeting };
//       },
//     },
//   });
//
// Templates use the `z` exported here (one zod instance for schemas and their JSON Schemas).

/// <reference path="../wit-types/template.d.ts" />

export { z } from "zod";
export { defineTemplate, Template } from "./template";
export type { Limits, OperationDef, TemplateDef, Workflow } from "./template";
export { Context, Logger } from "./context";
export type { JobInfo, Metadata, TemplateJobContext } from "./context";
export { TemplateError } from "./errors";
export { Storage } from "./storage";
export type { PutOptions, PutOptionsOrContentType, StoredObject } from "./storage";
export { Billing, Providers, Remotion } from "./capabilities";
export type {
  BillingEvent,
  BillingEventFields,
  EventType,
  ImageRequest,
  ImageResponse,
  LayoutRequest,
  LayoutResponse,
  NarrationRequest,
  Provider,
  RenderRequest,
  RenderResult,
  SpeechRequest,
  SpeechResponse,
  TextRequest,
  TextResponse,
  VoiceProvider,
} from "./capabilities";
export { Jobs } from "./jobs";
export type { ChildOptions, ChildOutcome, ChildRef, ChildResult, EnqueueChildInput, EnqueuedChild } from "./jobs";
export type { Customer, Environment } from "vidfarm:template/types@0.1.0";
/** The spec's names of `Customer` and `Provider`. */
export type { Customer as CustomerContext, Provider as ProviderType } from "vidfarm:template/types@0.1.0";
