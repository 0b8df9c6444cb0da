"""Collector-paid mints through the HTTP API: the service renders, pins and signs an EIP-712 voucher;
the collector's own wallet sends mintWithVoucher (web3.py, its own key); the job follows the chain."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError

from chain.contract import decode_revert
from tests.support.polling import wait_for_job
from tests.support.stack import Stack
from tests.support.webhook_receiver import WebhookReceiver, assert_signed, register_endpoint


def _funded_collector(w3: Web3) -> LocalAccount:
    collector: LocalAccount = Account.create()
    w3.provider.make_request("anvil_setBalance", [collector.address, hex(10**18)])  # type: ignore[arg-type]
    return collector


def _send(w3: Web3, sender: LocalAccount, transaction: dict[str, str]) -> Any:
    """What a collector's wallet does with the voucher's transaction: estimate, sign, send, wait."""
    tx: dict[str, Any] = {
        "from": sender.address,
        "to": Web3.to_checksum_address(transaction["to"]),
        "data": transaction["data"],
        "value": int(transaction["value"], 16),
    }
    tx.update(
        gas=w3.eth.estimate_gas(tx),  # type: ignore[arg-type]
        nonce=w3.eth.get_transaction_count(sender.address),
        chainId=w3.eth.chain_id,
        maxFeePerGas=2 * w3.eth.gas_price,
        maxPriorityFeePerGas=1,
    )
    signed = sender.sign_transaction(tx)
    return w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))


def _revert_name(w3: Web3, sender: LocalAccount, transaction: dict[str, str]) -> str | None:
    call = {"from": sender.address, "to": Web3.to_checksum_address(transaction["to"]), "data": transaction["data"]}
    with pytest.raises(ContractLogicError) as refused:
        w3.eth.call(call)  # type: ignore[arg-type]
    return decode_revert(str(refused.value.data)).error_name


def test_a_collector_mints_with_its_voucher_and_the_job_confirms(stack: Stack) -> None:
    w3 = Web3(Web3.HTTPProvider(stack.anvil.url))
    collector = _funded_collector(w3)
    body = {"recipient": collector.address, "payer": "collector", "context": {"hours": 12}}
    tenant = "collector-shop"
    with WebhookReceiver() as receiver, stack.client(stack.new_key(tenant)) as client:
        secret = register_endpoint(stack.redis.url, tenant, receiver.url)
        accepted = client.post("/v1/mints", json=body, headers={"Idempotency-Key": "voucher-1"})
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        ready = wait_for_job(client, job_id, until=("voucher_ready", "confirmed", "failed", "expired"))
        assert ready["status"] == "voucher_ready", ready
        assert ready["payer"] == "collector"
        assert "waiting for the collector" in ready["detail"]
        voucher = ready["voucher"]
        assert voucher["recipient"] == collector.address
        assert voucher["request_id"] == ready["request_id"]
        assert voucher["contract"] == stack.contract_address
        assert voucher["chain_id"] == stack.chain_id
        assert voucher["price_wei"] == "0"
        assert time.time() < voucher["deadline"] <= time.time() + 3600
        # The voucher names the metadata the service pinned: tokenURI will be that CID, byte for byte.
        contract = w3.eth.contract(address=stack.contract_address, abi=_abi())
        assert contract.functions.tokenIdOf(ready["request_id"]).call() == 0  # the service sent nothing

        receipt = _send(w3, collector, voucher["transaction"])
        assert receipt["status"] == 1
        done = wait_for_job(client, job_id)
        assert done["status"] == "confirmed", done
        assert done["tx_hash"] == receipt["transactionHash"].to_0x_hex()
        token_id = done["token_id"]
        assert contract.functions.ownerOf(token_id).call() == collector.address
        assert contract.functions.tokenURI(token_id).call() == done["token_uri"] == ready["token_uri"]
        assert "voucher" not in done or done["voucher"]["signature"] == voucher["signature"]

        # The voucher mints once: sent again, the contract refuses it; asked again, the same job answers.
        assert _revert_name(w3, collector, voucher["transaction"]) == "RequestAlreadyMinted"
        again = client.post("/v1/mints", json=body, headers={"Idempotency-Key": "voucher-1"})
        assert again.json()["id"] == job_id
        assert again.json()["status"] == "confirmed"

        # Signed webhooks for the voucher (what to pass to the collector) and for the token.
        deliveries = receiver.wait_for(2)
    for delivery in deliveries:
        assert_signed(delivery, secret)
    payloads = sorted((json.loads(d.body) for d in deliveries), key=lambda p: p["type"] != "mint.voucher_ready")
    assert [p["type"] for p in payloads] == ["mint.voucher_ready", "mint.confirmed"]
    assert payloads[0]["data"]["mint"]["voucher"]["transaction"] == voucher["transaction"]
    assert payloads[1]["data"]["mint"]["token_id"] == token_id


def test_a_voucher_left_unused_expires_and_then_cannot_mint(stack: Stack) -> None:
    w3 = Web3(Web3.HTTPProvider(stack.anvil.url))
    collector = _funded_collector(w3)
    body = {"recipient": collector.address, "payer": "collector", "voucher_ttl_s": 2}
    with stack.client() as client:
        job_id = client.post("/v1/mints", json=body).json()["id"]
        ready = wait_for_job(client, job_id, until=("voucher_ready", "confirmed", "failed", "expired"))
        assert ready["status"] == "voucher_ready", ready
        deadline = ready["voucher"]["deadline"]
        time.sleep(max(0.0, deadline + 1.5 - time.time()))
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]  # a block past the deadline
        ended = wait_for_job(client, job_id, timeout_s=30)
        assert ended["status"] == "expired", ended
        assert ended["error"]["code"] == "voucher_expired"
        assert _revert_name(w3, collector, ready["voucher"]["transaction"]) == "VoucherExpired"


def test_bad_voucher_requests_get_clear_refusals(stack: Stack) -> None:
    recipient = Account.create().address
    with stack.client() as client:
        for body, code in (
            ({"recipient": recipient, "payer": "collector", "voucher_ttl_s": 3601}, "invalid_voucher_ttl"),
            ({"recipient": recipient, "voucher_ttl_s": 60}, "invalid_voucher_ttl"),
        ):
            refused = client.post("/v1/mints", json=body)
            assert refused.status_code == 400, refused.text
            assert refused.json()["code"] == code
        refused = client.post("/v1/mints", json={"recipient": recipient, "payer": "the-moon"})
        assert refused.status_code == 400, refused.text


def _abi() -> list[dict[str, Any]]:
    from chain.contracts.build import load_artifact

    abi: list[dict[str, Any]] = load_artifact()["abi"]
    return abi
