"""Gas per token, PersonaMint v1 (today's contract, the baseline) against v2 (#15), on anvil.

Run from the repository root:
    python -m benchmarks.contract_gas       # a few seconds

For each contract: one `mintBatch` of 100 fresh recipients (its `gasUsed` ÷ 100: base cost and
calldata included), one single `mint`, and for v2 one `mintWithVoucher` (price 0). Each batch is
broken down per token: the 21,000 base share, calldata (16 gas a non-zero byte, 4 a zero one),
events (375 + 375 a topic + 8 a data byte), execution (the rest: storage, mostly), and the storage
slots the transaction wrote, per token (anvil's prestateTracer in diff mode). Goals: v2 ≤ 90k per
token in a batch of 100, ≤ 110k a single mint, ≤ 120k a voucher mint.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3
from web3.exceptions import Web3Exception

from chain.contract import VOUCHER_FIELDS

GOALS = {"batch": 90_000, "single": 110_000, "voucher": 120_000}
BATCH = 100


def _deploy(w3: Web3, name: str, admin: str, minter: str) -> Any:
    from chain.contracts import build

    artifact = build.load_artifact() if name == build.CONTRACT_NAME else build.load_baseline_artifact()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor("Bench", "BENCH", admin, minter, "", "0x" + "00" * 20, 0, 0).transact({"from": admin})
    address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
    return w3.eth.contract(address=address, abi=artifact["abi"])


def _cid() -> tuple[str, bytes, int]:
    from ipfs.cid import cid_for_bytes, parse_cid

    cid = cid_for_bytes(os.urandom(600))  # a metadata document: one raw block
    parsed = parse_cid(cid)
    return cid, parsed.digest, parsed.codec


def _breakdown(w3: Web3, receipt: Any, tokens: int) -> dict[str, float]:
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    data = bytes(tx["input"])
    calldata = sum(16 if byte else 4 for byte in data)
    events = sum(375 + 375 * len(log["topics"]) + 8 * len(bytes(log["data"])) for log in receipt["logs"])
    slots: float = float("nan")
    try:
        trace = w3.provider.make_request(
            "debug_traceTransaction",
            [receipt["transactionHash"].hex(), {"tracer": "prestateTracer", "tracerConfig": {"diffMode": True}}],
        )["result"]
        post = trace.get("post", {})
        slots = sum(len(account.get("storage", {})) for account in post.values())
    except (KeyError, TypeError, ValueError, Web3Exception):  # a node without the tracer: the column says nan
        pass
    used = receipt["gasUsed"]
    return {
        "total": used / tokens,
        "base": 21_000 / tokens,
        "calldata": calldata / tokens,
        "events": events / tokens,
        "execution": (used - 21_000 - calldata - events) / tokens,
        "slots": slots / tokens,
    }


def _send(w3: Web3, fn: Any, sender: str) -> Any:
    return w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))


def measure(w3: Web3, name: str, admin: str, minter: Any) -> dict[str, dict[str, float]]:
    contract = _deploy(w3, name, admin, minter.address)
    c = contract.functions
    recipients = [Account.create().address for _ in range(BATCH)]
    request_ids = [os.urandom(32) for _ in range(BATCH)]
    found: dict[str, dict[str, float]] = {}
    if name == "PersonaMint":  # v1, the baseline
        uris = [f"ipfs://{_cid()[0]}" for _ in range(BATCH)]
        batch = _send(w3, c.mintBatch(recipients, uris, request_ids), minter.address)
        single = _send(w3, c.mint(Account.create().address, f"ipfs://{_cid()[0]}", os.urandom(32)), minter.address)
    else:
        mints = [(to, rid, _cid()[1], 0x55) for to, rid in zip(recipients, request_ids, strict=True)]
        batch = _send(w3, c.mintBatch(mints), minter.address)
        _, digest, codec = _cid()
        single = _send(w3, c.mint(Account.create().address, os.urandom(32), digest, codec), minter.address)
        _, digest, codec = _cid()
        message = {
            "recipient": Account.create().address,
            "requestId": os.urandom(32),
            "digest": digest,
            "codec": codec,
            "price": 0,
            "deadline": int(time.time()) + 3600,
        }
        types = {"MintVoucher": [{"name": k, "type": t} for k, t in VOUCHER_FIELDS]}
        domain = {
            "name": "PersonaMint",
            "version": "2",
            "chainId": w3.eth.chain_id,
            "verifyingContract": contract.address,
        }
        signature = minter.sign_message(
            encode_typed_data(domain_data=domain, message_types=types, message_data=message)
        )
        voucher = _send(w3, c.mintWithVoucher(tuple(message.values()), signature.signature), admin)
        found["voucher"] = _breakdown(w3, voucher, 1)
    found["batch"] = _breakdown(w3, batch, BATCH)
    found["single"] = _breakdown(w3, single, 1)
    return found


def measure_both() -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(v1, v2) gas rows by path, measured on one fresh anvil."""
    from chain.contracts import build
    from chain.dev_accounts import dev_account
    from devstack.anvil import AnvilProcess

    admin, minter = dev_account(0), dev_account(1)
    with AnvilProcess() as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        return (
            measure(w3, build.BASELINE_NAME, admin.address, minter),
            measure(w3, build.CONTRACT_NAME, admin.address, minter),
        )


def report(v1: dict[str, dict[str, float]], v2: dict[str, dict[str, float]]) -> list[str]:
    """The breakdown table and one line per goal."""
    lines = [f"gas per token, fresh recipients (anvil, prague); batch = one mintBatch of {BATCH} ÷ {BATCH}"]
    lines.append(
        f"{'contract / path':<22}{'total':>9}{'base':>8}{'calldata':>10}{'events':>8}{'execution':>11}{'slots':>7}"
    )
    for label, runs in (("v1 (baseline)", v1), ("v2", v2)):
        for path, row in runs.items():
            lines.append(
                f"{label + ' ' + path:<22}{row['total']:>9,.0f}{row['base']:>8,.0f}{row['calldata']:>10,.0f}"
                f"{row['events']:>8,.0f}{row['execution']:>11,.0f}{row['slots']:>7.2f}"
            )
    for path, goal in GOALS.items():
        got = v2[path]["total"]
        met = "met" if got <= goal else "MISSED"
        base = f", v1 {v1[path]['total']:,.0f} ({v1[path]['total'] / got:.2f}x)" if path in v1 else ""
        lines.append(f"goal v2 {path} <= {goal:,}: {got:,.0f}{base} ({met})")
    return lines


def main() -> int:
    print("\n".join(report(*measure_both())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
