"""JSON log lines carry the request/job id and never a secret, whatever a message or traceback holds."""

from __future__ import annotations

import json
import logging

from observability.logging import JsonFormatter, add_secret, job_context, redact, request_id_var

SIGNER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def render(message: str, *args: object, exc: BaseException | None = None) -> dict[str, object]:
    record = logging.LogRecord("personamint.test", logging.INFO, __file__, 1, message, args, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    line = JsonFormatter().format(record)
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_secrets_are_redacted_everywhere() -> None:
    add_secret(SIGNER_KEY)
    api_key = "pm_0123456789ab_" + "A" * 43
    session = "pms_" + "b" * 43
    for text in (
        f"key {api_key} used",
        f"session {session}",
        "Authorization: Bearer sometokenvalue123",
        f"signer {SIGNER_KEY}",
        f"signer {SIGNER_KEY[2:]}",
        "webhook secret whsec_abcdefghijkl",
        'private_key="' + "ab" * 32 + '"',
    ):
        redacted = redact(text)
        assert "[redacted]" in redacted, text
        for secret in (api_key, session, "sometokenvalue123", SIGNER_KEY[2:], "whsec_abcdefghijkl", "ab" * 32):
            assert secret not in redacted
    # Addresses and tx hashes are not secrets and stay readable.
    tx_hash = "0x" + "cd" * 32
    assert redact(f"sent {tx_hash} to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8") == (
        f"sent {tx_hash} to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    )


def test_json_lines_with_ids_and_redacted_tracebacks() -> None:
    token = request_id_var.set("req-1")
    try:
        with job_context("job-9"):
            try:
                raise ValueError(f"boom with {SIGNER_KEY}")
            except ValueError as exc:
                entry = render("failed for %s", "pm_0123456789ab_" + "Z" * 43, exc=exc)
    finally:
        request_id_var.reset(token)
    assert entry["request_id"] == "req-1"
    assert entry["job_id"] == "job-9"
    assert entry["level"] == "INFO"
    assert "ValueError" in str(entry["exception"])
    assert SIGNER_KEY[2:] not in json.dumps(entry)
    assert "Z" * 43 not in json.dumps(entry)
    assert "job_id" not in render("outside any job")
