// `captioner-ts`: captions for videos.
//
// - `caption`: an untimed transcript and the clip's duration become timed cues (the model
//   first tidies the transcript), stored as .srt and .vtt.
// - `translate`: existing subtitles (any common format) are translated cue by cue, timing kept.
//
// The model only ever edits text; layout and timing are computed here, so they are the same on
// every replay of the job and never depend on what a model makes of timestamps.

import { defineTemplate, TemplateError, z, type Context } from "@vidfarm/guest";
import { layoutLines, maxCharsPerSecond, MAX_READABLE_CPS, timeCues, wrap, type Cue } from "./layout";
import { checkRefinement, numberedLines, readNumberedLines, REFINE_SYSTEM, translateSystem } from "./prompts";
import { FORMATS, read, render, type Format } from "./subtitles";

const config = z.object({
  provider: z.enum(["openai", "gemini", "openrouter", "perplexity"]).default("openai"),
  model: z.string().min(1).default("gpt-4o-mini"),
});
type Config = z.output<typeof config>;

const output = {
  formats: z.array(z.enum(["srt", "vtt"])).min(1).default(["srt", "vtt"]).describe("Which files to write."),
  name: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .optional()
    .describe("The files' name, without extension (stored under captions/)."),
  maxCharsPerLine: z.number().int().min(16).max(80).default(42),
};

const caption = z.object({
  transcript: z.string().min(1).max(100_000).describe("What is said, in order, without timing."),
  durationSeconds: z.number().positive().max(6 * 3600).describe("How long the speech lasts."),
  startSeconds: z.number().min(0).default(0).describe("When the speech starts in the video."),
  refine: z.boolean().default(true).describe("Let the model fix punctuation and casing and drop filler words first."),
  maxLines: z.number().int().min(1).max(3).default(2),
  ...output,
});

const translate = z
  .object({
    subtitles: z.string().min(1).max(500_000).optional().describe("Subtitles as text (srt, vtt, sbv, ssa, ...)."),
    workspaceKey: z.string().min(1).optional().describe("Or: a subtitle file in the customer's workspace."),
    language: z.string().min(2).max(40).describe("The language to translate into, e.g. `Spanish` or `pt-BR`."),
    ...output,
  })
  .refine((input) => (input.subtitles === undefined) !== (input.workspaceKey === undefined), {
    message: "give exactly one of `subtitles` and `workspaceKey`",
  });

/** Store the cues in each asked-for format under `captions/`; returns the keys. */
async function store(ctx: Context<Config>, cues: Cue[], name: string, formats: Format[]): Promise<string[]> {
  const keys: string[] = [];
  for (const format of formats) {
    const stored = await ctx.storage.putText(`captions/${name}.${format}`, render(cues, format), {
      contentType: FORMATS[format].contentType,
      kind: "captions",
      metadata: { cues: cues.length, format },
    });
    keys.push(stored.key);
  }
  return keys;
}

function readability(ctx: Context<Config>, cues: Cue[]): number {
  const cps = Math.round(maxCharsPerSecond(cues) * 10) / 10;
  if (cps > MAX_READABLE_CPS) {
    ctx.logger.warn("captions may be too fast to read", { maxCharsPerSecond: cps, limit: MAX_READABLE_CPS });
  }
  return cps;
}

export default defineTemplate({
  id: "captioner-ts",
  version: "0.1.0",
  description: "Timed SRT/VTT captions from a transcript, and caption translation, with the customer's AI provider.",
  configSchema: config,
  operations: {
    caption: {
      description: "Turn a transcript into timed captions (.srt and .vtt).",
      inputSchema: caption,
      providerHint: "openai",
      webhookSupport: true,
      estimatedCostUsd: 0.01,
    },
    translate: {
      description: "Translate existing subtitles, keeping their timing.",
      inputSchema: translate,
      providerHint: "openai",
      webhookSupport: true,
      estimatedCostUsd: 0.02,
    },
  },
  jobs: {
    async caption(ctx, input) {
      let transcript = input.transcript;
      let refined = false;
      if (input.refine) {
        const answer = await ctx.providers.generateText({
          provider: ctx.config.provider,
          model: ctx.config.model,
          system: REFINE_SYSTEM,
          prompt: input.transcript,
          temperature: 0,
        });
        const checked = checkRefinement(input.transcript, answer.text);
        if ("text" in checked) [transcript, refined] = [checked.text, true];
        else ctx.logger.warn("refinement not used; captioning the transcript as given", { reason: checked.rejected });
        ctx.logger.progress(0.5, "transcript refined");
      }
      const lines = layoutLines(transcript, { maxCharsPerLine: input.maxCharsPerLine, maxLines: input.maxLines });
      if (lines.length === 0) throw new TemplateError("empty_transcript", "the transcript has no words");
      const cues = timeCues(lines, input.startSeconds * 1000, input.durationSeconds * 1000);
      const keys = await store(ctx, cues, input.name ?? "captions", input.formats);
      ctx.logger.progress(1, "captions stored", { keys });
      return { keys, cues: cues.length, refined, maxCharsPerSecond: readability(ctx, cues) };
    },

    async translate(ctx, input) {
      const source = input.subtitles ?? (await ctx.storage.readWorkspaceText(input.workspaceKey as string));
      const original = read(source);
      const answer = await ctx.providers.generateText({
        provider: ctx.config.provider,
        model: ctx.config.model,
        system: translateSystem(input.language),
        prompt: numberedLines(original.map((cue) => cue.lines.join(" / "))),
        temperature: 0,
      });
      ctx.logger.progress(0.7, "subtitles translated", { cues: original.length });
      const texts = readNumberedLines(answer.text, original.length);
      const cues = original.map((cue, i) => ({
        ...cue,
        lines: wrap(texts[i].replace(/\s+\/\s+/g, " "), input.maxCharsPerLine),
      }));
      const name = input.name ?? `translated-${input.language.toLowerCase().replace(/[^a-z0-9-]+/g, "-")}`;
      const keys = await store(ctx, cues, name, input.formats);
      ctx.logger.progress(1, "translation stored", { keys });
      return { keys, cues: cues.length, language: input.language, maxCharsPerSecond: readability(ctx, cues) };
    },
  },
});
