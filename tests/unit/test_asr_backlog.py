"""The ASR backlog: bounded by count and seconds, sheds the oldest, accounts for every second."""

from __future__ import annotations

import asyncio

import pytest

from asr.backlog import SegmentBacklog
from tests.fakes_asr import make_segment


def seg(seq: int, duration: float = 1.0):
    return make_segment(duration_s=duration, seq=seq, start_offset_s=float(seq))


async def test_sheds_oldest_when_count_bound_reached():
    shed, received = [], []
    q = SegmentBacklog(max_segments=3, max_audio_s=100, on_shed=shed.append,
                       on_received=received.append)
    for i in range(5):
        await q.put(seg(i))
    assert [s.seq for s in shed] == [0, 1]
    assert [q.get_nowait().seq for _ in range(3)] == [2, 3, 4]
    assert len(received) == 5 and q.shed_count == 2 and q.shed_s == pytest.approx(2.0)


async def test_sheds_by_seconds_of_audio():
    shed = []
    q = SegmentBacklog(max_segments=100, max_audio_s=5.0, on_shed=shed.append)
    for i, d in enumerate([2.0, 2.0, 2.0, 4.0]):
        q.put_nowait(seg(i, d))
    assert [s.seq for s in shed] == [0, 1, 2]  # 2+2+2 > 5 sheds 0; 4 more needs 1 and 2 gone
    assert q.audio_s == pytest.approx(4.0)


async def test_shed_items_count_as_done_so_join_returns():
    q = SegmentBacklog(max_segments=1, max_audio_s=100)
    q.put_nowait(seg(0))
    q.put_nowait(seg(1))  # sheds 0
    q.get_nowait()
    q.task_done()
    await asyncio.wait_for(q.join(), 1)


async def test_a_lone_segment_longer_than_the_bound_is_still_accepted():
    q = SegmentBacklog(max_segments=4, max_audio_s=1.0)
    q.put_nowait(seg(0, 3.0))
    assert q.qsize() == 1


async def test_blocking_mode_waits_instead_of_shedding():
    shed, received = [], []
    q = SegmentBacklog(max_segments=1, max_audio_s=0.5, on_shed=shed.append,
                       on_received=received.append, shed=False)
    await q.put(seg(0, 3.0))
    with pytest.raises(asyncio.QueueFull):
        q.put_nowait(seg(1))
    assert len(received) == 1  # the refused one was not counted
    putter = asyncio.create_task(q.put(seg(1)))
    await asyncio.sleep(0.01)
    assert not putter.done()
    q.get_nowait()
    await asyncio.wait_for(putter, 1)
    assert not shed and len(received) == 2


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="max_segments"):
        SegmentBacklog(max_segments=0, max_audio_s=1)
    with pytest.raises(ValueError, match="max_audio_s"):
        SegmentBacklog(max_segments=1, max_audio_s=0)
