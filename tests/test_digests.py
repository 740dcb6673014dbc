"""checkpoint.frame_digests is cached per schedule and still answers as if recomputed."""

from dreamvid.rendering import checkpoint as ckpt
from dreamvid.schedule.schedule import load_schedule

from .conftest import write_schedule


def test_cached_digests_equal_fresh_ones(tmp_path):
    path = write_schedule(tmp_path)
    s = load_schedule(path)
    long = ckpt.frame_digests(s, 5)
    short = ckpt.frame_digests(s, 2)  # from the cache
    assert short == long[:3] and len(long) == 6
    ckpt._DIGESTS.clear()
    assert ckpt.frame_digests(s, 5) == long  # recomputed from scratch
    short.append("x")  # callers get a copy, not the cache itself
    assert ckpt.frame_digests(s, 2) == long[:3]


def test_edited_schedule_gets_its_own_digests(tmp_path):
    a = load_schedule(write_schedule(tmp_path / "a"))
    b = load_schedule(write_schedule(tmp_path / "b", segments=[{"frames": 6, "layers": {"mixed3": 1.0}, "zoom": 1.1}]))
    da, db = ckpt.frame_digests(a, 3), ckpt.frame_digests(b, 3)
    assert da[1:] != db[1:]  # the zoom changed frames 1..3
