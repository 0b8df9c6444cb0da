"""Secrets never reach a log line or a response: the signer key, API keys, session tokens, webhook secrets."""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import encode_defunct

from tests.support.siwe import siwe_text
from tests.support.stack import WEBHOOK_SECRET, WEBHOOK_SOURCE, Stack
from webhooks.signing import signature_headers


def test_no_secret_in_logs_or_responses(stack: Stack) -> None:
    signer_key = stack.env["PERSONAMINT_SIGNER_KEY"].removeprefix("0x")
    api_key = stack.new_key("tenant-secrets")
    revealed: list[str] = []

    with stack.client(api_key) as client:
        # Traffic that touches every credential, including ones sent where they do not belong.
        wallet = Account.create()
        revealed.append(client.post("/v1/mints", json={"recipient": wallet.address}).text)
        revealed.append(client.get(f"/v1/mints/{api_key}").text)  # a key where an id goes
        revealed.append(client.post("/v1/mints", json={"recipient": api_key}).text)
        revealed.append(client.post("/v1/mints", json={"recipient": wallet.address, "context": {"k": api_key}}).text)
        revealed.append(client.get("/ready").text)
        revealed.append(client.get("/metrics").text)
        revealed.append(client.get("/schema/openapi.json").text)
        text = siwe_text(client, stack.base_url, stack.chain_id, wallet.address)
        signature = Account.sign_message(encode_defunct(text=text), wallet.key).signature.to_0x_hex()
        session = client.post("/v1/auth/siwe", json={"message": text, "signature": signature}).json()["token"]
        body = b'{"id": "evt-secrets", "type": "achievement.unlocked", "data": {"wallet": "0x12"}}'
        revealed.append(
            client.post(
                f"/v1/webhooks/{WEBHOOK_SOURCE}", content=body, headers=signature_headers(WEBHOOK_SECRET, body)
            ).text
        )
    with stack.client(session) as client:
        revealed.append(client.get("/v1/mints/nope").text)
    with stack.client(api_key + "x") as client:
        revealed.append(client.get("/v1/mints/nope").text)

    secrets = {
        "signer key": signer_key,
        "api key": api_key,
        "api key body": api_key.split("_", 2)[2],
        "stack api key": stack.api_key,
        "session": session,
        "webhook secret": WEBHOOK_SECRET,
    }
    for name, secret in secrets.items():
        for response in revealed:
            assert secret not in response, f"{name} in a response"

    logs = {path.name: path.read_text(errors="replace") for path in stack.services.log_dir.glob("*.log")}
    assert logs, "no captured logs"
    for name, secret in secrets.items():
        for log_name, text in logs.items():
            assert secret not in text, f"{name} found in {log_name}"
