"""The committed PersonaMint and sample-contract artifacts are exactly what the pinned solc builds."""

from __future__ import annotations

import shutil

import pytest

from chain.contracts import build
from chain.errors import CompileError


def _require_toolchain() -> None:
    # A missing toolchain must fail loudly: skipping would let a stale artifact ship.
    if shutil.which("node") is None:
        pytest.fail("node is not installed; install Node 20 and run `npm ci`")
    if not (build.PROJECT_ROOT / "node_modules" / "solc" / "package.json").is_file():
        pytest.fail("node_modules/solc is missing; run `npm ci` in the repository root")


@pytest.mark.parametrize("name", [build.CONTRACT_NAME, build.BASELINE_NAME])
def test_recompile_matches_committed_artifact(name: str) -> None:
    _require_toolchain()
    try:
        fresh = build.compile_contract(name=name)
    except CompileError as exc:
        pytest.fail(f"compiling {name}.sol failed ({exc}); run `npm ci`?")
    committed = build.load_artifact() if name == build.CONTRACT_NAME else build.load_baseline_artifact()

    assert fresh["bytecode"] == committed["bytecode"]
    assert fresh["deployedBytecode"] == committed["deployedBytecode"]
    assert fresh["abi"] == committed["abi"]
    assert fresh["compiler"] == committed["compiler"]
    assert build.artifact_differences(committed, fresh) == []
    # The file on disk is the canonical rendering, byte for byte: rebuilds diff clean.
    artifact_file = build.artifact_path(name)
    assert artifact_file.read_text(encoding="utf-8") == build.render_artifact(committed)


def test_committed_artifact_shape() -> None:
    artifact = build.load_artifact()
    assert artifact["compiler"]["version"].startswith("0.8.30+")
    assert artifact["settings"] == {
        "evmVersion": "prague",
        "optimizer": {"enabled": True, "runs": 200},
    }
    assert artifact["bytecode"].startswith(("0x60", "0x61"))  # PUSH1 or PUSH2: the free memory pointer
    # CBOR metadata trailer: IPFS metadata hash, then "solc" 0.8.30 (0x00081e).
    assert "a264697066735822" in artifact["deployedBytecode"]
    assert artifact["deployedBytecode"].endswith("64736f6c634300081e0033")
    names = {item.get("name") for item in artifact["abi"]}
    assert {
        "mint",
        "mintBatch",
        "mintWithVoucher",
        "updateTokenURI",
        "cidOf",
        "tokenIdOf",
        "RequestAlreadyMinted",
        "MintSkipped",
    } <= names
    # The service deploys the v2 artifact; v1 is only the benchmarks' baseline, outside the package.
    assert artifact["contractName"] == "PersonaMintV2"
    assert build.artifact_path(build.BASELINE_NAME).parent.name == "baseline"


def test_artifact_differences_names_changed_fields() -> None:
    committed = build.load_artifact()
    changed = {**committed, "deployedBytecode": committed["deployedBytecode"] + "00"}
    assert build.artifact_differences(committed, changed) == ["deployedBytecode"]


def test_recompile_matches_committed_samples() -> None:
    _require_toolchain()
    try:
        fresh = build.compile_samples()
    except CompileError as exc:
        pytest.fail(f"compiling the sample contracts failed ({exc}); run `npm ci`?")
    committed = build.load_samples_artifact()

    assert set(committed["contracts"]) == set(build.SAMPLE_CONTRACTS)
    for name in build.SAMPLE_CONTRACTS:
        assert fresh["contracts"][name] == committed["contracts"][name], name
    assert fresh["compiler"] == committed["compiler"]
    assert build.samples_differences(committed, fresh) == []
    samples_file = build.SAMPLES_DIR / build.SAMPLES_ARTIFACT_NAME
    assert samples_file.read_text(encoding="utf-8") == build.render_artifact(fresh)


def test_committed_samples_shape() -> None:
    artifact = build.load_samples_artifact()
    # Same compiler and settings as PersonaMint, so one toolchain pins both.
    assert artifact["compiler"] == build.load_artifact()["compiler"]
    assert artifact["settings"] == build.SETTINGS
    names = {contract: {item.get("name") for item in entry["abi"]} for contract, entry in artifact["contracts"].items()}
    assert {"mint", "Transfer", "transfer"} <= names["DemoToken"]
    assert {"mint", "Transfer", "transferFrom"} <= names["DemoCollection"]
    assert {"mintBatch", "TransferBatch", "TransferSingle", "safeTransferFrom"} <= names["DemoItems"]
    assert {"deposit", "swap", "withdraw", "Deposited", "Swapped", "Withdrawn"} <= names["DemoDex"]
    # History scanners find protocol events by the wallet in topic 1: user must come first.
    for event in (item for item in artifact["contracts"]["DemoDex"]["abi"] if item["type"] == "event"):
        assert event["inputs"][0] == {"indexed": True, "internalType": "address", "name": "user", "type": "address"}
    for entry in artifact["contracts"].values():
        assert entry["deployedBytecode"].endswith("64736f6c634300081e0033")


def test_samples_differences_names_contract_and_field() -> None:
    committed = build.load_samples_artifact()
    changed = build.load_samples_artifact()
    changed["contracts"]["DemoDex"]["bytecode"] += "00"
    del changed["contracts"]["DemoItems"]
    assert build.samples_differences(committed, changed) == ["DemoItems (missing)", "DemoDex.bytecode"]
