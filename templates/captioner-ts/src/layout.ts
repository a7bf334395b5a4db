// Cue layout and timing for an untimed transcript.
//
// Captions are read, not heard: a cue holds at most `maxLines` lines of at most
// `maxCharsPerLine` characters, a sentence end closes a cue once it is half full (so cues rarely
// straddle two sentences), and each cue is on screen for a share of the duration proportional to
// how much there is to read. The result is what a subtitler would do first by hand.

export interface LayoutOptions {
  maxCharsPerLine: number;
  maxLines: number;
}

/** One caption on screen. */
export interface Cue {
  startMs: number;
  endMs: number;
  lines: string[];
}

/** Above this many characters per second most viewers cannot finish reading a cue. */
export const MAX_READABLE_CPS = 20;
/** Each cue also costs a moment to notice it, whatever its length (characters' worth). */
const CUE_OVERHEAD_CHARS = 8;

function sentencesOf(text: string): string[][] {
  return text
    .replace(/\s+/g, " ")
    .trim()
    .split(/(?<=[.!?…]["')\]]?)\s+(?=\S)/u)
    .map((sentence) => sentence.split(" ").filter((word) => word !== ""))
    .filter((words) => words.length > 0);
}

/** The transcript cut into cues' lines (no timing yet). */
export function layoutLines(text: string, options: LayoutOptions): string[][] {
  const cues: string[][] = [];
  let cue: string[] = [];
  let line = "";
  const capacity = options.maxCharsPerLine * options.maxLines;
  const closeLine = () => {
    if (line !== "") cue.push(line);
    line = "";
    if (cue.length === options.maxLines) closeCue();
  };
  const closeCue = () => {
    if (line !== "") cue.push(line);
    if (cue.length > 0) cues.push(cue);
    cue = [];
    line = "";
  };
  for (const words of sentencesOf(text)) {
    for (const word of words) {
      if (line !== "" && line.length + 1 + word.length > options.maxCharsPerLine) closeLine();
      line = line === "" ? word : `${line} ${word}`;
    }
    const used = cue.reduce((sum, l) => sum + l.length, 0) + line.length;
    if (used >= capacity / 2) closeCue();
  }
  closeCue();
  return cues;
}

/** One cue's text as lines of at most `maxCharsPerLine` (a longer word keeps a line of its own). */
export function wrap(text: string, maxCharsPerLine: number): string[] {
  const lines: string[] = [];
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + 1 + word.length <= maxCharsPerLine) lines[last] += ` ${word}`;
    else lines.push(word);
  }
  return lines;
}

/** Spread the cues over [startMs, startMs + durationMs], each in proportion to its text. */
export function timeCues(lines: string[][], startMs: number, durationMs: number): Cue[] {
  const weights = lines.map((cue) => cue.join(" ").length + CUE_OVERHEAD_CHARS);
  const total = weights.reduce((sum, w) => sum + w, 0);
  let elapsed = 0;
  return lines.map((cue, i) => {
    const start = startMs + Math.round((elapsed / total) * durationMs);
    elapsed += weights[i];
    const end = startMs + Math.round((elapsed / total) * durationMs);
    return { startMs: start, endMs: end, lines: cue };
  });
}

/** The fastest cue's reading speed, in characters per second. */
export function maxCharsPerSecond(cues: Cue[]): number {
  return cues.reduce((max, cue) => {
    const seconds = Math.max(cue.endMs - cue.startMs, 1) / 1000;
    return Math.max(max, cue.lines.join(" ").length / seconds);
  }, 0);
}
