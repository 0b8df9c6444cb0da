"""NonceBook: nonces handed out lowest-free-first, and reconciled with the chain without ever leaving a gap."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.minter import classify_send_error
from chain.nonce import NonceBook


def test_allocates_in_order_from_the_chain_nonce() -> None:
    book = NonceBook(7)
    assert [book.allocate() for _ in range(3)] == [7, 8, 9]
    assert book.next == 10
    assert book.held == {7, 8, 9}


def test_a_released_nonce_below_held_ones_is_reused_first() -> None:
    book = NonceBook(0)
    for _ in range(4):
        book.allocate()
    book.release(1)  # the node refused nonce 1; 2 and 3 wait behind it
    assert book.blocking_gap() == 1
    assert book.allocate() == 1
    assert book.blocking_gap() is None
    assert book.allocate() == 4


def test_releasing_the_top_nonce_just_lowers_next() -> None:
    book = NonceBook(5)
    book.allocate()
    book.allocate()
    book.release(6)
    book.release(5)
    assert book.next == 5
    assert book.free == ()


def test_reconcile_reports_consumed_and_missing_nonces() -> None:
    book = NonceBook(0)
    for _ in range(5):
        book.allocate()
    # 0 and 1 mined; 2 in the pool; 3 and 4 not counted pending (dropped, or queued behind a gap).
    result = book.reconcile(latest=2, pending=3)
    assert result.consumed == (0, 1)
    assert result.not_pending == (3, 4)
    assert result.gaps == ()
    assert result.jumped_to is None


def test_reconcile_finds_a_gap_nothing_holds_and_fills_it_next() -> None:
    book = NonceBook(0)
    for _ in range(3):
        book.allocate()
    book.settle(0)
    book.settle(1)
    book.settle(2)
    book.hold(4)  # restored from the journal; nonce 3 is held by nothing
    result = book.reconcile(latest=3, pending=3)
    assert result.gaps == (3,)
    assert book.allocate() == 3


def test_reconcile_jumps_over_nonces_someone_else_used() -> None:
    book = NonceBook(0)
    book.allocate()
    book.release(0)
    book.allocate()  # 0 again
    book.settle(0)
    result = book.reconcile(latest=4, pending=6)
    assert result.jumped_to == 6
    assert book.allocate() == 6


def test_free_nonces_the_pool_already_holds_are_dropped() -> None:
    book = NonceBook(0)
    for _ in range(3):
        book.allocate()
    book.release(0)
    book.reconcile(latest=0, pending=1)  # someone else's transaction took 0 meanwhile
    assert book.free == ()
    assert book.allocate() == 3


def test_a_negative_start_is_refused() -> None:
    with pytest.raises(ValueError):
        NonceBook(-1)


# Operations: ("alloc",), ("release", i), ("settle", i), ("reconcile", latest_step, pending_step)
_operation = st.one_of(
    st.tuples(st.just("alloc")),
    st.tuples(st.just("release"), st.integers(0, 40)),
    st.tuples(st.just("settle"), st.integers(0, 40)),
    st.tuples(st.just("reconcile"), st.integers(0, 3), st.integers(0, 3)),
)


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 5), operations=st.lists(_operation, max_size=60))
def test_book_invariants_hold_under_any_sequence(start: int, operations: list[tuple[object, ...]]) -> None:
    book = NonceBook(start)
    latest = start
    for operation in operations:
        if operation[0] == "alloc":
            free_before = book.free
            nonce = book.allocate()
            # Lowest free first, else the next unused one.
            assert nonce == (free_before[0] if free_before else book.next - 1)
        elif operation[0] == "release":
            held = sorted(book.held)
            if held:
                book.release(held[int(operation[1]) % len(held)])  # type: ignore[call-overload]
        elif operation[0] == "settle":
            held = sorted(n for n in book.held if n < book.next)
            if held:
                book.settle(held[int(operation[1]) % len(held)])  # type: ignore[call-overload]
        else:
            latest = max(latest, min(book.next, latest + int(operation[1])))  # type: ignore[call-overload]
            pending = latest + int(operation[2])  # type: ignore[call-overload]
            result = book.reconcile(latest, pending)
            # After a reconcile nothing below `next` is unaccounted for above the pool.
            accounted = book.held | set(book.free)
            assert all(n in accounted for n in range(max(pending, latest), book.next))
            assert all(n >= pending for n in book.free)
            assert book.next >= pending
            assert set(result.gaps) <= set(book.free) | set(range(book.next, book.next + 64))
        assert not (book.held & set(book.free)), "a nonce is never both held and free"
        assert all(n < book.next for n in book.free)
        assert len(book.free) == len(set(book.free))


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("already known", "known"),
        ("transaction already imported", "known"),
        ("nonce too low", "nonce_low"),
        ("nonce too low: next nonce 5, tx nonce 3", "nonce_low"),
        ("nonce too high", "nonce_high"),
        ("replacement transaction underpriced", "replacement"),
        ("Insufficient funds for gas * price + value", "funds"),
        ("max fee per gas less than block base fee", "fee"),
        ("transaction underpriced", "fee"),
        ("exceeds block gas limit", "other"),
    ],
)
def test_send_errors_are_classified_across_node_wordings(message: str, kind: str) -> None:
    assert classify_send_error(message) == kind
