// The platform spec's examples (seed 000, "Template Contract", "Template Execution Context",
// "Billing API for Templates"), verbatim but for the import, type-checked against this SDK by
// `npx tsc -p tsconfig.spec.json`. Not part of the package.

import { defineTemplate, z } from "@vidfarm/guest";
import type { CustomerContext, ProviderType, TemplateJobContext } from "@vidfarm/guest";

// "Template Contract", verbatim.
export const myTemplate = defineTemplate({
  id: "ugc-voiceover-v1",
  version: "1.0.0",
  description: "Short-form UGC voiceover pipeline",
  configSchema: z.object({
    defaultProvider: z.enum(["openai", "gemini", "openrouter", "perplexity"]).default("openai"),
  }),

  operations: {
    scaffold: {
      description: "Generate a script scaffold.",
      inputSchema: z.object({
        topic: z.string(),
      }),
      workflow: "scaffoldWorkflow",
      providerHint: "openai",
      webhookSupport: true,
    },
    render: {
      description: "Submit final render work.",
      inputSchema: z.object({
        storyboardId: z.string(),
      }),
      workflow: "renderWorkflow",
      webhookSupport: true,
    },
  },

  jobs: {
    async scaffoldWorkflow(ctx, input) {
      return {
        progress: 1,
        output: {},
      };
    },
    async renderWorkflow(ctx, input) {
      return {
        progress: 1,
        output: {},
      };
    },
  },
});

// "Template Execution Context": the spec's interface, verbatim.
interface SpecTemplateJobContext {
  env: "development" | "production";
  customer: CustomerContext;
  templateConfig: Record<string, unknown>;
  logger: {
    debug(message: string, metadata?: Record<string, unknown>): void;
    info(message: string, metadata?: Record<string, unknown>): void;
    warn(message: string, metadata?: Record<string, unknown>): void;
    error(message: string, metadata?: Record<string, unknown>): void;
    progress(progress: number, message: string, metadata?: Record<string, unknown>): void;
  };
  jobs: {
    enqueueChild(input: {
      operationName: string;
      workflowName: string;
      payload: Record<string, unknown>;
      providerHint?: ProviderType;
    }): Promise<{ jobId: string }>;
  };
  storage: {
    putJson(key: string, value: unknown): Promise<{ key: string; url: string | null }>;
    putText(key: string, value: string, contentType?: string): Promise<{ key: string; url: string | null }>;
    putBuffer(
      key: string,
      value: Uint8Array,
      options?: { contentType?: string; kind?: string; metadata?: Record<string, unknown> },
    ): Promise<{ key: string; url: string | null }>;
    getPublicUrl(key: string): string | null;
  };
  billing: {
    record(input: {
      type: "ai_generation" | "render" | "storage_write" | "cpu_estimate";
      costUsd: number;
      chargeUsd?: number;
      metadata?: Record<string, unknown>;
    }): Promise<void>;
  };
  providers: {
    generateText(input: {
      provider: ProviderType;
      model: string;
      prompt: string;
      temperature?: number;
    }): Promise<{ text: string }>;
    generateImage(input: {
      provider: ProviderType;
      model: string;
      prompt: string;
      size?: string;
    }): Promise<{ bytes: Uint8Array; contentType: string; revisedPrompt: string | null }>;
    analyzeImageLayout(input: {
      provider: ProviderType;
      model: string;
      imageUrl: string;
      overlayText: string;
    }): Promise<{
      zone: "top" | "center" | "bottom";
      align: "left" | "center" | "right";
      maxWidthPercent: number;
      justification: string;
    }>;
  };
  remotion: {
    render(input: {
      compositionId: string;
      serveUrl?: string;
      entryPoint?: string;
      outputKey?: string;
      inputProps: Record<string, unknown>;
    }): Promise<{ renderId: string; outputUrl: string | null; metadata: Record<string, unknown> }>;
  };
}

// The SDK's context is usable wherever the spec's is expected ...
export function asSpecContext(ctx: TemplateJobContext): SpecTemplateJobContext {
  return ctx;
}

// ... and every spec call compiles with the spec's argument shapes.
export async function specCalls(ctx: TemplateJobContext<{ defaultProvider: ProviderType }>): Promise<string> {
  const provider: ProviderType = ctx.templateConfig.defaultProvider;
  ctx.logger.info("starting", { provider });
  ctx.logger.progress(0.1, "scaffolding", { step: 1 });
  await ctx.storage.putJson("plan.json", { provider });
  await ctx.storage.putText("script.srt", "1\n00:00:00,000 --> 00:00:01,000\nHi\n", "application/x-subrip");
  const image = await ctx.storage.putBuffer("frame.png", new Uint8Array([137, 80, 78, 71]), {
    contentType: "image/png",
    kind: "image",
    metadata: { width: 1 },
  });
  const url: string | null = ctx.storage.getPublicUrl(image.key);
  const { jobId } = await ctx.jobs.enqueueChild({
    operationName: "render",
    workflowName: "renderWorkflow",
    payload: { storyboardId: "sb_1" },
    providerHint: "openai",
  });
  // "Billing API for Templates", verbatim.
  await ctx.billing.record({
    type: "ai_generation",
    provider: "openai",
    model: "gpt-4.1",
    estimatedCostUsd: 0.024,
    metadata: {},
  });
  await ctx.billing.record({ type: "render", costUsd: 0.01, chargeUsd: 0.02 });
  return `${jobId} ${url ?? ""}`;
}
