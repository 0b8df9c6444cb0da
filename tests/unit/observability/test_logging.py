"""Log lines: an expected, retried error is one warning line; anything else keeps its traceback."""

from __future__ import annotations

import io
import json
import logging

from observability.logging import JsonFormatter, quiet_retries


def test_an_expected_retry_is_one_warning_line_without_a_traceback() -> None:
    class Expected(Exception):
        pass

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.quiet_retries")
    logger.addHandler(handler)
    logger.propagate = False
    quiet_retries("test.quiet_retries", Expected)
    try:
        for error in (Expected("chain 31338 is down"), ValueError("a bug")):
            try:
                raise error
            except Exception:
                logger.exception("Error processing job %s", "Job<j1, error: Traceback (most recent call last): …>")
    finally:
        logger.removeHandler(handler)
    expected, bug = (json.loads(line) for line in stream.getvalue().splitlines())
    assert expected["level"] == "WARNING"
    assert "exception" not in expected
    assert expected["retried"] == "Expected: chain 31338 is down"
    assert expected["message"] == "Error processing job Job<j1"  # the last attempt's traceback cut off
    assert bug["level"] == "ERROR"
    assert "Traceback" in bug["exception"]
