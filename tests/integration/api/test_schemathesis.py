"""Property-based API fuzzing against the live OpenAPI schema: no 5xx, every 4xx a problem document.

Schemathesis generates valid and invalid requests for every operation the running service
documents; each response is checked here, and afterwards the API processes' captured logs must
hold no unhandled exception (an error mapped to a 4xx would still show up there).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from eth_account import Account
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.support.stack import Stack

EXAMPLES_PER_MODE = 80
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}
# The bare answer uvicorn gives when its parser (h11 or httptools) refuses a request head.
PARSER_REFUSAL = "Invalid HTTP request received."


def _header(response: Any, name: str) -> str:
    value = response.headers.get(name) or response.headers.get(name.title()) or ""
    return str(value[0] if isinstance(value, list) and value else value)


def check_response(case: Any, response: Any, problems: list[str]) -> None:
    label = f"{case.method} {case.formatted_path}"
    status = response.status_code
    if status >= 500:
        problems.append(f"{label}: {status} {response.text[:200]}")
        return
    if 400 <= status < 500:
        content_type = _header(response, "content-type")
        if status == 400 and response.text == PARSER_REFUSAL:
            return  # uvicorn's HTTP parser refused the bytes (a generated header): no route or hook saw it
        if not content_type.startswith("application/problem+json"):
            problems.append(f"{label}: {status} is not a problem document ({content_type})")
            return
        try:
            body = response.json()
        except ValueError:
            problems.append(f"{label}: {status} problem body is not JSON")
            return
        missing = PROBLEM_FIELDS - set(body)
        if missing or body.get("status") != status:
            problems.append(f"{label}: {status} problem document lacks {sorted(missing)} or has the wrong status")


# Random strings are almost never a valid address and an existing collection: most generated mint
# requests get this wallet and the default collection instead, so the accept path (202, replays,
# 409s and, past the burst of 2, the per-recipient 429) is fuzzed too.
VALID_RECIPIENT = Account.create().address


def test_fuzz_every_operation(stack: Stack) -> None:
    # Its own API process (same Redis, same worker) with a tight per-recipient limit, so the few
    # mints that get through stay few.
    base_url = stack.spawn_api(
        "api-fuzz", {"PERSONAMINT_RECIPIENT_RATE_PER_MIN": "1", "PERSONAMINT_RECIPIENT_BURST": "1"}
    )
    schema = schemathesis.openapi.from_url(f"{base_url}/schema/openapi.json")
    api_key = stack.new_key("tenant-fuzz", rate_per_min=10_000_000, burst=1_000_000)
    auth = {"Authorization": f"Bearer {api_key}"}
    session = requests.Session()
    session.trust_env = False
    statuses: Counter[int] = Counter()
    problems: list[str] = []
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12, [op.label for op in operations]

    def fuzz(operation: Any, mode: GenerationMode) -> None:
        substitute = mode is GenerationMode.POSITIVE and operation.label == "POST /v1/mints"

        @settings(
            max_examples=EXAMPLES_PER_MODE,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=operation.as_strategy(generation_mode=mode),
            with_auth=st.sampled_from([True, True, True, False]),
            valid=st.sampled_from([False, True, True]),
        )
        def run(case: Any, with_auth: bool, valid: bool) -> None:
            if substitute and valid and isinstance(case.body, dict):
                case.body["recipient"] = VALID_RECIPIENT
                case.body["collection"] = "default"
            # Mostly authenticated; otherwise whatever Authorization the generator made (or none).
            own_auth = case.headers is not None and "Authorization" in case.headers
            headers = dict(auth) if with_auth or not own_auth else {}
            try:
                response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
            except (requests.exceptions.InvalidHeader, ValueError, UnicodeError):
                return  # the client library refused to send it; nothing reached the service
            statuses[response.status_code] += 1
            check_response(case, response, problems)

        # Unsatisfiable: e.g. no invalid request exists for an operation without inputs.
        with contextlib.suppress(Unsatisfiable):
            run()

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode)

    total = sum(statuses.values())
    seconds = time.monotonic() - started
    print(f"schemathesis: {total} requests in {seconds:.1f}s; statuses {dict(sorted(statuses.items()))}")
    assert not problems, "\n".join(problems[:20])
    assert total >= 1000, statuses
    assert not any(status >= 500 for status in statuses)
    assert statuses[202] > 0  # some mints were accepted
    assert statuses[429] > 0  # ...and the per-recipient limit refused some

    unhandled = []
    for log_file in stack.services.log_dir.glob("api*.log"):
        for line in log_file.read_text(errors="replace").splitlines():
            if "Traceback" in line or "unhandled error" in line or '"level": "ERROR"' in line:
                unhandled.append(f"{log_file.name}: {line[:300]}")
            elif line.startswith("{"):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if "exception" in entry:
                    unhandled.append(f"{log_file.name}: {entry['exception'][-300:]}")
    assert not unhandled, "\n".join(unhandled[:10])


@pytest.mark.parametrize("path", ["/v1/mints", "/v1/previews"])
def test_wrong_methods_and_types_are_problems(stack: Stack, path: str) -> None:
    with stack.client() as client:
        response = client.put(path, json={})
        assert response.status_code == 405
        assert response.headers["content-type"].startswith("application/problem+json")
        response = client.post(path, content=b"recipient=0x1", headers={"content-type": "text/plain"})
        assert 400 <= response.status_code < 500
        assert response.headers["content-type"].startswith("application/problem+json")
    with stack.client() as client:
        response = client.get("/no/such/path")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
