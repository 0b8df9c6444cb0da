"""A PersonaMint deployed on a test anvil, with the accounts that play each role."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3

from chain.contract import Deployment, PersonaMint, deploy_persona_mint
from chain.dev_accounts import dev_account
from chain.token_uri import CODEC_RAW, token_uri


def cid_uri(label: str, codec: int = CODEC_RAW) -> str:
    """A token URI the contract can store: `ipfs://` + the CIDv1 of a digest named by `label`."""
    return token_uri(hashlib.sha256(label.encode()).digest(), codec)


@dataclass(frozen=True)
class DeployedMint:
    """PersonaMint deployed with dev account 0 as admin and dev account 1 as minter."""

    w3: AsyncWeb3[Any]
    deployment: Deployment
    contract: PersonaMint
    admin: LocalAccount
    minter: LocalAccount
    outsider: LocalAccount


async def deploy_test_mint(w3: AsyncWeb3[Any]) -> DeployedMint:
    """A fresh PersonaMint (admin dev 0, minter dev 1, outsider dev 2) with a 5% royalty to the admin."""
    admin, minter, outsider = dev_account(0), dev_account(1), dev_account(2)
    deployment = await deploy_persona_mint(
        w3,
        admin,
        name="Persona Mint",
        symbol="PERSONA",
        admin=admin.address,
        minter=minter.address,
        contract_uri="ipfs://contract",
        royalty_receiver=admin.address,
        royalty_bps=500,
    )
    return DeployedMint(
        w3=w3,
        deployment=deployment,
        contract=PersonaMint(w3, deployment.address),
        admin=admin,
        minter=minter,
        outsider=outsider,
    )
