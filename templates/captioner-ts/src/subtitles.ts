// SubRip (.srt) and WebVTT (.vtt) text, written and read with subsrt-ts (pure JavaScript, no
// dependencies), so timestamps, numbering and escaping follow each format's rules.

import { build, detect, parse } from "subsrt-ts";
import type { ContentCaption } from "subsrt-ts/dist/types/handler.js";
import { TemplateError } from "@vidfarm/guest";
import type { Cue } from "./layout";

export type Format = "srt" | "vtt";

/** What each format is stored as. SRT uses CRLF, as most players and editors expect. */
export const FORMATS: Record<Format, { contentType: string; eol: string }> = {
  srt: { contentType: "application/x-subrip; charset=utf-8", eol: "\r\n" },
  vtt: { contentType: "text/vtt; charset=utf-8", eol: "\n" },
};

export function render(cues: Cue[], format: Format): string {
  const { eol } = FORMATS[format];
  const captions: ContentCaption[] = cues.map((cue, i) => {
    const text = cue.lines.join(eol);
    return {
      type: "caption",
      index: i + 1,
      start: cue.startMs,
      end: cue.endMs,
      duration: cue.endMs - cue.startMs,
      content: text,
      text,
    };
  });
  return build(captions, { format, eol });
}

/** Timed cues from subtitles in any format subsrt-ts knows (srt, vtt, sbv, ssa/ass, sub, smi, lrc). */
export function read(content: string): Cue[] {
  let format: string;
  try {
    format = detect(content);
  } catch {
    format = "";
  }
  if (!format) {
    throw new TemplateError("invalid_subtitles", "the subtitles are in no format this template can read", {
      readable: ["srt", "vtt", "sbv", "ssa", "ass", "sub", "smi", "lrc"],
    });
  }
  const cues = parse(content, { format })
    .filter((caption): caption is ContentCaption => caption.type === "caption")
    .map((caption) => ({
      startMs: caption.start,
      endMs: caption.end,
      lines: caption.text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== ""),
    }))
    .filter((cue) => cue.lines.length > 0);
  if (cues.length === 0) throw new TemplateError("invalid_subtitles", `the ${format} subtitles have no cues`);
  return cues;
}
