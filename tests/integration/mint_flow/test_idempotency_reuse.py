"""An Idempotency-Key used again after its 24 h record expired never reports another request's token."""

from __future__ import annotations

import asyncio

import redis as redis_sync
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from chain.contract import PersonaMint
from jobs.keys import mint_idempotency_key
from tests.support.polling import wait_for_job
from tests.support.stack import Stack


async def owner_of(stack: Stack, token_id: int) -> str:
    w3 = AsyncWeb3(AsyncHTTPProvider(stack.anvil.url))
    try:
        return await PersonaMint(w3, stack.contract_address).owner_of(token_id)
    finally:
        await w3.provider.disconnect()


def test_a_key_reused_after_its_record_expired_never_claims_the_first_token(stack: Stack) -> None:
    tenant, key = "tenant-reuse", "order-1"
    api_key = stack.new_key(tenant)
    first_recipient, second_recipient = Account.create().address, Account.create().address
    expire = redis_sync.Redis.from_url(stack.redis.url)

    def mint(recipient: str) -> dict[str, object]:
        accepted = client.post("/v1/mints", json={"recipient": recipient}, headers={"Idempotency-Key": key})
        assert accepted.status_code == 202, accepted.text
        assert accepted.headers.get("idempotent-replayed") is None
        return wait_for_job(client, accepted.json()["id"])

    try:
        with stack.client(api_key) as client:
            first = mint(first_recipient)
            assert first["status"] == "confirmed", first

            # The 24 h record runs out; the same key now comes with another recipient.
            assert expire.delete(mint_idempotency_key(tenant, key)) == 1
            second = mint(second_recipient)
            # Its own request id (the id covers the body) and so its own token, minted to it.
            assert second["request_id"] != first["request_id"]
            assert second["status"] == "confirmed", second
            assert second["token_id"] != first["token_id"]
            assert asyncio.run(owner_of(stack, int(second["token_id"]))) == second_recipient  # type: ignore[call-overload]

            # The first body again after expiry: the same request id, whose token is the first job's
            # (another edition's art): refused with a code, never "confirmed" with that token.
            assert expire.delete(mint_idempotency_key(tenant, key)) == 1
            third = mint(first_recipient)
            assert third["request_id"] == first["request_id"]
            assert third["status"] == "failed", third
            assert third["error"]["code"] == "request_id_reused"  # type: ignore[index]
            assert third.get("token_id") is None
    finally:
        expire.close()
