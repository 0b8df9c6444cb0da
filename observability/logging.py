"""Structured JSON logs: one object per line, with the request or job id, and secrets redacted."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

# What a secret looks like in this service: API keys, SIWE session tokens, webhook secrets, bearer
# credentials and 32-byte hex private keys. Addresses (20 bytes) and tx hashes are left alone; a tx
# hash has the length of a key, so only strings logged right after a key-ish word are hidden.
_SECRET_PATTERNS = (
    re.compile(r"\bpm_[A-Za-z0-9]+_[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\bpms_[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.=]{8,}"),
    re.compile(r"(?i)((?:private[_ ]?key|signer[_ ]?key|secret)[\"']?\s*[:=]\s*[\"']?)(?:0x)?[0-9a-fA-F]{64}"),
)
_REDACTED = "[redacted]"
_extra_secrets: list[str] = []


def add_secret(value: str | None) -> None:
    """Redact this exact string wherever it would be logged (the signer key, webhook secrets)."""
    if value and len(value) >= 8 and value not in _extra_secrets:
        _extra_secrets.append(value)
        if value.startswith("0x"):
            _extra_secrets.append(value[2:])


def redact(text: str) -> str:
    for secret in _extra_secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + _REDACTED, text)
        else:
            text = pattern.sub(_REDACTED, text)
    return text


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Tag every log line written inside with this job id (worker, minter, delivery loop)."""
    token = job_id_var.set(job_id)
    try:
        yield
    finally:
        job_id_var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the request/job id from context; redacted."""

    _RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (request_id := request_id_var.get()) is not None:
            entry["request_id"] = request_id
        if (job_id := job_id_var.get()) is not None:
            entry["job_id"] = job_id
        for key, value in record.__dict__.items():
            if key not in self._RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return redact(json.dumps(entry, default=str))


class _ExpectedRetries(logging.Filter):
    """Drops the traceback of an error the service expects and retries (a chain that does not answer):
    the line says what failed; a traceback per retry would bury everything else during an outage."""

    def __init__(self, types: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.types = types

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and isinstance(error, self.types):
            record.exc_info = None
            record.exc_text = None
            # SAQ's line names the job with the last attempt's error, its traceback included.
            record.msg, record.args = record.getMessage().partition(", error: Traceback")[0], ()
            record.retried = f"{type(error).__name__}: {str(error)[:300]}"
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_retries(logger_name: str, *types: type[BaseException]) -> None:
    """`logger_name`'s errors of these types are logged as one warning line, without the traceback."""
    logging.getLogger(logger_name).addFilter(_ExpectedRetries(types))


def configure(level: str | None = None) -> None:
    """Route every logger (uvicorn's and SAQ's included) through one JSON handler on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("PERSONAMINT_LOG_LEVEL", "INFO"))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # SAQ logs every job's kwargs at INFO; job ids are fine, but keep the noise down.
    logging.getLogger("saq").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("web3").setLevel(logging.WARNING)  # a line per provider call at INFO
