"""PersonaMint on a real anvil: keyed mints, batch skips, roles, interfaces, gas."""

from __future__ import annotations

import hashlib

import pytest
from eth_abi.abi import encode as abi_encode
from eth_typing import HexStr
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from chain.contract import (
    INTERFACE_ID,
    METADATA_ROLE,
    MINTER_ROLE,
    PersonaMint,
    decode_revert,
    deploy_persona_mint,
    send_transaction,
)
from chain.errors import (
    ChainError,
    ContractRevert,
    MaxSupplyReached,
    MissingRole,
    RequestAlreadyMinted,
)
from chain.token_uri import CODEC_DAG_PB
from tests.support.chain import DeployedMint, cid_uri

MINTED_TOPIC = keccak(text="Minted(bytes32,uint256,address)")
METADATA_UPDATE_TOPIC = keccak(text="MetadataUpdate(uint256)")


def request_id(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@pytest.mark.asyncio
async def test_deployment_state(deployed: DeployedMint) -> None:
    contract = deployed.contract
    assert deployed.deployment.chain_id == 31337
    assert await contract.has_code()
    assert await contract.is_minter(deployed.minter.address)
    assert not await contract.is_minter(deployed.admin.address)
    assert await contract.is_admin(deployed.admin.address)
    assert await contract.total_minted() == 0
    assert await contract.max_supply() == 0
    assert await contract.contract_uri() == "ipfs://contract"


@pytest.mark.asyncio
async def test_mint_then_read_back(deployed: DeployedMint) -> None:
    contract, recipient = deployed.contract, deployed.outsider.address
    rid = request_id("mint-read-back")
    assert await contract.token_id_of(rid) is None

    outcome = await contract.mint(deployed.minter, recipient, cid_uri("bafy-one"), rid)

    assert len(outcome.minted) == 1
    assert outcome.skipped == ()
    minted = outcome.minted[0]
    assert minted.request_id == rid
    assert minted.token_id == 1  # ids start at 1; 0 means "none"
    assert minted.to == recipient
    assert await contract.owner_of(1) == recipient
    assert await contract.token_uri(1) == cid_uri("bafy-one")
    assert await contract.token_id_of(rid) == 1
    assert await contract.total_minted() == 1


@pytest.mark.asyncio
async def test_second_mint_with_same_request_id_is_refused(
    deployed: DeployedMint,
) -> None:
    contract, recipient = deployed.contract, deployed.outsider.address
    rid = request_id("twice")
    await contract.mint(deployed.minter, recipient, cid_uri("first"), rid)

    with pytest.raises(RequestAlreadyMinted) as caught:
        await contract.mint(deployed.minter, recipient, cid_uri("second"), rid)

    assert caught.value.code == "already_minted"
    assert caught.value.request_id == rid
    assert caught.value.token_id == 1
    assert "RequestAlreadyMinted" in str(caught.value)
    assert await contract.token_uri(1) == cid_uri("first")


@pytest.mark.asyncio
async def test_revert_mined_on_chain_is_decoded(deployed: DeployedMint) -> None:
    # A fixed gas limit skips estimation, so the revert happens in a mined block and the
    # reason has to be recovered by replaying the transaction.
    contract = deployed.contract
    rid = request_id("mined-revert")
    await contract.mint(deployed.minter, deployed.outsider.address, cid_uri("a"), rid)
    tx = {
        "to": contract.address,
        "data": contract.mint_call_data(deployed.outsider.address, cid_uri("b"), rid),
        "gas": 300_000,
    }
    with pytest.raises(RequestAlreadyMinted) as caught:
        await send_transaction(deployed.w3, deployed.minter, tx)
    assert caught.value.token_id == 1
    assert caught.value.tx_hash is not None


@pytest.mark.asyncio
async def test_non_minter_cannot_mint(deployed: DeployedMint) -> None:
    with pytest.raises(MissingRole) as caught:
        await deployed.contract.mint(
            deployed.outsider,
            deployed.outsider.address,
            cid_uri("x"),
            request_id("intruder"),
        )
    assert caught.value.error_name == "AccessControlUnauthorizedAccount"
    assert caught.value.account == deployed.outsider.address
    assert caught.value.role == MINTER_ROLE
    assert await deployed.contract.total_minted() == 0


@pytest.mark.asyncio
async def test_batch_skips_used_request_ids(deployed: DeployedMint) -> None:
    contract = deployed.contract
    used = request_id("batch-used")
    await contract.mint(deployed.minter, deployed.outsider.address, cid_uri("used"), used)
    recipients = [
        deployed.admin.address,
        deployed.outsider.address,
        deployed.minter.address,
    ]
    uris = [cid_uri("b0"), cid_uri("b1"), cid_uri("b2")]
    ids = [request_id("batch-0"), used, request_id("batch-2")]

    outcome = await contract.mint_batch(deployed.minter, recipients, uris, ids)

    assert [(m.request_id, m.token_id, m.to) for m in outcome.minted] == [
        (ids[0], 2, recipients[0]),
        (ids[2], 3, recipients[2]),
    ]
    assert [(s.request_id, s.existing_token_id) for s in outcome.skipped] == [(used, 1)]
    assert await contract.token_uri(1) == cid_uri("used")
    assert await contract.token_uri(3) == cid_uri("b2")
    assert await contract.token_id_of(ids[2]) == 3
    assert await contract.total_minted() == 3


@pytest.mark.asyncio
async def test_batch_skips_request_id_repeated_within_batch(
    deployed: DeployedMint,
) -> None:
    rid = request_id("repeat-in-batch")
    recipient = deployed.outsider.address
    outcome = await deployed.contract.mint_batch(
        deployed.minter, [recipient, recipient], [cid_uri("a"), cid_uri("b")], [rid, rid]
    )
    assert [m.token_id for m in outcome.minted] == [1]
    assert [(s.request_id, s.existing_token_id) for s in outcome.skipped] == [(rid, 1)]
    assert await deployed.contract.token_uri(1) == cid_uri("a")


@pytest.mark.asyncio
async def test_update_length_mismatch_reverts(deployed: DeployedMint) -> None:
    contract = deployed.contract
    await contract.mint(deployed.minter, deployed.outsider.address, cid_uri("lm"), request_id("lm"))
    # Hand-built calldata: three token ids, one digest.
    data = function_signature_to_4byte_selector("updateTokenURIs(uint256[],bytes32[],uint8[])") + abi_encode(
        ["uint256[]", "bytes32[]", "uint8[]"], [[1, 1, 1], [b"\x11" * 32], [0x55, 0x55, 0x55]]
    )
    with pytest.raises(ContractRevert) as caught:
        await send_transaction(deployed.w3, deployed.minter, {"to": contract.address, "data": data, "gas": 200_000})
    assert caught.value.error_name == "LengthMismatch"
    with pytest.raises(ValueError, match="same length"):
        contract.mint_batch_call_data([deployed.outsider.address], [cid_uri("a"), cid_uri("b")], [request_id("x")])


@pytest.mark.asyncio
async def test_uris_the_contract_would_not_return_as_given_are_refused_before_sending(deployed: DeployedMint) -> None:
    contract, recipient = deployed.contract, deployed.outsider.address
    raw = cid_uri("canonical")
    for uri in (
        "ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",  # CIDv0
        "ipfs://" + raw[len("ipfs://") :].upper(),  # upper-case base32 is the same CID, another string
        raw[:-1],  # truncated
        "ipfs://not-a-cid",
        "https://example.com/1.json",
    ):
        with pytest.raises(ValueError):
            contract.mint_call_data(recipient, uri, request_id(uri))


@pytest.mark.asyncio
async def test_max_supply_is_enforced(deployed: DeployedMint) -> None:
    capped = await deploy_persona_mint(
        deployed.w3,
        deployed.admin,
        name="Capped",
        symbol="CAP",
        admin=deployed.admin.address,
        minter=deployed.minter.address,
        max_supply=2,
    )
    contract = PersonaMint(deployed.w3, capped.address)
    recipient = deployed.outsider.address
    await contract.mint(deployed.minter, recipient, cid_uri("1"), request_id("cap-1"))
    with pytest.raises(MaxSupplyReached) as caught:
        await contract.mint_batch(
            deployed.minter,
            [recipient, recipient],
            [cid_uri("2"), cid_uri("3")],
            [request_id("cap-2"), request_id("cap-3")],
        )
    assert caught.value.max_supply == 2
    assert await contract.total_minted() == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("interface_id", "expected"),
    [
        ("01ffc9a7", True),  # ERC-165
        ("80ac58cd", True),  # ERC-721
        ("5b5e139f", True),  # ERC-721 metadata
        ("49064906", True),  # ERC-4906 metadata updates
        ("2a55205a", True),  # ERC-2981 royalties
        ("7965db0b", True),  # AccessControl
        (INTERFACE_ID.hex(), True),  # IPersonaMintV2: what the service checks before it mints
        ("780e9d63", False),  # ERC-721 enumerable: not implemented
        ("ffffffff", False),  # ERC-165 says this id is never supported
    ],
)
async def test_supports_interface(deployed: DeployedMint, interface_id: str, expected: bool) -> None:
    assert await deployed.contract.supports_interface(bytes.fromhex(interface_id)) is expected


@pytest.mark.asyncio
async def test_royalty_info(deployed: DeployedMint) -> None:
    assert await deployed.contract.royalty_info(1, 10_000) == (
        deployed.admin.address,
        500,
    )


@pytest.mark.asyncio
async def test_update_token_uri_needs_metadata_role_and_emits_metadata_update(
    deployed: DeployedMint,
) -> None:
    contract = deployed.contract
    await contract.mint(deployed.minter, deployed.outsider.address, cid_uri("old"), request_id("uri"))
    new = cid_uri("new", CODEC_DAG_PB)
    tx = {
        "to": contract.address,
        "data": contract.update_token_uri_call_data(1, new),
    }

    # The service signer holds METADATA_ROLE; the admin is not needed for routine updates.
    assert await contract.has_role(METADATA_ROLE, deployed.minter.address)
    receipt = await send_transaction(deployed.w3, deployed.minter, tx)

    updates = [log for log in receipt["logs"] if bytes(log["topics"][0]) == METADATA_UPDATE_TOPIC]
    assert len(updates) == 1
    assert int.from_bytes(bytes(updates[0]["data"]), "big") == 1
    assert await contract.token_uri(1) == new

    for without_role in (deployed.admin, deployed.outsider):
        with pytest.raises(MissingRole):
            await send_transaction(deployed.w3, without_role, tx)
    assert await contract.token_uri(1) == new


@pytest.mark.asyncio
async def test_parse_receipt_ignores_other_contracts(deployed: DeployedMint) -> None:
    outcome = await deployed.contract.mint(
        deployed.minter, deployed.outsider.address, cid_uri("x"), request_id("other")
    )
    receipt = await deployed.w3.eth.get_transaction_receipt(HexStr(outcome.tx_hash))
    stranger = PersonaMint(deployed.w3, deployed.admin.address)
    assert stranger.parse_receipt(receipt).minted == ()
    assert deployed.contract.parse_receipt(receipt) == outcome


@pytest.mark.asyncio
async def test_gas_single_mint_vs_batch(deployed: DeployedMint) -> None:
    contract, recipient = deployed.contract, deployed.outsider.address
    uri = "ipfs://bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    # Warm the counter so the single mint pays the same storage costs as a steady state.
    await contract.mint(deployed.minter, recipient, uri, request_id("gas-warm"))
    single = await contract.mint(deployed.minter, recipient, uri, request_id("gas-single"))
    size = 10
    batch = await contract.mint_batch(
        deployed.minter,
        [recipient] * size,
        [uri] * size,
        [request_id(f"gas-batch-{i}") for i in range(size)],
    )
    assert len(batch.minted) == size
    per_token = batch.gas_used / size
    print(
        f"\ngas: single mint {single.gas_used}, batch of {size} {batch.gas_used} "
        f"({per_token:.0f}/token, {per_token / single.gas_used:.0%} of single)"
    )
    assert single.gas_used < 300_000
    assert per_token < single.gas_used


def test_decode_error_string_and_panic() -> None:
    reason = function_signature_to_4byte_selector("Error(string)") + abi_encode(["string"], ["nope"])
    error = decode_revert("0x" + reason.hex())
    assert (error.error_name, str(error)) == ("Error", "reverted: nope")
    panic = function_signature_to_4byte_selector("Panic(uint256)") + abi_encode(["uint256"], [0x11])
    assert "arithmetic overflow" in str(decode_revert(panic))
    assert str(decode_revert(b"")) == "reverted without a reason"


def test_decode_error_custom() -> None:
    rid = request_id("decode")
    data = function_signature_to_4byte_selector("RequestAlreadyMinted(bytes32,uint256)") + abi_encode(
        ["bytes32", "uint256"], [rid, 7]
    )
    error = decode_revert(data)
    assert isinstance(error, RequestAlreadyMinted)
    assert (error.request_id, error.token_id) == (rid, 7)
    assert error.code == "already_minted"


@given(st.binary(max_size=200))
def test_decode_error_never_raises(data: bytes) -> None:
    error = decode_revert(data)
    assert isinstance(error, ChainError)
    assert isinstance(error, ContractRevert)
    assert error.data == data
