"""PersonaMint v2 on a real anvil: CIDs round-trip byte for byte, a request id mints once by either
path, vouchers are checked, ERC-4906 updates need METADATA_ROLE, and the gas goals hold."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.abi import function_signature_to_4byte_selector
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.logs import DISCARD

from chain.contracts.build import load_artifact
from chain.dev_accounts import dev_account
from devstack.anvil import AnvilProcess
from ipfs.cid import cid_for_bytes, parse_cid

RAW, DAG_PB = 0x55, 0x70
GAS_GOAL_BATCH = 90_000  # per token, batch of 100 fresh recipients, base cost and calldata included


@dataclass
class Chain:
    w3: Web3
    contract: Contract
    admin: str
    minter: Any  # LocalAccount: the service signer (MINTER, METADATA and VOUCHER_SIGNER roles)
    url: str


def _deploy(w3: Web3, admin: str, minter: str, max_supply: int = 0) -> Contract:
    artifact = load_artifact()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor("Test", "TEST", admin, minter, "", "0x" + "00" * 20, 0, max_supply).transact(
        {"from": admin}
    )
    address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
    return w3.eth.contract(address=address, abi=artifact["abi"])


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilProcess]:
    with AnvilProcess() as anvil:
        yield anvil


@pytest.fixture
def chain(node: AnvilProcess) -> Chain:
    w3 = Web3(Web3.HTTPProvider(node.url))
    admin, minter = dev_account(0), dev_account(1)
    return Chain(w3, _deploy(w3, admin.address, minter.address), admin.address, minter, node.url)


def _cid(size: int) -> tuple[str, bytes, int]:
    cid = cid_for_bytes(os.urandom(size))
    parsed = parse_cid(cid)
    return cid, parsed.digest, parsed.codec


def _selector(signature: str) -> str:
    return "0x" + function_signature_to_4byte_selector(signature).hex()


def _reverts_with(call: Any, signature: str) -> None:
    with pytest.raises((ContractCustomError, ContractLogicError)) as caught:
        call()
    data = getattr(caught.value, "data", None) or str(caught.value)
    assert _selector(signature) in str(data), (signature, data)


def _send(chain: Chain, fn: Any, sender: str | None = None, value: int = 0) -> Any:
    tx = fn.transact({"from": sender or chain.minter.address, "value": value})
    return chain.w3.eth.wait_for_transaction_receipt(tx)


def _voucher(chain: Chain, signer: Any = None, **overrides: Any) -> tuple[tuple[Any, ...], bytes, dict[str, Any]]:
    _, digest, codec = _cid(100)
    message = {
        "recipient": Account.create().address,
        "requestId": os.urandom(32),
        "digest": digest,
        "codec": codec,
        "price": 0,
        "deadline": int(time.time()) + 3600,
    }
    domain = {
        "name": "PersonaMint",
        "version": "2",
        "chainId": chain.w3.eth.chain_id,
        "verifyingContract": chain.contract.address,
    }
    domain.update(overrides.pop("domain", {}))
    message.update(overrides)
    types = {
        "MintVoucher": [
            {"name": "recipient", "type": "address"},
            {"name": "requestId", "type": "bytes32"},
            {"name": "digest", "type": "bytes32"},
            {"name": "codec", "type": "uint8"},
            {"name": "price", "type": "uint256"},
            {"name": "deadline", "type": "uint64"},
        ]
    }
    signable = encode_typed_data(domain_data=domain, message_types=types, message_data=message)
    signature = (signer or chain.minter).sign_message(signable).signature
    fields = tuple(message[k] for k in ("recipient", "requestId", "digest", "codec", "price", "deadline"))
    return fields, bytes(signature), message


def test_token_uri_is_the_pinned_cid_byte_for_byte_raw_leaf_and_dag_pb(chain: Chain) -> None:
    cids = [_cid(300), _cid(2_000_000), _cid(1), _cid(300_000)]  # raw, dag-pb, raw, dag-pb
    assert {codec for _, _, codec in cids} == {RAW, DAG_PB}
    mints = [(Account.create().address, os.urandom(32), digest, codec) for _, digest, codec in cids[:3]]
    _send(chain, chain.contract.functions.mintBatch(mints))
    _, digest, codec = cids[3]
    _send(chain, chain.contract.functions.mint(Account.create().address, os.urandom(32), digest, codec))
    for token_id, (cid, _, _) in enumerate(cids, start=1):  # sequential ids across both paths
        assert chain.contract.functions.tokenURI(token_id).call() == f"ipfs://{cid}"
    assert chain.contract.functions.totalMinted().call() == 4
    for index, (to, request_id, _, _) in enumerate(mints, start=1):
        assert chain.contract.functions.ownerOf(index).call() == to
        assert chain.contract.functions.tokenIdOf(request_id).call() == index
        assert chain.contract.functions.balanceOf(to).call() == 1
    _reverts_with(lambda: chain.contract.functions.tokenURI(99).call(), "TokenDoesNotExist()")
    _reverts_with(
        lambda: chain.contract.functions.mint(Account.create().address, os.urandom(32), digest, 0x71).call(
            {"from": chain.minter.address}
        ),
        "InvalidCodec(uint8)",
    )


def test_a_request_id_mints_once_by_either_path(chain: Chain) -> None:
    c = chain.contract.functions
    to, request_id = Account.create().address, os.urandom(32)
    _, digest, codec = _cid(10)
    _send(chain, c.mint(to, request_id, digest, codec))
    _reverts_with(
        lambda: c.mint(to, request_id, digest, codec).call({"from": chain.minter.address}),
        "RequestAlreadyMinted(bytes32,uint256)",
    )
    # Service mint, then a voucher for that request id.
    fields, signature, _ = _voucher(chain, requestId=request_id)
    _reverts_with(lambda: c.mintWithVoucher(fields, signature).call(), "RequestAlreadyMinted(bytes32,uint256)")
    # A voucher, then the service mint; then a second voucher for it.
    fields, signature, message = _voucher(chain)
    _send(chain, c.mintWithVoucher(fields, signature), sender=chain.admin)
    _reverts_with(
        lambda: c.mint(to, message["requestId"], digest, codec).call({"from": chain.minter.address}),
        "RequestAlreadyMinted(bytes32,uint256)",
    )
    again, again_signature, _ = _voucher(chain, requestId=message["requestId"])
    _reverts_with(lambda: c.mintWithVoucher(again, again_signature).call(), "RequestAlreadyMinted(bytes32,uint256)")
    # In a batch, a used request id is skipped (MintSkipped), the others mint.
    fresh = (Account.create().address, os.urandom(32), digest, codec)
    receipt = _send(chain, c.mintBatch([(to, request_id, digest, codec), fresh, fresh]))
    assert len(chain.contract.events.MintSkipped().process_receipt(receipt, errors=DISCARD)) == 2
    assert [e["args"]["tokenId"] for e in chain.contract.events.Minted().process_receipt(receipt, errors=DISCARD)] == [
        3
    ]
    assert c.totalMinted().call() == 3


def test_bad_vouchers_revert_with_their_errors(chain: Chain) -> None:
    c = chain.contract.functions
    fields, signature, _ = _voucher(chain, deadline=int(time.time()) - 10)
    _reverts_with(lambda: c.mintWithVoucher(fields, signature).call(), "VoucherExpired(uint64)")
    fields, signature, _ = _voucher(chain)
    tampered = (Account.create().address, *fields[1:])
    _reverts_with(lambda: c.mintWithVoucher(tampered, signature).call(), "InvalidVoucherSigner(address)")
    for domain in ({"chainId": 1}, {"verifyingContract": Account.create().address}):
        foreign, foreign_signature, _ = _voucher(chain, domain=domain)
        _reverts_with(
            lambda v=foreign, s=foreign_signature: c.mintWithVoucher(v, s).call(), "InvalidVoucherSigner(address)"
        )
    fields, signature, _ = _voucher(chain, signer=Account.create())  # a key without VOUCHER_SIGNER_ROLE
    _reverts_with(lambda: c.mintWithVoucher(fields, signature).call(), "InvalidVoucherSigner(address)")
    fields, signature, _ = _voucher(chain, price=10**15)
    _reverts_with(lambda: c.mintWithVoucher(fields, signature).call({"value": 1}), "WrongPayment(uint256,uint256)")
    assert c.totalMinted().call() == 0


def test_a_voucher_mint_pays_the_payout_and_the_recipient_gets_the_token(chain: Chain) -> None:
    c = chain.contract.functions
    payout = Account.create().address
    _send(chain, c.setPayout(payout), sender=chain.admin)
    price = 3 * 10**15
    fields, signature, message = _voucher(chain, price=price)
    collector = dev_account(5).address  # sends and pays; the voucher names the recipient
    receipt = _send(chain, c.mintWithVoucher(fields, signature), sender=collector, value=price)
    assert chain.w3.eth.get_balance(payout) == price
    assert c.ownerOf(1).call() == message["recipient"]
    (redeemed,) = chain.contract.events.VoucherRedeemed().process_receipt(receipt, errors=DISCARD)
    assert redeemed["args"]["payer"] == collector
    assert redeemed["args"]["price"] == price
    assert c.tokenIdOf(message["requestId"]).call() == 1


def test_metadata_role_updates_emit_erc4906_events_and_others_are_refused(chain: Chain) -> None:
    c = chain.contract.functions
    mints = [(Account.create().address, os.urandom(32), _cid(50)[1], RAW) for _ in range(3)]
    _send(chain, c.mintBatch(mints))
    new_cid, digest, codec = _cid(400_000)
    receipt = _send(chain, c.updateTokenURI(2, digest, codec))
    assert [
        e["args"]["_tokenId"] for e in chain.contract.events.MetadataUpdate().process_receipt(receipt, errors=DISCARD)
    ] == [2]
    assert c.tokenURI(2).call() == f"ipfs://{new_cid}"
    cids = [_cid(20), _cid(30)]
    receipt = _send(chain, c.updateTokenURIs([1, 2], [d for _, d, _ in cids], [k for _, _, k in cids]))
    (batch,) = chain.contract.events.BatchMetadataUpdate().process_receipt(receipt, errors=DISCARD)
    assert (batch["args"]["_fromTokenId"], batch["args"]["_toTokenId"]) == (1, 2)
    assert [c.tokenURI(i).call() for i in (1, 2)] == [f"ipfs://{cid}" for cid, _, _ in cids]
    receipt = _send(chain, c.updateTokenURIs([3, 1], [digest, digest], [codec, codec]))
    assert [
        e["args"]["_tokenId"] for e in chain.contract.events.MetadataUpdate().process_receipt(receipt, errors=DISCARD)
    ] == [3, 1]
    outsider = dev_account(6).address
    _reverts_with(
        lambda: c.updateTokenURI(1, digest, codec).call({"from": outsider}),
        "AccessControlUnauthorizedAccount(address,bytes32)",
    )
    assert c.supportsInterface(bytes.fromhex("49064906")).call()
    assert c.supportsInterface(bytes.fromhex("80ac58cd")).call()  # ERC-721
    assert c.supportsInterface(bytes.fromhex("2a55205a")).call()  # ERC-2981


def gas_per_token(chain: Chain) -> dict[str, float]:
    """gasUsed of one batch of 100 fresh recipients ÷ 100, of one mint, of one voucher mint."""
    c = chain.contract.functions
    mints = [(Account.create().address, os.urandom(32), _cid(200)[1], RAW) for _ in range(100)]
    batch = _send(chain, c.mintBatch(mints))["gasUsed"] / 100
    _, digest, codec = _cid(200)
    single = _send(chain, c.mint(Account.create().address, os.urandom(32), digest, codec))["gasUsed"]
    fields, signature, _ = _voucher(chain)
    voucher = _send(chain, c.mintWithVoucher(fields, signature), sender=chain.admin)["gasUsed"]
    return {"batch": batch, "single": single, "voucher": voucher}


def test_gas_per_token_in_a_batch_of_100_fresh_recipients_is_within_the_goal(chain: Chain) -> None:
    found = gas_per_token(chain)
    assert found["batch"] <= GAS_GOAL_BATCH, found
