// Billing, AI providers and renders: the capabilities that cost money, each a thin typed
// wrapper over its WIT import. All are journaled by the host, so a replay never pays twice.

import * as billing from "vidfarm:template/billing@0.1.0";
import * as providers from "vidfarm:template/providers@0.1.0";
import * as remotion from "vidfarm:template/remotion@0.1.0";
import * as speech from "vidfarm:template/speech@0.1.0";
import type { Provider } from "vidfarm:template/types@0.1.0";
import { billingError, callImport, parseJson, providerError, renderError, TemplateError } from "./errors";

export type { Provider };
/** The WIT's event types (`ai-generation`), or the spec's spelling of them (`ai_generation`). */
export type EventType = billing.EventType | "ai_generation" | "storage_write" | "cpu_estimate";
export type TextResponse = providers.TextResponse;
export type LayoutResponse = providers.LayoutResponse;

/** A billable event the template records (the host adds its own for providers and renders). */
export type BillingEvent = BillingEventFields &
  (
    | {
        /** What it cost the platform; finite and >= 0. */
        costUsd: number;
        estimatedCostUsd?: number;
      }
    | {
        /** The spec's name for `costUsd` (give one of them; both only if they are equal). */
        estimatedCostUsd: number;
        costUsd?: number;
      }
  );

export interface BillingEventFields {
  type: EventType;
  /** What to charge the customer; never below cost × the customer's margin. */
  chargeUsd?: number;
  provider?: Provider;
  model?: string;
  metadata?: Record<string, unknown>;
}

const EVENT_TYPES: Record<string, billing.EventType> = {
  "ai-generation": "ai-generation",
  ai_generation: "ai-generation",
  render: "render",
  "storage-write": "storage-write",
  storage_write: "storage-write",
  "cpu-estimate": "cpu-estimate",
  cpu_estimate: "cpu-estimate",
  egress: "egress",
};

function invalidEvent(message: string): TemplateError {
  return new TemplateError("billing_invalid_event", message);
}

export class Billing {
  /** Record a billable event; a charge past the customer's limit ends the run. */
  async record(event: BillingEvent): Promise<void> {
    const eventType = Object.prototype.hasOwnProperty.call(EVENT_TYPES, event.type) ? EVENT_TYPES[event.type] : undefined;
    if (eventType === undefined) throw invalidEvent(`unknown billing event type \`${String(event.type)}\``);
    const { costUsd, estimatedCostUsd } = event;
    if (costUsd !== undefined && estimatedCostUsd !== undefined && costUsd !== estimatedCostUsd) {
      throw invalidEvent(`costUsd (${costUsd}) and estimatedCostUsd (${estimatedCostUsd}) differ; give one`);
    }
    const cost = costUsd ?? estimatedCostUsd;
    if (typeof cost !== "number") throw invalidEvent("a billing event needs `costUsd` (or `estimatedCostUsd`)");
    callImport(
      () =>
        billing.record({
          eventType,
          costUsd: cost,
          chargeUsd: event.chargeUsd,
          provider: event.provider,
          model: event.model,
          metadata: JSON.stringify(event.metadata ?? {}),
        }),
      billingError,
    );
  }
}

export interface TextRequest {
  provider: Provider;
  model: string;
  prompt: string;
  system?: string;
  temperature?: number;
  maxOutputTokens?: number;
}

export interface ImageRequest {
  provider: Provider;
  model: string;
  prompt: string;
  /** e.g. `1024x1024` */
  size?: string;
}

export interface ImageResponse {
  bytes: Uint8Array;
  contentType: string;
  revisedPrompt: string | null;
}

/** The providers that speak: `openai`, `gemini`, `elevenlabs`. */
export type VoiceProvider = speech.VoiceProvider;

export interface SpeechRequest {
  /** `openai`, `gemini` or `elevenlabs`. */
  provider: VoiceProvider | Provider;
  /** e.g. `gpt-4o-mini-tts`, `tts-1`, `gemini-2.5-flash-preview-tts`, `eleven_multilingual_v2`. */
  model: string;
  /** What is said: 1 to 4,096 characters (5,000 for ElevenLabs). */
  text: string;
  /** `alloy`, `nova`, … (OpenAI); `Kore`, `Puck`, … (Gemini); a voice id (ElevenLabs). */
  voice: string;
  /** Where the host stores the WAV, under the job's prefix (e.g. `narration/scene-01.wav`). */
  key: string;
  /** How to speak (tone, pace); models without the option ignore it; ElevenLabs refuses it. */
  instructions?: string;
  /** ElevenLabs only: `stability`, `similarity_boost`, `style` (0–1), `speed` (0.7–1.2), `use_speaker_boost`. */
  voiceSettings?: Record<string, number | boolean>;
  /** ElevenLabs only: the same seed and text give (nearly) the same audio. */
  seed?: number;
}

const VOICE_PROVIDERS: readonly string[] = ["openai", "gemini", "elevenlabs"];

/** The WIT answer as templates receive it (a number for the size, `null` for no URL). */
function spokenFrom(spoken: speech.SpeechResponse): SpeechResponse {
  return {
    key: spoken.key,
    url: spoken.url ?? null,
    size: Number(spoken.size),
    contentType: spoken.contentType,
    durationSeconds: spoken.durationSeconds,
  };
}

export interface NarrationRequest {
  /** `elevenlabs`. */
  provider: VoiceProvider;
  /** e.g. `eleven_multilingual_v2`, `eleven_flash_v2_5`. */
  model: string;
  /** What is read: 1 to 50,000 characters (about an hour). */
  text: string;
  /** An ElevenLabs voice id, e.g. `JBFqnCBsd6RMkjVDRZzb`. */
  voice: string;
  /** Where the host stores the WAV, under the job's prefix (e.g. `narration/chapter-01.wav`). */
  key: string;
  /** As in `SpeechRequest`. */
  voiceSettings?: Record<string, number | boolean>;
  seed?: number;
}

export interface SpeechResponse {
  key: string;
  /** A signed URL of the audio, when the store makes them. */
  url: string | null;
  size: number;
  contentType: string;
  /** The audio's length, counted from its samples. */
  durationSeconds: number;
}

export interface VideoRequest {
  /** `gemini` (Veo). */
  provider: Provider;
  /** e.g. `veo-3.1-generate-preview`, `veo-3.1-fast-generate-preview`. */
  model: string;
  /** What to show: 1 to 4,000 characters. */
  prompt: string;
  /** The clip's length: 4, 6 or 8 (Veo 3.1). */
  durationSeconds: number;
  /** `16:9` (default) or `9:16`. */
  aspectRatio?: string;
  /** What to keep out of the clip. */
  negativePrompt?: string;
  /** Where the clip is stored under the job's prefix (default `generations/<id>.mp4`). */
  outputKey?: string;
}

export interface VideoResponse {
  generationId: string;
  outputKey: string;
  /** A signed URL of the clip, when the store makes them. */
  outputUrl: string | null;
  /** `{provider, model, duration_seconds, width, height, fps, has_audio, size_bytes}`. */
  metadata: Record<string, unknown>;
}

export interface LayoutRequest {
  provider: Provider;
  model: string;
  imageUrl: string;
  overlayText: string;
}

/** AI providers through the customer's leased keys: rate-limited, billed and journaled by the host. */
export class Providers {
  async generateText(request: TextRequest): Promise<TextResponse> {
    return callImport(() => providers.generateText(request), providerError);
  }

  async generateImage(request: ImageRequest): Promise<ImageResponse> {
    const image = callImport(() => providers.generateImage(request), providerError);
    return { bytes: image.bytes, contentType: image.contentType, revisedPrompt: image.revisedPrompt ?? null };
  }

  async analyzeImageLayout(request: LayoutRequest): Promise<LayoutResponse> {
    return callImport(() => providers.analyzeImageLayout(request), providerError);
  }

  /** Text to speech: the host stores the audio (a WAV) at `key`; the answer says where and how long. */
  async generateSpeech(request: SpeechRequest): Promise<SpeechResponse> {
    const { voiceSettings, ...rest } = request;
    const spoken = VOICE_PROVIDERS.includes(request.provider)
      ? callImport(
          () =>
            speech.speak({
              ...rest,
              provider: request.provider as VoiceProvider,
              voiceSettings: voiceSettings === undefined ? undefined : JSON.stringify(voiceSettings),
            }),
          providerError,
        )
      : // Not a voice provider: the host says so (`provider_unsupported`).
        callImport(() => providers.generateSpeech({ ...rest, provider: request.provider as Provider }), providerError);
    return spokenFrom(spoken);
  }

  /**
   * A long text read aloud into one WAV (minutes): the job suspends while the host speaks it in
   * parts and joins them, and resumes with the stored audio. No part is spoken or paid twice.
   */
  async narrate(request: NarrationRequest): Promise<SpeechResponse> {
    const { voiceSettings, ...rest } = request;
    const spoken = callImport(
      () =>
        speech.narrate({
          ...rest,
          voiceSettings: voiceSettings === undefined ? undefined : JSON.stringify(voiceSettings),
        }),
      providerError,
    );
    return spokenFrom(spoken);
  }

  /**
   * A video clip the provider generates (minutes): the job suspends while the host submits,
   * polls and stores it, and resumes with the stored clip. Never submitted or paid twice.
   */
  async generateVideo(request: VideoRequest): Promise<VideoResponse> {
    const made = callImport(
      () =>
        providers.generateVideo({
          provider: request.provider,
          model: request.model,
          prompt: request.prompt,
          durationSeconds: request.durationSeconds,
          aspectRatio: request.aspectRatio ?? "16:9",
          negativePrompt: request.negativePrompt,
          outputKey: request.outputKey,
        }),
      providerError,
    );
    return {
      generationId: made.generationId,
      outputKey: made.outputKey,
      outputUrl: made.outputUrl ?? null,
      metadata: parseJson(made.metadata || "{}", "generation metadata") as Record<string, unknown>,
    };
  }
}

export interface RenderRequest {
  compositionId: string;
  serveUrl?: string;
  entryPoint?: string;
  /** Where the output goes, relative to the job's prefix (default `renders/<id>.mp4`). */
  outputKey?: string;
  inputProps?: Record<string, unknown>;
}

export interface RenderResult {
  renderId: string;
  outputKey: string;
  outputUrl: string | null;
  metadata: Record<string, unknown>;
}

/** Renders: the job suspends while one runs, and replays with the result when it ends. */
export class Remotion {
  /** Render a Remotion composition. */
  async render(request: RenderRequest): Promise<RenderResult> {
    const result = callImport(
      () =>
        remotion.render({
          compositionId: request.compositionId,
          serveUrl: request.serveUrl,
          entryPoint: request.entryPoint,
          outputKey: request.outputKey,
          inputProps: JSON.stringify(request.inputProps ?? {}),
        }),
      renderError,
    );
    return renderResult(result);
  }

  /** Render a JSON video spec (canvas, background tracks, audio tracks) with FFmpeg. */
  async renderSpec(spec: unknown, outputKey?: string): Promise<RenderResult> {
    return renderResult(callImport(() => remotion.renderSpec(JSON.stringify(spec), outputKey), renderError));
  }
}

function renderResult(result: remotion.RenderResult): RenderResult {
  return {
    renderId: result.renderId,
    outputKey: result.outputKey,
    outputUrl: result.outputUrl ?? null,
    metadata: parseJson(result.metadata || "{}", "render metadata"),
  };
}
