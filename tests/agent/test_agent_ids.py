"""Result ids: the shape the control plane accepts, unique, and ordered by the time they were made."""

from __future__ import annotations

from agent.ids import new_result_id
from control_plane.agents.convert import RESULT_ID


def test_result_ids_have_the_accepted_shape_and_do_not_repeat() -> None:
    ids = [new_result_id() for _ in range(10_000)]
    assert all(RESULT_ID.match(i) and len(i) == 40 for i in ids)
    assert len(set(ids)) == len(ids)
    # The same millisecond still gives different ids (130 random bits after the time).
    assert len({new_result_id(now_ms=1_700_000_000_000) for _ in range(1000)}) == 1000


def test_result_ids_sort_as_the_times_they_were_made() -> None:
    times = [0, 1, 31, 32, 1_000, 1_700_000_000_000, 1_700_000_000_001, 2**50 - 1]
    ids = [new_result_id(now_ms=t) for t in times]
    assert sorted(ids) == ids
    assert [i[4:14] for i in ids] == sorted(i[4:14] for i in ids)
