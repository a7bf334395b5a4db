"""The context a workflow receives: the spec's ``TemplateJobContext``, one handle per capability."""

import json
from dataclasses import dataclass
from typing import Any, Dict, Optional

from wit_world.imports import logging, storage, types

from .capabilities import Billing, Jobs, Providers, Remotion
from .errors import call_import, parse_json

Metadata = Optional[Dict[str, Any]]


@dataclass(frozen=True)
class JobInfo:
    """Which job this run belongs to."""

    job_id: str
    template_id: str
    template_version: str
    #: The operation the job was created for.
    operation: str
    #: The workflow running now (an operation's, or one a parent asked for).
    workflow: str
    #: The parent job when this job was enqueued by ``ctx.jobs.enqueue_child``.
    parent_job_id: Optional[str]
    #: 1 for the first run; a retry or a resume replays from the start with a higher attempt.
    attempt: int


@dataclass(frozen=True)
class Customer:
    id: str
    name: str


class Logger:
    """Structured job events and progress. Events are capped per job; past the cap the run ends."""

    def debug(self, message: str, metadata: Metadata = None) -> None:
        logging.log(logging.Level.DEBUG, message, json.dumps(metadata or {}))

    def info(self, message: str, metadata: Metadata = None) -> None:
        logging.log(logging.Level.INFO, message, json.dumps(metadata or {}))

    def warn(self, message: str, metadata: Metadata = None) -> None:
        logging.log(logging.Level.WARN, message, json.dumps(metadata or {}))

    def error(self, message: str, metadata: Metadata = None) -> None:
        logging.log(logging.Level.ERROR, message, json.dumps(metadata or {}))

    def progress(self, fraction: float, message: str, metadata: Metadata = None) -> None:
        """``fraction`` in [0, 1]; shown on the job and streamed to clients."""
        logging.progress(float(fraction), message, json.dumps(metadata or {}))


@dataclass(frozen=True)
class StoredObject:
    #: The key relative to the job's artifact prefix.
    key: str
    #: A signed public URL when the backend can give one.
    url: Optional[str]
    size: int


class Storage:
    """Artifacts under the job's prefix, and the customer's workspace (read-only)."""

    def put_bytes(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        kind: Optional[str] = None,
        metadata: Metadata = None,
    ) -> StoredObject:
        """Write ``data`` under ``key`` (journaled: a replay does not write twice)."""
        options = storage.PutOptions(content_type=content_type, kind=kind, metadata=json.dumps(metadata or {}))
        stored = call_import(lambda: storage.put(key, bytes(data), options))
        return StoredObject(key=stored.key, url=stored.url, size=stored.size)

    def put_text(self, key: str, text: str, content_type: str = "text/plain; charset=utf-8", **options) -> StoredObject:
        return self.put_bytes(key, text.encode("utf-8"), content_type, **options)

    def put_json(self, key: str, value: Any, content_type: str = "application/json", **options) -> StoredObject:
        return self.put_bytes(key, json.dumps(value).encode("utf-8"), content_type, **options)

    def get(self, key: str) -> bytes:
        """Read back an artifact of this job."""
        return call_import(lambda: storage.get(key))

    def get_text(self, key: str) -> str:
        return self.get(key).decode("utf-8")

    def get_json(self, key: str) -> Any:
        return parse_json(self.get_text(key), f"artifact {key}")

    def read_workspace(self, key: str) -> bytes:
        """Read a file from the customer's workspace (read-only to templates)."""
        return call_import(lambda: storage.read_workspace(key))

    def read_workspace_text(self, key: str) -> str:
        return self.read_workspace(key).decode("utf-8")

    def public_url(self, key: str) -> Optional[str]:
        """A signed public URL of an artifact of this job, when the backend can give one."""
        return call_import(lambda: storage.public_url(key))


class Context:
    """Everything a workflow can know and do. Every effect goes to the host."""

    def __init__(self, job: types.JobContext, config: Dict[str, Any]):
        self.job = JobInfo(
            job_id=job.job_id,
            template_id=job.template_id,
            template_version=job.template_version,
            operation=job.operation,
            workflow=job.workflow,
            parent_job_id=job.parent_job_id,
            attempt=job.attempt,
        )
        #: ``"development"`` or ``"production"``: where keys come from and how strict the host is.
        self.env = "production" if job.env == types.Environment.PRODUCTION else "development"
        #: Who the job runs for.
        self.customer = Customer(id=job.customer.id, name=job.customer.name)
        #: The customer's template config, checked against ``config_schema`` (defaults applied).
        self.config = config
        self.logger = Logger()
        self.storage = Storage()
        self.billing = Billing()
        self.providers = Providers()
        self.remotion = Remotion()
        self.jobs = Jobs()
