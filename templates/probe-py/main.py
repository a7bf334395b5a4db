"""`probe-py`: the Python twin of templates/sandbox-probe. Each operation attacks one limit of
the sandbox; the host must fail that job with a precise error and carry on unharmed."""

from vidfarm_guest import Context, Template, TemplateError

NOTHING = {"type": "object", "additionalProperties": False}

template = Template("probe-py", "0.1.0", "Attacks the sandbox from Python, one limit per operation (tests only).")


@template.operation("echo", "Return the payload.", input_schema={"type": "object"})
def echo(ctx: Context, payload: dict) -> dict:
    return payload


@template.operation("spin", "Loop forever.", input_schema=NOTHING)
def spin(ctx: Context, payload: dict) -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


@template.operation("hog-memory", "Allocate until refused.", input_schema=NOTHING, workflow="hog_memory")
def hog_memory(ctx: Context, payload: dict) -> None:
    ctx.logger.info("allocating until refused")
    hoard = []
    while True:
        hoard.append(bytearray(b"\x01" * (1 << 20)))


@template.operation(
    "throw",
    "Raise an exception the workflow does not catch.",
    input_schema={
        "type": "object",
        "properties": {"message": {"type": "string", "default": "the Python probe raised on purpose"}},
        "additionalProperties": False,
    },
)
def throw(ctx: Context, payload: dict) -> None:
    raise ValueError(payload["message"])


@template.operation("fail", "Fail with a TemplateError of the template's own.", input_schema=NOTHING)
def fail(ctx: Context, payload: dict) -> None:
    raise TemplateError("probe_failed", "the probe failed on purpose", {"on": "purpose"})
