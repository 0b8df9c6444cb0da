"""Compile the contracts with the pinned npm solc; write or check the committed artifacts.

Three targets, one pinned compiler setup: PersonaMintV2.sol → PersonaMintV2.json (what the
service deploys), the v1 contract it replaced, benchmarks/baseline/PersonaMint.sol → .json (the
gas benchmarks' baseline), and the dev stack's sample contracts, devstack/contracts/samples/ →
devstack/contracts/Samples.json (what `devstack.seed` deploys).
Usage: `python -m chain.contracts.build` rewrites both; `--check` recompiles and exits 1
if a committed abi/bytecode/deployedBytecode differs. Needs node and `npm ci` at the
repository root; the service itself only reads the committed JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from chain.errors import CompileError

# The service's contract (#15): packed storage (Solady ERC-721), CID digests in SSTORE2,
# EIP-712 vouchers, METADATA_ROLE.
CONTRACT_NAME = "PersonaMintV2"
ARTIFACT_NAME = f"{CONTRACT_NAME}.json"
# v1 (OpenZeppelin ERC721URIStorage, the URI string per token): only the benchmarks' baseline.
BASELINE_NAME = "PersonaMint"
# Fields that decide what gets deployed and how it is called; --check compares these.
CHECKED_FIELDS = ("abi", "bytecode", "deployedBytecode")
SETTINGS: dict[str, Any] = {
    "evmVersion": "prague",
    "optimizer": {"enabled": True, "runs": 200},
}

# Demo contracts, one artifact for all of them; compiled with the same SETTINGS.
SAMPLE_CONTRACTS = ("DemoToken", "DemoCollection", "DemoItems", "DemoDex", "DemoSmartWallet")
SAMPLES_ARTIFACT_NAME = "Samples.json"

_CONTRACTS_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = _CONTRACTS_DIR.parent.parent
# The dev stack owns its sample contracts; this tool only builds them (from a checkout, by
# path: chain imports nothing of the dev stack). Their sources sit in samples/ under it.
SAMPLES_DIR = PROJECT_ROOT / "devstack" / "contracts"
BASELINE_DIR = PROJECT_ROOT / "benchmarks" / "baseline"
_NPM_HINT = "run `npm ci` in the repository root"

# Source unit names stay relative ("PersonaMint.sol", "@openzeppelin/contracts/...") so
# the metadata hash, and therefore the bytecode, is the same on every checkout.
_NODE_COMPILER = r"""
const fs = require('fs');
const path = require('path');
const solc = require('solc');
const modules = path.resolve('node_modules');
function findImports(unit) {
  const file = path.resolve(modules, unit);
  if (!file.startsWith(modules + path.sep)) {
    return { error: 'import outside node_modules: ' + unit };
  }
  try { return { contents: fs.readFileSync(file, 'utf8') }; }
  catch (e) { return { error: 'cannot read ' + unit + ': ' + e.message }; }
}
const input = fs.readFileSync(0, 'utf8');
const output = JSON.parse(solc.compile(input, { import: findImports }));
process.stdout.write(JSON.stringify({ version: solc.version(), output: output }));
"""


def _standard_json_input(sources: dict[str, str], selection: dict[str, list[str]]) -> dict[str, Any]:
    """solc input for `sources` (unit name → text), asking outputs for `selection` (unit → contracts)."""
    wanted = ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]
    return {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sources.items()},
        "settings": {
            **SETTINGS,
            "outputSelection": {
                unit: {contract: list(wanted) for contract in contracts} for unit, contracts in selection.items()
            },
        },
    }


def _require_toolchain(project_root: Path) -> str:
    node = shutil.which("node")
    if node is None:
        raise CompileError(f"node not found on PATH; install Node 20 and {_NPM_HINT}")
    for package in ("solc", "@openzeppelin/contracts", "solady"):
        if not (project_root / "node_modules" / package / "package.json").is_file():
            raise CompileError(f"node_modules/{package} missing under {project_root}; {_NPM_HINT}")
    return node


def _run_solc(project_root: Path, solc_input: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    node = _require_toolchain(project_root)
    try:
        completed = subprocess.run(
            [node, "-e", _NODE_COMPILER],
            input=json.dumps(solc_input),
            capture_output=True,
            text=True,
            cwd=project_root,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CompileError("solc did not finish within 300s") from exc
    if completed.returncode != 0:
        tail = completed.stderr.strip()[-2000:]
        raise CompileError(f"solc (node) exited {completed.returncode}: {tail}; {_NPM_HINT}?")
    result = json.loads(completed.stdout)
    return result["version"], result["output"]


def _solc_outputs(
    project_root: Path, sources: dict[str, str], selection: dict[str, list[str]]
) -> tuple[str, dict[str, Any], list[str]]:
    """(solc version, compiled contracts by unit, warnings); raises CompileError on errors."""
    version, output = _run_solc(project_root, _standard_json_input(sources, selection))
    diagnostics = output.get("errors", [])
    errors = [d["formattedMessage"] for d in diagnostics if d.get("severity") == "error"]
    if errors:
        raise CompileError("solc failed:\n" + "\n".join(errors))
    warnings = [d["formattedMessage"] for d in diagnostics if d.get("severity") != "error"]
    return version, output["contracts"], warnings


def _code_fields(compiled: dict[str, Any]) -> dict[str, Any]:
    return {
        "abi": compiled["abi"],
        "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
    }


def _source_dir(name: str) -> Path:
    return BASELINE_DIR if name == BASELINE_NAME else _CONTRACTS_DIR


def _compile(project_root: Path, name: str = CONTRACT_NAME) -> tuple[dict[str, Any], list[str]]:
    source_name = f"{name}.sol"
    source = (_source_dir(name) / source_name).read_text(encoding="utf-8")
    version, contracts, warnings = _solc_outputs(project_root, {source_name: source}, {source_name: [name]})
    artifact = {
        "contractName": name,
        "sourceName": source_name,
        "compiler": {"name": "solc", "version": version},
        "settings": SETTINGS,
        **_code_fields(contracts[source_name][name]),
    }
    return artifact, warnings


def _sample_source_name(contract: str) -> str:
    # Relative to SAMPLES_DIR, like PersonaMint.sol's to its folder: solc records the unit name
    # in the metadata hash, so it keeps the bytecode the same on every checkout.
    return f"samples/{contract}.sol"


def _compile_samples(project_root: Path) -> tuple[dict[str, Any], list[str]]:
    sources = {
        _sample_source_name(name): (SAMPLES_DIR / _sample_source_name(name)).read_text(encoding="utf-8")
        for name in SAMPLE_CONTRACTS
    }
    selection = {_sample_source_name(name): [name] for name in SAMPLE_CONTRACTS}
    version, contracts, warnings = _solc_outputs(project_root, sources, selection)
    artifact = {
        "compiler": {"name": "solc", "version": version},
        "settings": SETTINGS,
        "contracts": {
            name: {
                "sourceName": _sample_source_name(name),
                **_code_fields(contracts[_sample_source_name(name)][name]),
            }
            for name in SAMPLE_CONTRACTS
        },
    }
    return artifact, warnings


def compile_contract(project_root: Path | None = None, name: str = CONTRACT_NAME) -> dict[str, Any]:
    """Compile `<name>`.sol (CONTRACT_NAME or BASELINE_NAME) and return the artifact dict (needs node + `npm ci`)."""
    artifact, _ = _compile(project_root or PROJECT_ROOT, name)
    return artifact


def compile_samples(project_root: Path | None = None) -> dict[str, Any]:
    """Compile the dev stack's sample contracts into one artifact dict (needs node + `npm ci`)."""
    artifact, _ = _compile_samples(project_root or PROJECT_ROOT)
    return artifact


def render_artifact(artifact: dict[str, Any]) -> str:
    """Serialize an artifact the one way it is committed, so rebuilds diff cleanly."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


@functools.cache
def _artifact_text() -> str:
    return resources.files(__package__).joinpath(ARTIFACT_NAME).read_text(encoding="utf-8")


def load_artifact() -> dict[str, Any]:
    """The service contract's committed artifact (a fresh dict per call; callers may mutate it)."""
    artifact: dict[str, Any] = json.loads(_artifact_text())
    return artifact


def artifact_path(name: str = CONTRACT_NAME) -> Path:
    """Where `<name>`.json is committed in a checkout."""
    return _source_dir(name) / f"{name}.json"


def load_baseline_artifact() -> dict[str, Any]:
    """The v1 contract's artifact, committed beside the benchmarks (read from a checkout)."""
    artifact: dict[str, Any] = json.loads(artifact_path(BASELINE_NAME).read_text(encoding="utf-8"))
    return artifact


def artifact_differences(committed: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """Names of the checked fields that differ between two artifacts."""
    return [field for field in CHECKED_FIELDS if committed.get(field) != fresh.get(field)]


def load_samples_artifact() -> dict[str, Any]:
    """The sample-contracts artifact committed in this checkout (the dev stack reads its own copy)."""
    artifact: dict[str, Any] = json.loads((SAMPLES_DIR / SAMPLES_ARTIFACT_NAME).read_text(encoding="utf-8"))
    return artifact


def samples_differences(committed: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """`Contract.field` for each checked field that differs, and each contract added or removed."""
    old, new = committed.get("contracts", {}), fresh.get("contracts", {})
    stale = [f"{name} (missing)" for name in sorted(set(old) ^ set(new))]
    for name in sorted(set(old) & set(new)):
        stale += [f"{name}.{field}" for field in artifact_differences(old[name], new[name])]
    return stale


def _check(path: Path, stale: list[str], version: str) -> int:
    if stale:
        print(
            f"{path.name} is stale ({', '.join(stale)} differ); "
            "run python -m chain.contracts.build and commit the result",
            file=sys.stderr,
        )
        return 1
    print(f"{path.name} is up to date (solc {version})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chain.contracts.build", description=__doc__)
    parser.add_argument(
        "--check",
        action="store_true",
        help="recompile and fail if a committed artifact is stale",
    )
    options = parser.parse_args(argv)
    contract_paths = [artifact_path(name) for name in (CONTRACT_NAME, BASELINE_NAME)]
    samples_path = SAMPLES_DIR / SAMPLES_ARTIFACT_NAME
    try:
        compiled = [_compile(PROJECT_ROOT, name) for name in (CONTRACT_NAME, BASELINE_NAME)]
        samples, sample_warnings = _compile_samples(PROJECT_ROOT)
    except CompileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in [w for _, found in compiled for w in found] + sample_warnings:
        print(warning, file=sys.stderr)
    version = samples["compiler"]["version"]
    if options.check:
        missing = [path for path in (*contract_paths, samples_path) if not path.is_file()]
        for path in missing:
            print(f"{path} missing; run python -m chain.contracts.build", file=sys.stderr)
        if missing:
            return 1
        # Run every check so one report names every stale artifact.
        results = [
            _check(path, artifact_differences(json.loads(path.read_text(encoding="utf-8")), fresh), version)
            for path, (fresh, _) in zip(contract_paths, compiled, strict=True)
        ]
        committed_samples = json.loads(samples_path.read_text(encoding="utf-8"))
        results.append(_check(samples_path, samples_differences(committed_samples, samples), version))
        return max(results)
    for path, (fresh, _) in zip(contract_paths, compiled, strict=True):
        path.write_text(render_artifact(fresh), encoding="utf-8")
        print(f"wrote {path} (runtime {(len(fresh['deployedBytecode']) - 2) // 2} bytes, solc {version})")
    samples_path.write_text(render_artifact(samples), encoding="utf-8")
    print(f"wrote {samples_path} ({', '.join(SAMPLE_CONTRACTS)}, solc {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
