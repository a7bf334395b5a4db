// __TEMPLATE_NAME__: a Vidfarm template in JavaScript (made by `vidfarm template new`).
// One operation to start from: a model drafts a short video script, which is stored.
// The SDK's README (guest-sdk/js/README.md) lists everything the context can do.

import { defineTemplate, z } from "@vidfarm/guest";

export default defineTemplate({
  id: "__TEMPLATE_NAME__",
  version: "0.1.0",
  description: "Drafts short video scripts with the customer's AI provider.",
  configSchema: z.object({
    provider: z.enum(["openai", "gemini", "openrouter", "perplexity"]).default("openai"),
    model: z.string().min(1).default("gpt-4o-mini"),
  }),
  operations: {
    draft: {
      description: "Draft a 30-second video script about a topic and store it.",
      inputSchema: z.object({ topic: z.string().min(1).max(500).describe("What the video is about.") }),
      providerHint: "openai",
      webhookSupport: true,
    },
  },
  jobs: {
    async draft(ctx, input) {
      ctx.logger.info("drafting a script", { topic: input.topic });
      const answer = await ctx.providers.generateText({
        provider: ctx.config.provider,
        model: ctx.config.model,
        system: "Write a 30-second video script: a hook, three beats, a call to action. Plain text.",
        prompt: input.topic,
      });
      ctx.logger.progress(0.8, "script drafted");
      const stored = await ctx.storage.putText("script.txt", answer.text, { kind: "script" });
      return { key: stored.key, script: answer.text };
    },
  },
});
