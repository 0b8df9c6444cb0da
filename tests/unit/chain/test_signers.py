"""Signers: encrypted keystores, raw keys only locally, and a remote signer whose answers are checked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from chain.signers import (
    LocalSigner,
    RemoteSigner,
    RemoteSignerError,
    Signer,
    SignerConfigError,
    SignerError,
    load_keystore,
    load_signer,
    read_password_file,
)
from tests.support.pinning_servers import FakeServer, Recorded, Reply

KEY = "0x" + "42" * 32
ACCOUNT: LocalAccount = Account.from_key(KEY)
OTHER: LocalAccount = Account.from_key("0x" + "43" * 32)
TX: dict[str, Any] = {
    "to": "0x" + "11" * 20,
    "value": 0,
    "data": bytes.fromhex("deadbeef"),
    "nonce": 7,
    "chainId": 31337,
    "gas": 120_000,
    "maxFeePerGas": 30 * 10**9,
    "maxPriorityFeePerGas": 10**9,
}


def _keystore(tmp_path: Path, password: str = "correct horse", **kwargs: Any) -> Path:
    # A cheap scrypt cost keeps the test fast; real keystores use the default (2**18).
    keystore = Account.encrypt(ACCOUNT.key, password, kdf="scrypt", iterations=2**4)
    keystore.update(kwargs)
    path = tmp_path / "hot.json"
    path.write_text(json.dumps(keystore))
    return path


def test_keystore_round_trip(tmp_path: Path) -> None:
    signer = load_keystore(_keystore(tmp_path), password="correct horse")
    assert isinstance(signer, Signer)
    assert signer.address == ACCOUNT.address
    assert KEY[2:] not in repr(signer)
    assert ACCOUNT.address in repr(signer)


def test_a_wrong_password_names_the_file_and_nothing_secret(tmp_path: Path) -> None:
    path = _keystore(tmp_path)
    with pytest.raises(SignerConfigError, match="wrong password") as caught:
        load_keystore(path, password="battery staple")
    assert str(path) in str(caught.value)
    assert "battery" not in str(caught.value)
    assert KEY[2:] not in str(caught.value)
    assert caught.value.code == "signer_config"


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json", "not JSON"), ("[]", "not a V3 keystore"), ('{"version": 3}', "not a V3 keystore")],
)
def test_a_file_that_is_not_a_keystore_is_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(content)
    with pytest.raises(SignerConfigError, match=message):
        load_keystore(path, password="x")
    with pytest.raises(SignerConfigError, match="No such file"):
        load_keystore(tmp_path / "missing.json", password="x")


def test_a_keystore_whose_address_field_lies_is_refused(tmp_path: Path) -> None:
    path = _keystore(tmp_path, address=OTHER.address[2:].lower())
    with pytest.raises(SignerConfigError, match="declares address"):
        load_keystore(path, password="correct horse")


def test_password_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = tmp_path / "password"
    secret.write_text("correct horse\n")
    secret.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="personamint.signer"):
        assert read_password_file(secret) == "correct horse"
    assert caplog.records == []
    secret.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="personamint.signer"):
        read_password_file(secret)
    assert "group/others" in caplog.text
    secret.write_text("\n")
    with pytest.raises(SignerConfigError, match="empty"):
        read_password_file(secret)


def test_load_signer_from_a_keystore_with_a_password_file_or_env(tmp_path: Path) -> None:
    path = _keystore(tmp_path)
    secret = tmp_path / "password"
    secret.write_text("correct horse\n")
    secret.chmod(0o600)
    from_file = load_signer(env="production", keystore_path=path, password_file=secret)
    from_env = load_signer(env="production", keystore_path=path, password="correct horse")
    assert from_file.address == from_env.address == ACCOUNT.address
    with pytest.raises(SignerConfigError, match="not both"):
        load_signer(env="production", keystore_path=path, password="x", password_file=secret)
    with pytest.raises(SignerConfigError, match="needs a password"):
        load_signer(env="production", keystore_path=path)


def test_a_raw_key_only_in_local_mode() -> None:
    local = load_signer(env="local", raw_key=KEY)
    assert isinstance(local, LocalSigner)
    assert local.address == ACCOUNT.address
    with pytest.raises(SignerConfigError, match="refused outside local mode"):
        load_signer(env="production", raw_key=KEY)
    with pytest.raises(SignerConfigError, match="not a 32-byte"):
        load_signer(env="local", raw_key="0x1234")


def test_exactly_one_signer_source(tmp_path: Path) -> None:
    with pytest.raises(SignerConfigError, match="found: none"):
        load_signer(env="local")
    with pytest.raises(SignerConfigError, match="found: raw key, remote signer"):
        load_signer(env="local", raw_key=KEY, remote_url="http://127.0.0.1:1", remote_address=ACCOUNT.address)
    with pytest.raises(SignerConfigError, match="address it signs for"):
        load_signer(env="production", remote_url="http://127.0.0.1:1")


async def test_local_signer_signs_for_its_address() -> None:
    signer = load_signer(env="local", raw_key=KEY)
    raw = await signer.sign_transaction(TX)
    assert Account.recover_transaction(raw) == ACCOUNT.address


@dataclass
class FakeRemoteSigner(FakeServer):
    """Web3Signer's eth1 JSON-RPC over one key; `tamper` makes it misbehave."""

    account: LocalAccount = ACCOUNT
    tamper: str | None = None

    def handle(self, request: Recorded) -> Reply:
        if self.token is not None and request.headers.get("authorization") != self.token:
            return 401, {"Content-Type": "text/plain"}, b"unauthorized"
        call = json.loads(request.body)
        if call["method"] == "eth_accounts":
            return self._result(call, [self.account.address.lower()])
        if call["method"] == "eth_signTypedData":
            address, typed = call["params"]
            assert address.lower() == self.account.address.lower()
            signer = OTHER if self.tamper == "key" else self.account
            return self._result(call, signer.sign_typed_data(full_message=typed).signature.to_0x_hex())
        if call["method"] != "eth_signTransaction":
            return self._reply({"jsonrpc": "2.0", "id": call["id"], "error": {"code": -32601, "message": "nope"}})
        if self.tamper == "refuse":
            return self._reply({"jsonrpc": "2.0", "id": call["id"], "error": {"code": -32000, "message": "policy"}})
        (tx,) = call["params"]
        assert tx["from"].lower() == self.account.address.lower()
        signable: dict[str, Any] = {
            key: int(value, 16) for key, value in tx.items() if key not in ("from", "to", "data")
        }
        signable.update({"to": tx.get("to"), "data": tx["data"]})
        key = self.account
        if self.tamper == "recipient":
            signable["to"] = "0x" + "66" * 20
        elif self.tamper == "value":
            signable["value"] = 10**18
        elif self.tamper == "fee":
            signable["maxFeePerGas"] *= 10
        elif self.tamper == "key":
            key = OTHER
        raw = key.sign_transaction(signable).raw_transaction.to_0x_hex()
        if self.tamper == "garbage":
            raw = "0x01deadbeef"
        if self.tamper == "geth":
            return self._result(call, {"raw": raw, "tx": {}})
        return self._result(call, raw)

    def _result(self, call: dict[str, Any], result: Any) -> Reply:
        return self._reply({"jsonrpc": "2.0", "id": call["id"], "result": result})

    @staticmethod
    def _reply(body: dict[str, Any]) -> Reply:
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


@pytest.fixture
def remote() -> Iterator[FakeRemoteSigner]:
    with FakeRemoteSigner(token="Bearer signer-token") as server:
        yield server


def _client(remote: FakeRemoteSigner) -> RemoteSigner:
    signer = load_signer(
        env="production",
        remote_url=remote.url,
        remote_address=ACCOUNT.address,
        remote_headers={"Authorization": "Bearer signer-token"},
    )
    assert isinstance(signer, RemoteSigner)
    return signer


async def test_remote_signer_signs_what_was_asked(remote: FakeRemoteSigner) -> None:
    signer = _client(remote)
    await signer.check()
    raw = await signer.sign_transaction(TX)
    # Deterministic signatures: the same transaction signed locally gives the same bytes.
    assert raw == bytes(ACCOUNT.sign_transaction(TX).raw_transaction)
    legacy = {key: value for key, value in TX.items() if not key.startswith("max")} | {"gasPrice": 10**9}
    assert Account.recover_transaction(await signer.sign_transaction(legacy)) == ACCOUNT.address
    await signer.aclose()


async def test_a_geth_style_answer_is_accepted(remote: FakeRemoteSigner) -> None:
    remote.tamper = "geth"
    assert Account.recover_transaction(await _client(remote).sign_transaction(TX)) == ACCOUNT.address


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ("recipient", "recipient"),
        ("value", "changed value"),
        ("fee", "changed maxFeePerGas"),
        ("key", "signed as"),
        ("garbage", "undecodable"),
        ("refuse", "refused eth_signTransaction: policy"),
    ],
)
async def test_a_remote_signature_that_differs_from_the_request_is_refused(
    remote: FakeRemoteSigner, tamper: str, message: str
) -> None:
    remote.tamper = tamper
    with pytest.raises(RemoteSignerError, match=message) as caught:
        await _client(remote).sign_transaction(TX)
    assert caught.value.code == "remote_signer_error"


async def test_remote_signer_trouble(remote: FakeRemoteSigner) -> None:
    signer = _client(remote)
    remote.trouble.append(503)
    assert await signer.sign_transaction(TX)  # retried
    remote.account = OTHER
    with pytest.raises(RemoteSignerError, match="does not hold"):
        await signer.check()
    unauthorized = RemoteSigner(remote.url, address=ACCOUNT.address)
    with pytest.raises(RemoteSignerError, match="HTTP 401"):
        await unauthorized.check()
    url = remote.url
    remote.stop()
    with pytest.raises(RemoteSignerError, match="unreachable"):
        await RemoteSigner(url, address=ACCOUNT.address, retries=0).check()


async def test_an_unfinished_transaction_is_refused_before_any_request(remote: FakeRemoteSigner) -> None:
    with pytest.raises(SignerError, match="missing nonce"):
        await _client(remote).sign_transaction({key: v for key, v in TX.items() if key != "nonce"})
    with pytest.raises(SignerError, match="not the signer"):
        await _client(remote).sign_transaction(TX | {"from": OTHER.address})
    assert remote.requests == []


TYPED = {
    "types": {
        "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
        "Ping": [{"name": "digest", "type": "bytes32"}, {"name": "count", "type": "uint64"}],
    },
    "primaryType": "Ping",
    "domain": {"name": "PersonaMint", "chainId": 31337},
    "message": {"digest": "0x" + "ab" * 32, "count": 7},
}


async def test_both_signer_kinds_sign_eip712_typed_data_as_the_address(remote: FakeRemoteSigner) -> None:
    signable = encode_typed_data(full_message=TYPED)
    local = LocalSigner(remote.account, source="test")
    signer = _client(remote)
    for signature in (await local.sign_typed_data(TYPED), await signer.sign_typed_data(TYPED)):
        assert len(signature) == 65
        assert Account.recover_message(signable, signature=signature) == remote.account.address
    await signer.aclose()


async def test_a_typed_data_signature_by_another_key_is_refused(remote: FakeRemoteSigner) -> None:
    remote.tamper = "key"
    signer = _client(remote)
    with pytest.raises(RemoteSignerError, match="not by the signer's address"):
        await signer.sign_typed_data(TYPED)
    await signer.aclose()
