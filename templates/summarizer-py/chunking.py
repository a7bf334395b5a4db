"""Cut a long text into model-sized chunks at sentence boundaries.

A summary of a chunk cut mid-sentence misreads that sentence, so chunks end where sentences
end: pysbd (rule-based, pure Python) finds them, including around abbreviations, decimals and
quotes, where splitting on ". " goes wrong.
"""

from dataclasses import dataclass
from typing import List

import pysbd
from pysbd.languages import LANGUAGE_CODES

#: The languages the segmenter knows (ISO 639-1 codes).
LANGUAGES = sorted(LANGUAGE_CODES)


@dataclass
class Chunks:
    sentences: int
    chunks: List[str]


def sentences(text: str, language: str) -> List[str]:
    segmenter = pysbd.Segmenter(language=language, clean=False)
    return [s.strip() for s in segmenter.segment(text) if s.strip()]


def chunk(text: str, language: str, max_chars: int) -> Chunks:
    """Consecutive sentences grouped into chunks of at most ``max_chars`` characters (a single
    longer sentence becomes a chunk of its own rather than being cut)."""
    found = sentences(text, language)
    chunks: List[str] = []
    current: List[str] = []
    size = 0
    for sentence in found:
        if current and size + 1 + len(sentence) > max_chars:
            chunks.append(" ".join(current))
            current, size = [], 0
        current.append(sentence)
        size += len(sentence) + (1 if size else 0)
    if current:
        chunks.append(" ".join(current))
    return Chunks(sentences=len(found), chunks=chunks)
