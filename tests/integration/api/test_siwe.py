"""Sign-In with Ethereum against the live service: the happy path and every refusal the issue names."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import urlsplit

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from api.siwe import MAX_SIGNATURE_BYTES, SiweMessage
from tests.support.stack import Stack


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.json()


def signed(account: LocalAccount, text: str) -> str:
    return Account.sign_message(encode_defunct(text=text), account.key).signature.to_0x_hex()


def siwe_text(stack: Stack, account: LocalAccount, nonce: str, **changes: object) -> str:
    now = datetime.now(UTC)
    fields: dict[str, object] = {
        "domain": urlsplit(stack.base_url).netloc,
        "address": account.address,
        "statement": "Sign in to Persona Mint.",
        "uri": f"{stack.base_url}/login",
        "version": "1",
        "chain_id": stack.chain_id,
        "nonce": nonce,
        "issued_at": now,
        "expiration_time": now + timedelta(minutes=10),
    }
    fields.update(changes)
    return SiweMessage(**fields).to_text()  # type: ignore[arg-type]


@pytest.fixture
def anonymous(stack: Stack) -> httpx.Client:
    return stack.client(api_key="")


def nonce(client: httpx.Client) -> str:
    response = client.get("/v1/auth/nonce")
    assert response.status_code == 200
    value: str = response.json()["nonce"]
    return value


def test_sign_in_then_mint_only_to_yourself(stack: Stack, anonymous: httpx.Client) -> None:
    wallet = Account.create()
    issued = anonymous.get("/v1/auth/nonce").json()
    assert issued["domain"] == urlsplit(stack.base_url).netloc
    assert issued["chain_id"] == stack.chain_id
    text = siwe_text(stack, wallet, issued["nonce"])
    session = anonymous.post("/v1/auth/siwe", json={"message": text, "signature": signed(wallet, text)})
    assert session.status_code == 201, session.text
    body = session.json()
    assert body["address"] == wallet.address
    assert body["token"].startswith("pms_")

    with stack.client(body["token"]) as client:
        someone_else = Account.create().address
        assert_problem(client.post("/v1/mints", json={"recipient": someone_else}), 403, "recipient_not_allowed")
        mine = client.post("/v1/mints", json={"recipient": wallet.address.lower()})
        assert mine.status_code == 202, mine.text
        status = client.get(mine.json()["links"]["self"])
        assert status.status_code == 200
        assert status.json()["recipient"] == wallet.address
    # The job belongs to the wallet, not to an API-key tenant.
    with stack.client() as client:
        assert client.get(mine.json()["links"]["self"]).status_code == 404


def test_reused_nonce_is_refused(stack: Stack, anonymous: httpx.Client) -> None:
    wallet = Account.create()
    text = siwe_text(stack, wallet, nonce(anonymous))
    request = {"message": text, "signature": signed(wallet, text)}
    assert anonymous.post("/v1/auth/siwe", json=request).status_code == 201
    assert_problem(anonymous.post("/v1/auth/siwe", json=request), 401, "siwe_nonce_invalid")
    # Also with an Idempotency-Key: a sign-in is never replayed.
    assert_problem(
        anonymous.post("/v1/auth/siwe", json=request, headers={"Idempotency-Key": "k1"}), 401, "siwe_nonce_invalid"
    )


def test_unknown_nonce_is_refused(stack: Stack, anonymous: httpx.Client) -> None:
    wallet = Account.create()
    text = siwe_text(stack, wallet, "neverissued0123")
    response = anonymous.post("/v1/auth/siwe", json={"message": text, "signature": signed(wallet, text)})
    assert_problem(response, 401, "siwe_nonce_invalid")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"domain": "evil.example"}, "siwe_domain_mismatch"),
        ({"uri": "https://evil.example/login"}, "siwe_uri_mismatch"),
        ({"chain_id": 1}, "siwe_chain_mismatch"),
        ({"expiration_time": datetime.now(UTC) - timedelta(hours=1)}, "siwe_expired"),
        ({"issued_at": datetime.now(UTC) + timedelta(hours=1)}, "siwe_not_yet_valid"),
        ({"not_before": datetime.now(UTC) + timedelta(hours=1)}, "siwe_not_yet_valid"),
    ],
)
def test_refusals_do_not_spend_the_nonce(
    stack: Stack, anonymous: httpx.Client, changes: dict[str, object], code: str
) -> None:
    wallet = Account.create()
    fresh = nonce(anonymous)
    bad = siwe_text(stack, wallet, fresh, **changes)
    assert_problem(anonymous.post("/v1/auth/siwe", json={"message": bad, "signature": signed(wallet, bad)}), 401, code)
    good = siwe_text(stack, wallet, fresh)
    assert anonymous.post("/v1/auth/siwe", json={"message": good, "signature": signed(wallet, good)}).status_code == 201


def test_signature_by_another_key_is_refused(stack: Stack, anonymous: httpx.Client) -> None:
    wallet, impostor = Account.create(), Account.create()
    text = siwe_text(stack, wallet, nonce(anonymous))
    response = anonymous.post("/v1/auth/siwe", json={"message": text, "signature": signed(impostor, text)})
    assert_problem(response, 401, "siwe_bad_signature")
    tampered = text.replace("Sign in to Persona Mint.", "Sign in to Persona Mint!")
    response = anonymous.post("/v1/auth/siwe", json={"message": tampered, "signature": signed(wallet, text)})
    assert_problem(response, 401, "siwe_bad_signature")


def test_malformed_message_and_bad_session(stack: Stack, anonymous: httpx.Client) -> None:
    response = anonymous.post("/v1/auth/siwe", json={"message": "hello", "signature": "0x00"})
    assert_problem(response, 400, "invalid_siwe_message")
    with stack.client("pms_" + "x" * 43) as client:
        assert_problem(client.get("/v1/mints/abc"), 401, "invalid_session")


def _deploy_smart_wallet(rpc_url: str, owner: str) -> str:
    """DemoSmartWallet (EIP-1271: its owner key signs for it), deployed from a fresh funded account."""
    from eth_abi import encode as abi_encode
    from eth_utils.address import to_checksum_address

    from chain.contracts.build import load_samples_artifact
    from tests.support.log_emitter import Chain

    deployer = Account.create().address
    init_code = load_samples_artifact()["contracts"]["DemoSmartWallet"]["bytecode"]
    chain = Chain(rpc_url)
    try:
        chain.call("anvil_setBalance", deployer, hex(10**18))
        chain.call("anvil_impersonateAccount", deployer)
        data = init_code + abi_encode(["address"], [owner]).hex()
        receipt = chain.receipt(chain.call("eth_sendTransaction", {"from": deployer, "data": data, "gas": hex(10**6)}))
    finally:
        chain.close()
    assert receipt["status"] == "0x1", receipt
    return to_checksum_address(receipt["contractAddress"])


def test_contract_wallet_signs_in_through_eip1271(stack: Stack, anonymous: httpx.Client) -> None:
    owner, stranger = Account.create(), Account.create()
    wallet_address = _deploy_smart_wallet(stack.anvil.url, owner.address)
    wallet = SimpleNamespace(address=wallet_address)

    # The owner's key signs for the contract: no key recovers to the wallet's address itself.
    text = siwe_text(stack, wallet, nonce(anonymous))  # type: ignore[arg-type]
    session = anonymous.post("/v1/auth/siwe", json={"message": text, "signature": signed(owner, text)})
    assert session.status_code == 201, session.text
    assert session.json()["address"] == wallet_address
    with stack.client(session.json()["token"]) as client:
        mine = client.post("/v1/mints", json={"recipient": wallet_address})
        assert mine.status_code == 202, mine.text
        assert_problem(client.post("/v1/mints", json={"recipient": owner.address}), 403, "recipient_not_allowed")

    # The contract refuses any other key, and a signature over another text.
    fresh = nonce(anonymous)
    text = siwe_text(stack, wallet, fresh)  # type: ignore[arg-type]
    response = anonymous.post("/v1/auth/siwe", json={"message": text, "signature": signed(stranger, text)})
    assert_problem(response, 401, "siwe_bad_signature")
    other = siwe_text(stack, wallet, nonce(anonymous), statement="Something else.")  # type: ignore[arg-type]
    response = anonymous.post("/v1/auth/siwe", json={"message": text, "signature": signed(owner, other)})
    assert_problem(response, 401, "siwe_bad_signature")
    # Refusals did not spend the nonce: the right signature still signs in once.
    assert anonymous.post("/v1/auth/siwe", json={"message": text, "signature": signed(owner, text)}).status_code == 201

    # An EOA address (no code) gets no second chance with someone else's signature.
    eoa = Account.create()
    text = siwe_text(stack, eoa, nonce(anonymous))
    assert_problem(
        anonymous.post("/v1/auth/siwe", json={"message": text, "signature": signed(owner, text)}),
        401,
        "siwe_bad_signature",
    )
    # Oversized or non-hex signatures are refused before any chain call.
    text = siwe_text(stack, wallet, nonce(anonymous))  # type: ignore[arg-type]
    for bad in ("0xzz", "0x123", "0x" + "ab" * 4097):
        response = anonymous.post("/v1/auth/siwe", json={"message": text, "signature": bad})
        if len(bad) > 2 + 2 * MAX_SIGNATURE_BYTES:  # the request schema's bound, before any handler runs
            assert_problem(response, 400, "invalid_request")
        else:
            assert_problem(response, 401, "siwe_bad_signature")


def test_a_nonce_allows_five_failed_verifications_then_it_is_spent(stack: Stack, anonymous: httpx.Client) -> None:
    wallet, impostor = Account.create(), Account.create()
    text = siwe_text(stack, wallet, nonce(anonymous))
    bad = {"message": text, "signature": signed(impostor, text)}
    for _ in range(5):
        assert_problem(anonymous.post("/v1/auth/siwe", json=bad), 401, "siwe_bad_signature")
    assert_problem(anonymous.post("/v1/auth/siwe", json=bad), 429, "siwe_nonce_exhausted")
    # Spent: not even the right signature signs in with it now.
    good = {"message": text, "signature": signed(wallet, text)}
    assert_problem(anonymous.post("/v1/auth/siwe", json=good), 429, "siwe_nonce_exhausted")


def test_contract_wallet_checks_spend_the_nonce_s_tries(stack: Stack, anonymous: httpx.Client) -> None:
    owner, stranger = Account.create(), Account.create()
    wallet = SimpleNamespace(address=_deploy_smart_wallet(stack.anvil.url, owner.address))
    text = siwe_text(stack, wallet, nonce(anonymous))  # type: ignore[arg-type]
    bad = {"message": text, "signature": signed(stranger, text)}
    for _ in range(5):  # each one asks the chain (eth_getCode + eth_call), and is charged for it
        assert_problem(anonymous.post("/v1/auth/siwe", json=bad), 401, "siwe_bad_signature")
    assert_problem(anonymous.post("/v1/auth/siwe", json=bad), 429, "siwe_nonce_exhausted")


def test_the_nonce_endpoint_is_rate_limited_per_client_address(stack: Stack) -> None:
    # A second API behind a "proxy" (the tests' loopback peer is trusted), 3 nonces per address then 1/min.
    base = stack.spawn_api(
        "api-nonce-limit",
        {
            "PERSONAMINT_SIWE_NONCE_RATE_PER_MIN": "1",
            "PERSONAMINT_SIWE_NONCE_BURST": "3",
            "PERSONAMINT_TRUSTED_PROXIES": '["127.0.0.1/32"]',
        },
    )
    client_ip = f"203.0.113.{secrets.randbelow(250) + 1}"
    with httpx.Client(base_url=base, timeout=30, headers={"X-Forwarded-For": f"198.51.100.9, {client_ip}"}) as client:
        assert [client.get("/v1/auth/nonce").status_code for _ in range(3)] == [200, 200, 200]
        refused = client.get("/v1/auth/nonce")
        assert_problem(refused, 429, "rate_limited")
        assert int(refused.headers["retry-after"]) >= 1
        # Another client address has its own budget.
        assert client.get("/v1/auth/nonce", headers={"X-Forwarded-For": "198.51.100.77"}).status_code == 200
