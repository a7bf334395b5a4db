"""Write Vidfarm templates in Python: JSON-Schema operations, one context, one build script.

A complete template (``main.py`` in the template's directory)::

    from vidfarm_guest import Context, Template

    template = Template("hello-py", "1.0.0", "Greets people by name.")

    @template.operation(
        "greet",
        "Greet one person and store the greeting.",
        input_schema={
            "type": "object",
            "properties": {"name": {"type": "string", "minLength": 1}},
            "required": ["name"],
            "additionalProperties": False,
        },
    )
    def greet(ctx: Context, payload: dict) -> dict:
        greeting = f"Hello, {payload['name']}!"
        ctx.storage.put_text("greeting.txt", greeting)
        return {"greeting": greeting}

Build it with ``python guest-sdk/python/vidfarm_build.py <templateDir> <out.wasm>``.
The ``wit_world`` bindings this package imports are generated from wit/template.wit by
componentize-py while it builds the component.
"""

from .capabilities import ChildResult, TextResponse
from .context import Context, Customer, JobInfo, Logger, StoredObject
from .errors import TemplateError
from .template import Limits, Operation, Template

__all__ = [
    "ChildResult",
    "Context",
    "Customer",
    "JobInfo",
    "Limits",
    "Logger",
    "Operation",
    "StoredObject",
    "Template",
    "TemplateError",
    "TextResponse",
]
