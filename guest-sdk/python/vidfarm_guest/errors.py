"""The error a workflow raises on purpose, and how every capability error becomes one.

The codes match the Rust SDK's (guest-sdk/src/error.rs) and the JavaScript SDK's, so clients
see the same ``storage_not_found`` whichever language a template is written in.
"""

import json
from typing import Any, Callable, TypeVar

from componentize_py_types import Err
from wit_world.imports import billing, jobs, providers, remotion, storage, types

T = TypeVar("T")


class TemplateError(Exception):
    """A workflow's own failure: the job fails with this ``code`` and ``message``."""

    def __init__(self, code: str, message: str, details: Any = None):
        super().__init__(f"{code}: {message}")
        #: snake_case and stable, so clients can branch on it.
        self.code = code
        self.message = message
        #: Optional machine-readable detail (any JSON value).
        self.details = details

    def to_wit(self) -> types.TemplateError:
        details = None if self.details is None else json.dumps(self.details)
        return types.TemplateError(code=self.code, message=self.message, details=details)

    @staticmethod
    def from_wit(error: types.TemplateError) -> "TemplateError":
        details: Any = error.details
        if details is not None:
            try:
                details = json.loads(details)
            except ValueError:
                pass
        return TemplateError(error.code, error.message, details)


def parse_json(text: str, what: str) -> Any:
    """JSON from the host or storage; text that is not JSON is the template's ``invalid_json``."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise TemplateError("invalid_json", f"{what} is not JSON: {e}") from None


# Each WIT error case (a generated class) and the stable code it becomes.
_CODES = {
    storage.StorageError_InvalidKey: "storage_invalid_key",
    storage.StorageError_NotFound: "storage_not_found",
    storage.StorageError_TooLarge: "storage_too_large",
    storage.StorageError_Unavailable: "storage_unavailable",
    billing.BillingError_Invalid: "billing_invalid_event",
    providers.ProviderError_NoValidKey: "no_valid_provider_key",
    providers.ProviderError_InvalidRequest: "provider_invalid_request",
    providers.ProviderError_Upstream: "provider_failed",
    providers.ProviderError_Unsupported: "provider_unsupported",
    remotion.RenderError_InvalidRequest: "render_invalid_request",
    remotion.RenderError_Failed: "render_failed",
    remotion.RenderError_Unavailable: "render_unavailable",
    jobs.JobsError_LimitReached: "child_limit_reached",
    jobs.JobsError_InvalidRequest: "child_invalid_request",
    jobs.JobsError_NotAChild: "not_a_child",
}


def _template_error(case: Any) -> TemplateError:
    code = _CODES.get(type(case), "capability_error")
    if isinstance(case, storage.StorageError_TooLarge):
        return TemplateError(code, f"object over the {case.value}-byte limit")
    return TemplateError(code, str(getattr(case, "value", case)))


def call_import(call: Callable[[], T]) -> T:
    """Call an import whose WIT result may be an error: componentize-py raises ``Err(case)``,
    which becomes a ``TemplateError`` with a stable code."""
    try:
        return call()
    except Err as e:
        raise _template_error(e.value) from None
