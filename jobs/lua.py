"""The Redis Lua scripts in jobs/scripts/, loaded by name, each opening with the KEYS and ARGV it takes.

A script's opening comment block names one slot a line (`-- KEYS[1] job: …`, `-- ARGV[2] status: …`;
`name?` for a slot that may be absent, `[1..n]` / `[1..2n]` for a variable count), and
`-- include: <name>` lines name the shared scripts (functions, guards) put in front of it at load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

_SLOT = re.compile(r"^-- (KEYS|ARGV)\[(\d+|1\.\.(\d*)n)\] ([\w, ]+?)(\?)?: (.+)$")
_INCLUDE = re.compile(r"^-- include: (\w+)$")


@dataclass(frozen=True)
class Slot:
    """One KEYS or ARGV position a script names in its header."""

    index: int  # 1-based; 0 for a variable count
    name: str
    optional: bool = False
    per_key: int = 0  # a variable count: slots per key (KEYS[1..n] → 1, ARGV[1..2n] → 2)


@dataclass(frozen=True)
class Header:
    """What a script's opening comment block says about it."""

    summary: str
    keys: tuple[Slot, ...]
    args: tuple[Slot, ...]
    includes: tuple[str, ...]

    def accepts(self, n_keys: int, n_args: int) -> bool:
        """Whether a call with this many keys and args fits the named slots."""
        return _fits(self.keys, n_keys, n_keys) and _fits(self.args, n_args, n_keys)


def _fits(slots: tuple[Slot, ...], count: int, n_keys: int) -> bool:
    variable = [slot for slot in slots if slot.index == 0]
    if variable:
        return n_keys >= 1 and count == variable[0].per_key * n_keys
    required = sum(1 for slot in slots if not slot.optional)
    return required <= count <= len(slots)


def names() -> list[str]:
    """Every script there is, by name."""
    return sorted(path.name.removesuffix(".lua") for path in _folder().iterdir() if path.name.endswith(".lua"))


@cache
def source(name: str) -> str:
    """The script's own text, as the file has it."""
    return (_folder() / f"{name}.lua").read_text(encoding="utf-8")


@cache
def header(name: str) -> Header:
    """The script's opening comment block, parsed; raises ValueError when a line there is malformed."""
    summary: list[str] = []
    keys: list[Slot] = []
    args: list[Slot] = []
    includes: list[str] = []
    for line in source(name).splitlines():
        if not line.startswith("--"):
            break
        if slot := _SLOT.match(line):
            kind, index, per_key, slot_name, optional = slot.group(1, 2, 3, 4, 5)
            variable = index.startswith("1..")
            (keys if kind == "KEYS" else args).append(
                Slot(
                    index=0 if variable else int(index),
                    name=slot_name,
                    optional=optional is not None,
                    per_key=(int(per_key) if per_key else 1) if variable else 0,
                )
            )
        elif include := _INCLUDE.match(line):
            includes.append(include.group(1))
        elif line.startswith(("-- KEYS", "-- ARGV", "-- include")):
            raise ValueError(f"{name}.lua: malformed header line {line!r}")
        elif not keys and not args:
            summary.append(line.removeprefix("--").strip())
    return Header(" ".join(part for part in summary if part), tuple(keys), tuple(args), tuple(includes))


@cache
def load(name: str) -> str:
    """The script as Redis runs it: its includes first, in order, then its own text."""
    return "".join(load(included) for included in header(name).includes) + source(name)


def register(redis: Redis, name: str) -> AsyncScript:
    """The named script registered on this client (EVALSHA, loaded on first use)."""
    return redis.register_script(load(name))


def _folder() -> Traversable:
    return files("jobs") / "scripts"
