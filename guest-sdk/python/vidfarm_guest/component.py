"""The component's exports, made from a template module, and what an uncaught exception becomes.

``vidfarm_build.py`` generates the app module componentize-py wraps::

    import main
    from vidfarm_guest.component import world_for
    WitWorld = world_for(main)

Uncaught exceptions: left alone, componentize-py prints the traceback and then panics with the
fixed text "Python function threw an unexpected exception", which the host reports as
``guest_panic`` with that text as the message: the exception's own message is lost. So the SDK
catches it and, before trapping, (1) logs it through the logging import at ``error`` level
(message, type, traceback, workflow) and (2) writes the host's panic block to stderr, the shape
the host already parses for Rust panics (host/src/runtime/wasi.rs ``panic_message``)::

    vidfarm-guest (python) panicked at workflow `<name>`:
    Traceback (most recent call last):
      ...
    ValueError: <message>
    note: an uncaught exception in a Python workflow; the run traps next

The host takes the first such block, so the job fails with ``guest_panic`` and the traceback
as its message. See guest-sdk/NOTES-js-python.md for the exact host-side view.
"""

import json
import sys
import traceback
from types import ModuleType

import wit_world
from componentize_py_types import Err
from wit_world.imports import logging, types

from .errors import TemplateError
from .template import Template

_HINT = (
    "hint: only modules imported while the component was built exist at run time "
    "(the host gives the guest no files); import it at the top of the template's module"
)


class _Trap(Exception):
    """Raised out of ``run`` once the uncaught exception is reported: componentize-py then traps."""


def template_of(module: ModuleType) -> Template:
    """The one ``Template`` a module defines: its ``template`` attribute, or its only instance."""
    if isinstance(getattr(module, "template", None), Template):
        return module.template
    found = [value for value in vars(module).values() if isinstance(value, Template)]
    if len(found) != 1:
        raise RuntimeError(f"module `{module.__name__}` must define exactly one Template (found {len(found)})")
    return found[0]


def _traceback(error: BaseException) -> str:
    """The traceback from the template's first frame on (the SDK's dispatch frames are noise)."""
    frames = list(traceback.extract_tb(error.__traceback__))
    first = next((i for i, f in enumerate(frames) if "/vidfarm_guest/" not in f.filename), 0)
    own = frames[first:]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(own)]
    return "".join(lines + traceback.format_exception_only(type(error), error)).rstrip()


def report_uncaught(workflow: str, error: BaseException) -> None:
    """Log the exception as an error event and write the panic block to stderr."""
    text = _traceback(error)
    if isinstance(error, ModuleNotFoundError):
        text += "\n" + _HINT
    summary = f"{type(error).__name__}: {error}"
    try:
        metadata = {"workflow": workflow, "exception": type(error).__name__, "message": str(error), "traceback": text}
        logging.log(logging.Level.ERROR, f"uncaught exception in workflow `{workflow}`: {summary}", json.dumps(metadata))
    except Exception:
        pass  # the event cap may be reached; stderr below still carries the message
    sys.stderr.write(
        f"vidfarm-guest (python) panicked at workflow `{workflow}`:\n{text}\n"
        "note: an uncaught exception in a Python workflow; the run traps next\n"
    )
    sys.stderr.flush()


def world_for(module: ModuleType) -> type:
    """The ``WitWorld`` class componentize-py instantiates, serving ``module``'s template."""
    template = template_of(module)
    manifest = template.manifest()  # built at build time: a bad schema or id fails the build

    class WitWorld(wit_world.WitWorld):
        def describe(self) -> types.Manifest:
            return manifest

        def run(self, workflow: str, context: types.JobContext, input: str) -> str:
            try:
                return template.run(workflow, context, input)
            except TemplateError as e:
                raise Err(e.to_wit()) from None
            except Exception as e:
                report_uncaught(workflow, e)
                raise _Trap("vidfarm-guest: trapping after the uncaught exception reported above") from None

    return WitWorld
