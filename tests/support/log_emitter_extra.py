"""A raw four-topic log emitter: any topics, any data, repeated; for ERC-1155 relays and batches.

log_emitter's contracts loop over token ids with fixed operand positions (its TransferSingle
names `from` as the operator). This one is told everything: calldata is
`count, topic0, topic1, topic2, topic3` (five words) followed by the log's data verbatim,
and it emits that LOG4 `count` times. So one contract can play an ERC-1155 collection that
emits TransferSingle and TransferBatch, with an operator that is neither party.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from tests.support.log_emitter import TRANSFER_SINGLE

TRANSFER_BATCH = keccak(text="TransferBatch(address,address,address,uint256[],uint256[])")
_HEADER = 0xA0  # five words before the data


def _push(value: int, width: int = 1) -> bytes:
    return bytes([0x5F + width]) + value.to_bytes(width, "big")


def _load(offset: int) -> bytes:
    return _push(offset) + b"\x35"  # CALLDATALOAD


def _runtime() -> bytes:
    prologue = (
        _push(_HEADER)
        + b"\x36"  # CALLDATASIZE
        + b"\x03"  # SUB: size = calldatasize - header
        + b"\x80"  # DUP1
        + _push(_HEADER)
        + _push(0)
        + b"\x37"  # CALLDATACOPY(memory 0, calldata header, size)   stack: [size]
        + _load(0)  # stack: [size, count]
    )
    loop = len(prologue)

    def body(done: int) -> bytes:
        return (
            b"\x5b"  # JUMPDEST
            + b"\x80"  # DUP1
            + b"\x15"  # ISZERO
            + _push(done, 2)
            + b"\x57"  # JUMPI
            + _load(0x80)
            + _load(0x60)
            + _load(0x40)
            + _load(0x20)  # stack: [size, count, t3, t2, t1, t0]
            + b"\x85"  # DUP6: size
            + _push(0)  # memory offset
            + b"\xa4"  # LOG4
            + _push(1)
            + b"\x90"  # SWAP1
            + b"\x03"  # SUB: count - 1
            + _push(loop, 2)
            + b"\x56"  # JUMP
        )

    done = loop + len(body(0))
    code = prologue + body(done) + b"\x5b\x00"  # JUMPDEST STOP
    assert code[loop] == code[done] == 0x5B  # both jump targets are JUMPDESTs
    return code


RUNTIME = _runtime()


def init_code(runtime: bytes = RUNTIME) -> bytes:
    """Constructor: CODECOPY the runtime that follows its 12-byte prefix, then RETURN it."""
    prefix = (
        _push(len(runtime), 2)
        + b"\x80"  # DUP1
        + _push(12)  # where the runtime starts
        + _push(0)
        + b"\x39"  # CODECOPY
        + _push(0)
        + b"\xf3"  # RETURN
    )
    assert len(prefix) == 12
    return prefix + runtime


def _word(value: int | str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value.rjust(32, b"\x00")
    number = int(value, 16) if isinstance(value, str) else value
    return number.to_bytes(32, "big")


def raw_call_data(count: int, topics: Sequence[int | str | bytes], data: bytes) -> str:
    """Emit LOG4(topics) with `data`, `count` times."""
    if len(topics) != 4:
        raise ValueError("the raw emitter takes exactly four topics")
    return "0x" + (_word(count) + b"".join(_word(topic) for topic in topics) + data).hex()


def transfer_single(operator: str, sender: str, receiver: str, token_id: int, amount: int) -> tuple[list[Any], bytes]:
    """(topics, data) of ERC-1155 TransferSingle."""
    return [TRANSFER_SINGLE, operator, sender, receiver], abi_encode(["uint256", "uint256"], [token_id, amount])


def transfer_batch(
    operator: str, sender: str, receiver: str, ids: Sequence[int], amounts: Sequence[int]
) -> tuple[list[Any], bytes]:
    """(topics, data) of ERC-1155 TransferBatch."""
    data = abi_encode(["uint256[]", "uint256[]"], [list(ids), list(amounts)])
    return [TRANSFER_BATCH, operator, sender, receiver], data


def raw_tx(signer: str, emitter: str, count: int, topics: Sequence[int | str | bytes], data: bytes) -> dict[str, Any]:
    """An unsigned transaction for anvil to sign, with gas for `count` logs of this size."""
    per_log = 3_000 + 8 * len(data) + 200
    return {
        "from": signer,
        "to": emitter,
        "data": raw_call_data(count, topics, data),
        "gas": hex(60_000 + 16 * (160 + len(data)) + per_log * count),
    }
