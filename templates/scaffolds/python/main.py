"""__TEMPLATE_NAME__: a Vidfarm template in Python (made by `vidfarm template new`).

One operation to start from: a model drafts a short video script, which is stored. The SDK's
README (guest-sdk/python/README.md) lists everything the context can do. Import every module
you need at the top of the file: only modules imported at build time exist at run time.
"""

from vidfarm_guest import Context, Template

PROVIDERS = ["openai", "gemini", "openrouter", "perplexity"]

template = Template(
    "__TEMPLATE_NAME__",
    "0.1.0",
    "Drafts short video scripts with the customer's AI provider.",
    config_schema={
        "type": "object",
        "properties": {
            "provider": {"type": "string", "enum": PROVIDERS, "default": "openai"},
            "model": {"type": "string", "minLength": 1, "default": "gpt-4o-mini"},
        },
        "additionalProperties": False,
    },
)


@template.operation(
    "draft",
    "Draft a 30-second video script about a topic and store it.",
    input_schema={
        "type": "object",
        "properties": {
            "topic": {"type": "string", "minLength": 1, "maxLength": 500, "description": "What the video is about."}
        },
        "required": ["topic"],
        "additionalProperties": False,
    },
    provider_hint="openai",
    webhook_support=True,
)
def draft(ctx: Context, payload: dict) -> dict:
    ctx.logger.info("drafting a script", {"topic": payload["topic"]})
    answer = ctx.providers.generate_text(
        ctx.config["provider"],
        ctx.config["model"],
        payload["topic"],
        system="Write a 30-second video script: a hook, three beats, a call to action. Plain text.",
    )
    ctx.logger.progress(0.8, "script drafted")
    stored = ctx.storage.put_text("script.txt", answer.text, kind="script")
    return {"key": stored.key, "script": answer.text}
