"""A hand-assembled contract factory for deployment tests: CREATE or CREATE2 of any child, no compiler.

The factory's calldata is `mode (word) ‖ salt (word) ‖ child init code (bytes)`:
mode 0 CREATEs the child, 1 CREATE2s it with the salt, 2 CREATEs it and then reverts the
whole call (so the child never exists). `builder_init_code` is a contract whose
constructor CREATEs a child itself: a top-level deployment that deploys another.
Children: `child_init_code` (a contract with code) and `DOOMED_CHILD` (its constructor
self-destructs, so nothing stays at its address).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from tests.support.log_emitter import Chain, init_code

CREATE, CREATE2, CREATE_THEN_REVERT = 0, 1, 2

_OP = {
    "STOP": 0x00,
    "SUB": 0x03,
    "EQ": 0x14,
    "CALLER": 0x33,
    "CALLDATALOAD": 0x35,
    "CALLDATASIZE": 0x36,
    "CALLDATACOPY": 0x37,
    "CODECOPY": 0x39,
    "POP": 0x50,
    "JUMPI": 0x57,
    "JUMPDEST": 0x5B,
    "DUP1": 0x80,
    "DUP2": 0x81,
    "SWAP1": 0x90,
    "CREATE": 0xF0,
    "RETURN": 0xF3,
    "CREATE2": 0xF5,
    "REVERT": 0xFD,
    "SELFDESTRUCT": 0xFF,
}

Item = str | tuple[str, int | str]


def _assemble(program: Sequence[Item]) -> bytes:
    """Ops, ("PUSH", int), ("LABEL", name), ("PUSHLABEL", name) → bytecode (labels as 2-byte pushes)."""
    labels: dict[str, int] = {}
    for resolve in (False, True):
        code = bytearray()
        for item in program:
            if isinstance(item, str):
                code.append(_OP[item])
                continue
            op, arg = item
            if op == "LABEL":
                labels[str(arg)] = len(code)
            elif op == "PUSHLABEL":
                code += bytes([0x61]) + (labels.get(str(arg), 0) if resolve else 0).to_bytes(2, "big")
            else:
                value = int(arg)
                raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
                code += bytes([0x5F + len(raw)]) + raw
    return bytes(code)


def _deployable(runtime: bytes) -> bytes:
    """Init code that returns `runtime` (CODECOPY of the bytes after it)."""

    def program(runtime_at: int) -> list[Item]:
        return [("PUSH", len(runtime)), "DUP1", ("PUSH", runtime_at), ("PUSH", 0), "CODECOPY", ("PUSH", 0), "RETURN"]

    offset = len(_assemble(program(0xFFFF)))
    prefix = _assemble(program(offset))
    return prefix.ljust(offset, b"\x5b") + runtime  # JUMPDEST padding keeps the offset exact


FACTORY_RUNTIME = _assemble(
    [
        # size = calldatasize - 0x40; memory[0:size] = the child's init code
        ("PUSH", 0x40),
        "CALLDATASIZE",
        "SUB",
        "DUP1",
        ("PUSH", 0x40),
        ("PUSH", 0),
        "CALLDATACOPY",
        ("PUSH", 0),
        "CALLDATALOAD",  # [size, mode]
        "DUP1",
        ("PUSH", CREATE2),
        "EQ",
        ("PUSHLABEL", "create2"),
        "JUMPI",
        "DUP2",
        ("PUSH", 0),
        ("PUSH", 0),
        "CREATE",  # CREATE(value 0, offset 0, size)
        "POP",
        ("PUSH", CREATE_THEN_REVERT),
        "EQ",
        ("PUSHLABEL", "revert"),
        "JUMPI",
        "STOP",
        ("LABEL", "create2"),
        "JUMPDEST",  # [size, mode]
        "POP",
        ("PUSH", 0x20),
        "CALLDATALOAD",
        "SWAP1",  # [salt, size]
        ("PUSH", 0),
        ("PUSH", 0),
        "CREATE2",  # CREATE2(value 0, offset 0, size, salt)
        "POP",
        "STOP",
        ("LABEL", "revert"),
        "JUMPDEST",
        ("PUSH", 0),
        "DUP1",
        "REVERT",
    ]
)
FACTORY_INIT = _deployable(FACTORY_RUNTIME)
# Its constructor self-destructs: the CREATE succeeds, and no code is ever left at the address.
DOOMED_CHILD = _assemble(["CALLER", "SELFDESTRUCT"])


def child_init_code() -> bytes:
    """A child with real code (a log emitter from log_emitter)."""
    return init_code("event")


def builder_init_code(child: bytes, *, revert: bool = False) -> bytes:
    """A contract whose constructor CREATEs `child` (appended after the constructor), then keeps a
    1-byte runtime; with `revert`, the constructor reverts after the CREATE, undoing both."""
    runtime = b"\x00"

    def program(child_at: int) -> list[Item]:
        create: list[Item] = [
            ("PUSH", len(child)),
            "DUP1",
            ("PUSH", child_at),
            ("PUSH", 0),
            "CODECOPY",  # memory[0:len] = child
            ("PUSH", 0),
            ("PUSH", 0),
            "CREATE",  # CREATE(0, 0, len)
            "POP",
        ]
        if revert:
            return [*create, ("PUSH", 0), "DUP1", "REVERT"]
        return [
            *create,
            ("PUSH", len(runtime)),
            ("PUSH", child_at + len(child)),
            ("PUSH", 0),
            "CODECOPY",
            ("PUSH", len(runtime)),
            ("PUSH", 0),
            "RETURN",
        ]

    guess = len(_assemble(program(0xFFFF)))
    code = _assemble(program(guess))
    return code.ljust(guess, b"\x5b") + child + runtime


def factory_call_data(mode: int, child: bytes, salt: int = 0) -> str:
    return "0x" + mode.to_bytes(32, "big").hex() + salt.to_bytes(32, "big").hex() + child.hex()


def create2_address(factory: str, salt: int, child: bytes) -> str:
    raw = b"\xff" + bytes.fromhex(factory[2:]) + salt.to_bytes(32, "big") + keccak(child)
    return to_checksum_address(keccak(raw)[12:])


def deploy_code(chain: Chain, sender: str, code: bytes) -> dict[str, Any]:
    """Send a contract-creation transaction from an unlocked account; its receipt (status checked)."""
    tx = chain.call("eth_sendTransaction", {"from": sender, "data": "0x" + code.hex(), "gas": "0x100000"})
    receipt = chain.receipt(tx)
    if receipt["status"] != "0x1":
        raise RuntimeError("deployment failed")
    return receipt


def call_factory(chain: Chain, sender: str, factory: str, mode: int, child: bytes, salt: int = 0) -> dict[str, Any]:
    """Have `sender` call the factory; the receipt (a CREATE_THEN_REVERT call's status is 0x0)."""
    tx = chain.call(
        "eth_sendTransaction",
        {"from": sender, "to": factory, "data": factory_call_data(mode, child, salt), "gas": "0x100000"},
    )
    return chain.receipt(tx)
