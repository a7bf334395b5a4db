/// <reference path="./vidfarm-template-providers.d.ts" />
/// <reference path="./vidfarm-template-types.d.ts" />
declare module 'vidfarm:template/speech@0.1.0' {
  /**
   * Journaled like every provider call: a replay returns the stored audio and pays nothing.
   */
  export function speak(request: SpeakRequest): SpeechResponse;
  export function narrate(request: NarrationRequest): SpeechResponse;
  export type Json = import('vidfarm:template/types@0.1.0').Json;
  export type ProviderError = import('vidfarm:template/providers@0.1.0').ProviderError;
  export type SpeechResponse = import('vidfarm:template/providers@0.1.0').SpeechResponse;
  /**
   * The providers that speak.
   * # Variants
   * 
   * ## `"openai"`
   * 
   * ## `"gemini"`
   * 
   * ## `"elevenlabs"`
   */
  export type VoiceProvider = 'openai' | 'gemini' | 'elevenlabs';
  export interface SpeakRequest {
    provider: VoiceProvider,
    /**
     * e.g. `gpt-4o-mini-tts`, `gemini-2.5-flash-preview-tts`, `eleven_multilingual_v2`,
     * `eleven_flash_v2_5`
     */
    model: string,
    /**
     * What is said: 1 to 4,096 characters (OpenAI, Gemini) or 5,000 (ElevenLabs).
     */
    text: string,
    /**
     * A voice name (`alloy`, `Kore`, …) or an ElevenLabs voice id (`JBFqnCBsd6RMkjVDRZzb`).
     */
    voice: string,
    /**
     * Where the audio is stored under the job's prefix, e.g. `narration/scene-01.wav`.
     */
    key: string,
    /**
     * How to speak (OpenAI's `gpt-4o-mini-tts`, Gemini); ElevenLabs refuses it.
     */
    instructions?: string,
    /**
     * ElevenLabs' `voice_settings` as a JSON object: `stability`, `similarity_boost` and
     * `style` (0–1), `speed` (0.7–1.2), `use_speaker_boost` (bool). Others refuse it.
     */
    voiceSettings?: Json,
    /**
     * ElevenLabs: the same seed and text give (nearly) the same audio.
     */
    seed?: number,
  }
  /**
   * A long text read aloud: a long-running generation. The host holds its price, speaks it
   * in parts of at most 2,000 characters cut at sentence ends (each request naming the ones
   * before it, so the voice carries on), stores each part as it is spoken and joins them
   * into one WAV at `key`, while the job waits suspended without an instance. A host that
   * stops between parts goes on from the next part; one that stops during a request fails
   * the narration rather than speak (and pay for) that part again.
   */
  export interface NarrationRequest {
    /**
     * `elevenlabs`.
     */
    provider: VoiceProvider,
    /**
     * e.g. `eleven_multilingual_v2`, `eleven_flash_v2_5`
     */
    model: string,
    /**
     * What is read: 1 to 50,000 characters (about an hour).
     */
    text: string,
    /**
     * An ElevenLabs voice id, e.g. `JBFqnCBsd6RMkjVDRZzb`.
     */
    voice: string,
    /**
     * Where the WAV is stored under the job's prefix, e.g. `narration/chapter-01.wav`.
     */
    key: string,
    /**
     * As in `speak-request`.
     */
    voiceSettings?: Json,
    seed?: number,
  }
}
