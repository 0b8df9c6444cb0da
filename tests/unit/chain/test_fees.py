"""Fee quotes and replacement bumps: EIP-1559 and legacy, always under the ceiling, always enough to replace."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.fees import GWEI, FeeCeilingExceeded, FeePolicy, Fees, Market, bump, needed_price, quote, underpriced
from chain.journal import JournalItem, TxRecord

MARKET = Market(base_fee=10 * GWEI, priority_fee=1 * GWEI, gas_price=11 * GWEI)


def test_eip1559_quote_leaves_room_for_base_fee_growth() -> None:
    fees = quote(MARKET, FeePolicy())
    assert fees == Fees(max_fee=21 * GWEI, priority_fee=1 * GWEI, legacy=False)
    assert fees.tx_fields() == {"maxFeePerGas": 21 * GWEI, "maxPriorityFeePerGas": 1 * GWEI}


def test_the_ceiling_caps_the_max_fee_but_still_quotes_when_inclusion_fits() -> None:
    fees = quote(MARKET, FeePolicy(ceiling_wei=15 * GWEI))
    assert fees.max_fee == 15 * GWEI
    assert fees.priority_fee == 1 * GWEI


def test_above_the_ceiling_there_is_no_quote() -> None:
    with pytest.raises(FeeCeilingExceeded) as failure:
        quote(MARKET, FeePolicy(ceiling_wei=10 * GWEI))
    assert failure.value.code == "fee_ceiling"
    assert failure.value.needed_wei == 11 * GWEI
    assert "ceiling" in str(failure.value)


def test_legacy_chains_quote_gas_price() -> None:
    legacy_market = Market(base_fee=None, priority_fee=0, gas_price=7 * GWEI)
    fees = quote(legacy_market, FeePolicy())
    assert fees.legacy
    assert fees.tx_fields() == {"gasPrice": 7 * GWEI}
    forced = quote(MARKET, FeePolicy(legacy=True))
    assert forced.tx_fields() == {"gasPrice": 11 * GWEI}


def test_a_fixed_priority_fee_overrides_the_node() -> None:
    fees = quote(MARKET, FeePolicy(priority_fee_wei=3 * GWEI))
    assert fees.priority_fee == 3 * GWEI
    assert needed_price(MARKET, FeePolicy(priority_fee_wei=3 * GWEI)) == 13 * GWEI


def test_bump_raises_both_fields_by_at_least_12_5_percent() -> None:
    previous = Fees(max_fee=21 * GWEI, priority_fee=1 * GWEI, legacy=False)
    bumped = bump(previous, MARKET, FeePolicy())
    assert bumped.max_fee >= previous.max_fee * 1125 // 1000
    assert bumped.priority_fee >= previous.priority_fee * 1125 // 1000


def test_bump_follows_a_market_that_moved_more_than_the_bump() -> None:
    previous = Fees(max_fee=3 * GWEI, priority_fee=1 * GWEI, legacy=False)
    spiked = Market(base_fee=100 * GWEI, priority_fee=2 * GWEI, gas_price=102 * GWEI)
    bumped = bump(previous, spiked, FeePolicy())
    assert bumped.max_fee == 202 * GWEI
    assert not underpriced(bumped, spiked, FeePolicy())
    assert underpriced(previous, spiked, FeePolicy())


def test_bump_above_the_ceiling_waits() -> None:
    previous = Fees(max_fee=19 * GWEI, priority_fee=1 * GWEI, legacy=False)
    with pytest.raises(FeeCeilingExceeded):
        bump(previous, MARKET, FeePolicy(ceiling_wei=20 * GWEI))


def test_zero_tips_still_change_on_a_bump() -> None:
    previous = Fees(max_fee=10, priority_fee=0, legacy=False)
    bumped = bump(previous, Market(base_fee=1, priority_fee=0, gas_price=1), FeePolicy())
    assert bumped.priority_fee > 0
    assert bumped.max_fee > 10


_wei = st.integers(min_value=0, max_value=10_000 * GWEI)


@given(
    previous_max=_wei,
    previous_tip=_wei,
    base_fee=st.one_of(st.none(), _wei),
    tip=_wei,
    gas_price=_wei,
    ceiling=st.one_of(st.none(), _wei),
    bump_bps=st.integers(1_000, 5_000),
)
def test_a_bump_is_always_a_valid_replacement_under_the_ceiling(
    previous_max: int,
    previous_tip: int,
    base_fee: int | None,
    tip: int,
    gas_price: int,
    ceiling: int | None,
    bump_bps: int,
) -> None:
    legacy = base_fee is None
    previous = Fees(previous_max, previous_max if legacy else min(previous_tip, previous_max), legacy)
    market = Market(base_fee=base_fee, priority_fee=tip, gas_price=gas_price)
    policy = FeePolicy(ceiling_wei=ceiling, bump_bps=bump_bps)
    refusal: FeeCeilingExceeded | None = None
    try:
        bumped = bump(previous, market, policy)
    except FeeCeilingExceeded as exc:
        refusal = exc
    if refusal is not None:
        assert ceiling is not None
        assert refusal.needed_wei > ceiling
        return
    # Nodes need at least +10% on every fee field to accept a same-nonce replacement.
    assert bumped.max_fee * 10 >= previous.max_fee * 11
    assert bumped.max_fee > previous.max_fee
    assert bumped.priority_fee > previous.priority_fee or legacy
    assert bumped.priority_fee <= bumped.max_fee
    assert ceiling is None or bumped.max_fee <= ceiling
    assert not underpriced(bumped, market, policy)


@given(base_fee=_wei, tip=_wei, ceiling=st.one_of(st.none(), _wei))
def test_a_quote_never_exceeds_the_ceiling_and_is_never_underpriced(
    base_fee: int, tip: int, ceiling: int | None
) -> None:
    market = Market(base_fee=base_fee, priority_fee=tip, gas_price=base_fee + tip)
    policy = FeePolicy(ceiling_wei=ceiling)
    try:
        fees = quote(market, policy)
    except FeeCeilingExceeded:
        assert ceiling is not None
        assert base_fee + tip > ceiling
        return
    assert ceiling is None or fees.max_fee <= ceiling
    assert fees.max_fee >= base_fee + fees.priority_fee
    assert not underpriced(fees, market, policy)


def test_journal_records_round_trip_with_their_fees() -> None:
    record = TxRecord(
        nonce=42,
        items=(JournalItem(b"\x01" * 32, "0x" + "ab" * 20, "ipfs://bafy"),),
        raw=b"\x02\xf8",
        hashes=("0x" + "11" * 32, "0x" + "22" * 32),
        gas=210_000,
        fees=Fees(max_fee=30 * GWEI, priority_fee=GWEI, legacy=False),
        signed_at=1.5,
    )
    assert TxRecord.from_json(record.to_json()) == record
