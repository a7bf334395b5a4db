// What the template asks the model, and how it reads the answers back.
//
// The instructions go in `system` and the text alone in `prompt`, so a model (or the host's
// dev-echo provider, which repeats the prompt) answers with text, not with a chat about it.
// Answers are checked before they replace anything: a refinement that changes the transcript's
// length too much is refused, and a translation must give back every numbered cue.

import { TemplateError } from "@vidfarm/guest";

export const REFINE_SYSTEM =
  "You prepare transcripts for captions. Fix punctuation, capitalisation and obvious " +
  "transcription errors, and drop filler words (um, uh, you know). Keep every other word and " +
  "the order of what is said. Answer with the corrected transcript only, as plain text.";

/** A refinement may tidy the transcript, not rewrite it: its word count stays within this ratio. */
const MAX_WORD_CHANGE = 0.5;

function words(text: string): number {
  return text.split(/\s+/).filter((w) => w !== "").length;
}

/** The refined transcript, or why it cannot be used (the original is kept then). */
export function checkRefinement(original: string, refined: string): { text: string } | { rejected: string } {
  const before = words(original);
  const after = words(refined);
  if (after === 0) return { rejected: "the model answered with no text" };
  if (Math.abs(after - before) / before > MAX_WORD_CHANGE) {
    return { rejected: `the model changed the word count from ${before} to ${after}` };
  }
  return { text: refined.trim() };
}

export function translateSystem(language: string): string {
  return (
    `Translate each numbered subtitle line into ${language}. Keep the numbering exactly: one ` +
    'line per subtitle, each starting with its marker like "[[3]]". Keep translations short ' +
    "enough to read on screen. Answer with the numbered lines only."
  );
}

/** Cues' texts as numbered lines: `[[1]] first cue`, ... (line breaks inside a cue become ` / `). */
export function numberedLines(texts: string[]): string {
  return texts.map((text, i) => `[[${i + 1}]] ${text}`).join("\n");
}

/** The numbered lines of an answer, in order; every number from 1 to `count` must be there. */
export function readNumberedLines(answer: string, count: number): string[] {
  const found = new Map<number, string>();
  for (const match of answer.matchAll(/\[\[(\d+)\]\]\s*([^\n]*)/g)) {
    const n = Number(match[1]);
    if (n >= 1 && n <= count && !found.has(n)) found.set(n, match[2].trim());
  }
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((n) => !found.get(n));
  if (missing.length > 0) {
    throw new TemplateError(
      "translation_incomplete",
      `the model's answer lacks ${missing.length} of ${count} subtitles`,
      { missing: missing.slice(0, 50) },
    );
  }
  return Array.from({ length: count }, (_, i) => found.get(i + 1) as string);
}
