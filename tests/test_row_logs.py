"""The row-log codec of the Redis store, without Redis: a log's records read back as the sums
of what was appended, whatever the order, duplicates and magnitudes (past int64 too), and a
compacted log reads the same as the log it replaces."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from distributed.row_log import HEADER, compacted_log, log_sums, pack_records

NEW_LOG = b"0000000000000016"
aids = st.integers(min_value=0, max_value=2**63 - 1)
# Weights as the matrices have them, and past int64 (a sum split over several records).
weights = st.one_of(st.integers(min_value=0, max_value=2**42),
                    st.integers(min_value=0, max_value=2**70))
cells = st.lists(st.tuples(aids, weights, weights), max_size=40)


def appended(batches: list[list[tuple[int, int, int]]], width: int) -> bytes:
    log = NEW_LOG
    for batch in batches:
        flat = [v for cell in batch for v in cell[:width]]
        log += pack_records(flat, width)
    return log


def summed(batches: list[list[tuple[int, int, int]]], width: int) -> list[dict[int, int]]:
    out: list[dict[int, int]] = [{} for _ in range(width - 1)]
    for batch in batches:
        for cell in batch:
            for column, w in zip(out, cell[1:width], strict=True):
                column[cell[0]] = column.get(cell[0], 0) + w
    return out


@given(st.lists(cells, max_size=6), st.sampled_from([2, 3]))
def test_a_log_reads_as_the_sums_of_its_records(batches: list[list[tuple[int, int, int]]],
                                                width: int) -> None:
    log = appended(batches, width)
    assert log_sums(log, width) == summed(batches, width)


@given(st.lists(cells, min_size=1, max_size=6), cells, st.sampled_from([2, 3]))
def test_a_compacted_log_reads_the_same_and_keeps_later_appends(
        batches: list[list[tuple[int, int, int]]], later: list[tuple[int, int, int]],
        width: int) -> None:
    log = appended(batches, width)
    compacted = compacted_log(log, width)
    assert log_sums(compacted, width) == summed(batches, width)
    assert int(compacted[:8]) == 1  # the next generation
    assert int(compacted[8:HEADER]) == len(compacted)
    # What the compaction script does with appends it did not read: keeps them after.
    grown = compacted + appended([later], width)[HEADER:]
    assert log_sums(grown, width) == summed([*batches, later], width)
    sums = summed(batches, width)
    if all(w < 2**63 for column in sums for w in column.values()):
        assert len(compacted) == HEADER + 8 * width * len(sums[0])  # one record per neighbour
