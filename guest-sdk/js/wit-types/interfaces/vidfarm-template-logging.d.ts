/// <reference path="./vidfarm-template-types.d.ts" />
declare module 'vidfarm:template/logging@0.1.0' {
  /**
   * A structured job event. `metadata` is a JSON object (or empty).
   * Events are bounded per job: past the cap the run traps with `log_limit_exceeded`.
   */
  export function log(level: Level, message: string, metadata: Json): void;
  /**
   * Progress in [0, 1] with a message; shown on the job and streamed to clients.
   */
  export function progress(fraction: number, message: string, metadata: Json): void;
  export type Json = import('vidfarm:template/types@0.1.0').Json;
  /**
   * # Variants
   * 
   * ## `"debug"`
   * 
   * ## `"info"`
   * 
   * ## `"warn"`
   * 
   * ## `"error"`
   */
  export type Level = 'debug' | 'info' | 'warn' | 'error';
}
