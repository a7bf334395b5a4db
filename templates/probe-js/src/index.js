// `probe-js`: the JavaScript twin of templates/sandbox-probe. Each operation attacks one limit
// of the sandbox; the host must fail that job with a precise error and carry on unharmed.
// Plain JavaScript on purpose: the `js` flavour of the SDK, no TypeScript step.

import { defineTemplate, TemplateError, z } from "@vidfarm/guest";

const nothing = z.object({});

export default defineTemplate({
  id: "probe-js",
  version: "0.1.0",
  description: "Attacks the sandbox from JavaScript, one limit per operation (tests only).",
  operations: {
    echo: { description: "Return the payload.", inputSchema: z.looseObject({}) },
    spin: { description: "Loop forever.", inputSchema: nothing },
    "hog-memory": { description: "Allocate until refused.", inputSchema: nothing, workflow: "hogMemory" },
    throw: {
      description: "Throw an exception the workflow does not catch.",
      inputSchema: z.object({ message: z.string().default("the JavaScript probe threw on purpose") }),
    },
    fail: {
      description: "Fail with a TemplateError of the template's own.",
      inputSchema: nothing,
    },
  },
  jobs: {
    async echo(_ctx, input) {
      return input;
    },
    async spin() {
      let x = 0;
      for (;;) x = (x * 1103515245 + 12345) | 0;
    },
    async hogMemory(ctx) {
      ctx.logger.info("allocating until refused");
      const hoard = [];
      for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
    },
    async throw(_ctx, input) {
      throw new Error(input.message);
    },
    async fail() {
      throw new TemplateError("probe_failed", "the probe failed on purpose", { on: "purpose" });
    },
  },
});
