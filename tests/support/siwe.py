"""Sign a wallet in to a running service with Sign-In with Ethereum: a session token for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from api.siwe import SiweMessage


def siwe_text(client: httpx.Client, base_url: str, chain_id: int, address: str) -> str:
    """A sign-in message for `address` with a fresh nonce from the service, valid for ten minutes."""
    nonce = client.get("/v1/auth/nonce").json()["nonce"]
    now = datetime.now(UTC)
    return SiweMessage(
        domain=urlsplit(base_url).netloc,
        address=address,
        statement="Sign in to Persona Mint.",
        uri=f"{base_url}/login",
        version="1",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=now,
        expiration_time=now + timedelta(minutes=10),
    ).to_text()


def sign_in(base_url: str, chain_id: int, account: LocalAccount) -> str:
    """A fresh session token (`pms_…`) for `account` on the service at `base_url`."""
    with httpx.Client(base_url=base_url, timeout=30, trust_env=False) as client:
        text = siwe_text(client, base_url, chain_id, account.address)
        signature = Account.sign_message(encode_defunct(text=text), account.key).signature.to_0x_hex()
        response = client.post("/v1/auth/siwe", json={"message": text, "signature": signature})
        response.raise_for_status()
        token: str = response.json()["token"]
        return token
