/// <reference path="./interfaces/vidfarm-template-billing.d.ts" />
/// <reference path="./interfaces/vidfarm-template-jobs.d.ts" />
/// <reference path="./interfaces/vidfarm-template-logging.d.ts" />
/// <reference path="./interfaces/vidfarm-template-providers.d.ts" />
/// <reference path="./interfaces/vidfarm-template-remotion.d.ts" />
/// <reference path="./interfaces/vidfarm-template-speech.d.ts" />
/// <reference path="./interfaces/vidfarm-template-storage.d.ts" />
/// <reference path="./interfaces/vidfarm-template-types.d.ts" />
declare module 'vidfarm:template/template@0.1.0' {
  export type Json = import('vidfarm:template/types@0.1.0').Json;
  export type JobContext = import('vidfarm:template/types@0.1.0').JobContext;
  export type TemplateError = import('vidfarm:template/types@0.1.0').TemplateError;
  export type Manifest = import('vidfarm:template/types@0.1.0').Manifest;
  export type * as VidfarmTemplateBilling010 from 'vidfarm:template/billing@0.1.0'; // import vidfarm:template/billing@0.1.0
  export type * as VidfarmTemplateJobs010 from 'vidfarm:template/jobs@0.1.0'; // import vidfarm:template/jobs@0.1.0
  export type * as VidfarmTemplateLogging010 from 'vidfarm:template/logging@0.1.0'; // import vidfarm:template/logging@0.1.0
  export type * as VidfarmTemplateProviders010 from 'vidfarm:template/providers@0.1.0'; // import vidfarm:template/providers@0.1.0
  export type * as VidfarmTemplateRemotion010 from 'vidfarm:template/remotion@0.1.0'; // import vidfarm:template/remotion@0.1.0
  export type * as VidfarmTemplateSpeech010 from 'vidfarm:template/speech@0.1.0'; // import vidfarm:template/speech@0.1.0
  export type * as VidfarmTemplateStorage010 from 'vidfarm:template/storage@0.1.0'; // import vidfarm:template/storage@0.1.0
  export type * as VidfarmTemplateTypes010 from 'vidfarm:template/types@0.1.0'; // import vidfarm:template/types@0.1.0
  /**
  * The template's manifest: id, version, operations and their schemas.
  */
  export function describe(): Manifest;
  /**
  * Run one workflow for one job. `input` is the validated payload.
  */
  export function run(workflow: string, context: JobContext, input: Json): Json;
  export type Result<T, E> = { tag: 'ok', val: T } | { tag: 'err', val: E };
}
