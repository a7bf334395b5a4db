"""`summarizer-py`: summarise a long text with a model, map-reduce style, and store the summary.

The text (from the payload or the customer's workspace) is cut at sentence boundaries into
chunks a model reads comfortably (chunking.py, pysbd); each chunk is summarised, and when there
are several the partial summaries are summarised once more. Every model call goes through the
host's providers capability, so keys, rate limits, billing and replay are the host's business.
"""

from typing import List

from vidfarm_guest import Context, Template, TemplateError

from chunking import LANGUAGES, chunk

PROVIDERS = ["openai", "gemini", "openrouter", "perplexity"]

template = Template(
    "summarizer-py",
    "0.1.0",
    "Summarises long texts with the customer's AI provider and stores the summary.",
    config_schema={
        "type": "object",
        "properties": {
            "provider": {"type": "string", "enum": PROVIDERS, "default": "openai"},
            "model": {"type": "string", "minLength": 1, "default": "gpt-4o-mini"},
            "maxChunkChars": {"type": "integer", "minimum": 500, "maximum": 50000, "default": 6000},
        },
        "additionalProperties": False,
    },
)

SUMMARIZE_INPUT = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 500000, "description": "The text to summarise."},
        "workspaceKey": {
            "type": "string",
            "minLength": 1,
            "description": "Or: a UTF-8 text file in the customer's workspace to summarise.",
        },
        "style": {"type": "string", "enum": ["paragraph", "bullets"], "default": "paragraph"},
        "maxWords": {"type": "integer", "minimum": 20, "maximum": 1000, "default": 150},
        "language": {"type": "string", "enum": LANGUAGES, "default": "en", "description": "The text's language."},
        "key": {"type": "string", "minLength": 1, "default": "summary.md", "description": "Where to store it."},
    },
    "additionalProperties": False,
}

STYLES = {
    "paragraph": "Write one plain paragraph.",
    "bullets": "Write a Markdown list of short bullet points, most important first.",
}


def system_prompt(style: str, max_words: int, partial: bool) -> str:
    scope = "this part of a longer text" if partial else "the text"
    return (
        f"You summarise {scope} faithfully: keep names, numbers and conclusions; add nothing that is "
        f"not in it. {STYLES[style]} Use at most {max_words} words. Answer with the summary only."
    )


def load_text(ctx: Context, payload: dict) -> str:
    if "text" in payload and "workspaceKey" in payload:
        raise TemplateError("invalid_input", "give either `text` or `workspaceKey`, not both")
    if "text" in payload:
        return payload["text"]
    if "workspaceKey" in payload:
        try:
            return ctx.storage.read_workspace_text(payload["workspaceKey"])
        except UnicodeDecodeError:
            raise TemplateError("invalid_input", f"{payload['workspaceKey']} is not UTF-8 text") from None
    raise TemplateError("invalid_input", "give `text` or `workspaceKey`")


@template.operation(
    "summarize",
    "Summarise a text (or a workspace file) and store the summary as Markdown.",
    input_schema=SUMMARIZE_INPUT,
    provider_hint="openai",
    webhook_support=True,
    estimated_cost_usd=0.02,
)
def summarize(ctx: Context, payload: dict) -> dict:
    config = ctx.config
    text = load_text(ctx, payload)
    pieces = chunk(text, payload["language"], config["maxChunkChars"])
    if not pieces.chunks:
        raise TemplateError("empty_text", "the text has no sentences to summarise")
    ctx.logger.info("text chunked", {"characters": len(text), "sentences": pieces.sentences, "chunks": len(pieces.chunks)})

    usage = {"input": 0, "output": 0}

    def ask(prompt: str, partial: bool) -> str:
        answer = ctx.providers.generate_text(
            config["provider"],
            config["model"],
            prompt,
            system=system_prompt(payload["style"], payload["maxWords"], partial),
            temperature=0.2,
        )
        usage["input"] += answer.input_tokens
        usage["output"] += answer.output_tokens
        return answer.text.strip()

    steps = len(pieces.chunks) + (1 if len(pieces.chunks) > 1 else 0)
    partials: List[str] = []
    for i, piece in enumerate(pieces.chunks):
        partials.append(ask(piece, partial=len(pieces.chunks) > 1))
        ctx.logger.progress((i + 1) / steps, f"summarised chunk {i + 1} of {len(pieces.chunks)}")
    summary = partials[0] if len(partials) == 1 else ask("\n\n".join(partials), partial=False)
    ctx.logger.progress(1.0, "summary written")

    stored = ctx.storage.put_text(payload["key"], summary + "\n", "text/markdown; charset=utf-8", kind="summary")
    return {
        "summary": summary,
        "key": stored.key,
        "url": stored.url,
        "chunks": len(pieces.chunks),
        "sentences": pieces.sentences,
        "provider": config["provider"],
        "model": config["model"],
        "inputTokens": usage["input"],
        "outputTokens": usage["output"],
    }
