// The component's exports, made from a template module: what `vidfarm-build`'s generated
// entry re-exports as the WIT world's `describe` and `run`.

import type { JobContext, Manifest } from "vidfarm:template/types@0.1.0";
import { Template, TEMPLATE_BRAND } from "./template";

function isTemplate(value: unknown): value is Template {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[TEMPLATE_BRAND] === true;
}

/** The one template a module exports: its default export, or its only exported template. */
export function templateOf(module: Record<string, unknown>): Template {
  if (isTemplate(module.default)) return module.default;
  const found = Object.entries(module).filter(([, value]) => isTemplate(value));
  if (found.length === 1) return found[0][1] as Template;
  const names = found.map(([name]) => name).join(", ");
  throw new Error(
    found.length === 0
      ? "the template entry exports no template: `export default defineTemplate({...})`"
      : `the template entry exports several templates (${names}); export exactly one`,
  );
}

/** `describe` and `run` as componentize-js calls them. */
export function exportTemplate(module: Record<string, unknown>) {
  const template = templateOf(module);
  return {
    describe: (): Manifest => template.describe(),
    run: (workflow: string, context: JobContext, input: string) => template.run(workflow, context, input),
  };
}
