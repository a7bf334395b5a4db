"""``Template``: the template's operations, their JSON Schemas and the workflows behind them.

The decorator API mirrors the JavaScript SDK's ``defineTemplate``: an operation is what the
template sells (name, description, input schema, options) and names the workflow that runs it;
a workflow registered without an operation is reachable by child jobs only.
"""

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

from wit_world.imports import types

from .capabilities import provider_enum
from .context import Context
from .errors import TemplateError
from .schema import Schema, violations, with_defaults

#: A workflow: ``(ctx, payload) -> output``; the output (any JSON value) is the job's output.
Workflow = Callable[[Context, Any], Any]

_ID = re.compile(r"^[a-z0-9-]{1,64}$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


@dataclass
class Limits:
    """Limits an operation may ask for; the host caps them at its own maxima."""

    fuel: Optional[int] = None
    memory_mib: Optional[int] = None
    timeout_ms: Optional[int] = None
    max_children: Optional[int] = None
    max_retries: Optional[int] = None


@dataclass
class Operation:
    name: str
    description: str
    input_schema: Schema
    workflow: str
    provider_hint: Optional[str] = None
    webhook_support: bool = False
    estimated_cost_usd: Optional[float] = None
    limits: Limits = field(default_factory=Limits)


class Template:
    """A template: what ``describe`` reports and which workflow each name runs."""

    def __init__(self, id: str, version: str, description: str, config_schema: Optional[Schema] = None):
        if not _ID.match(id):
            raise ValueError(f"template id `{id}` is not [a-z0-9-]{{1,64}}")
        if not _SEMVER.match(version):
            raise ValueError(f"template version `{version}` is not semver")
        self.id = id
        self.version = version
        self.description = description
        #: JSON Schema of the per-customer config (``{}`` accepts any object).
        self.config_schema: Schema = config_schema or {"type": "object"}
        self.operations: Dict[str, Operation] = {}
        self.workflows: Dict[str, Workflow] = {}

    def operation(
        self,
        name: str,
        description: str,
        input_schema: Schema,
        workflow: Optional[str] = None,
        provider_hint: Optional[str] = None,
        webhook_support: bool = False,
        estimated_cost_usd: Optional[float] = None,
        limits: Optional[Limits] = None,
    ) -> Callable[[Workflow], Workflow]:
        """Decorate a workflow to sell it as operation ``name`` (its workflow name defaults to ``name``)."""
        if provider_hint is not None:
            provider_enum(provider_hint)  # an unknown provider fails here, at build time

        def register(run: Workflow) -> Workflow:
            op = Operation(
                name=name,
                description=description,
                input_schema=input_schema,
                workflow=workflow or name,
                provider_hint=provider_hint,
                webhook_support=webhook_support,
                estimated_cost_usd=estimated_cost_usd,
                limits=limits or Limits(),
            )
            self.operations[name] = op
            self.workflows[op.workflow] = run
            return run

        return register

    def workflow(self, name: str) -> Callable[[Workflow], Workflow]:
        """Decorate a workflow that is no operation of its own (reachable by child jobs by name)."""

        def register(run: Workflow) -> Workflow:
            self.workflows[name] = run
            return run

        return register

    def manifest(self) -> types.Manifest:
        return types.Manifest(
            id=self.id,
            version=self.version,
            description=self.description,
            config_schema=json.dumps(self.config_schema, separators=(",", ":")),
            operations=[_wit_operation(op) for op in self.operations.values()],
        )

    def run(self, workflow: str, job: types.JobContext, payload: str) -> str:
        """Run one workflow; a ``TemplateError`` propagates, anything else is the caller's to report."""
        run = self.workflows.get(workflow)
        if run is None:
            raise TemplateError("unknown_workflow", f"this template has no workflow `{workflow}`")
        config = _checked(self.config_schema, job.config, "invalid_config", "the template config")
        op = self.operations.get(job.operation)
        schema: Schema = op.input_schema if op is not None and op.workflow == workflow else {}
        value = _checked(schema, payload, "invalid_input", "the payload")
        output = run(Context(job, config), value)
        return json.dumps(output)


def _checked(schema: Schema, text: str, code: str, what: str) -> Any:
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise TemplateError(code, f"{what} is not JSON: {e}") from None
    value = with_defaults(schema, value)
    problems = violations(schema, value)
    if problems:
        raise TemplateError(code, f"{what} does not match its schema: {'; '.join(problems)}", {"violations": problems})
    return value


def _wit_operation(op: Operation) -> types.Operation:
    return types.Operation(
        name=op.name,
        description=op.description,
        input_schema=json.dumps(op.input_schema, separators=(",", ":")),
        workflow=op.workflow,
        provider_hint=None if op.provider_hint is None else provider_enum(op.provider_hint),
        webhook_support=op.webhook_support,
        estimated_cost_usd=op.estimated_cost_usd,
        limits=types.Limits(
            fuel=op.limits.fuel,
            memory_mib=op.limits.memory_mib,
            timeout_ms=op.limits.timeout_ms,
            max_children=op.limits.max_children,
            max_retries=op.limits.max_retries,
        ),
    )
