"""validate --estimate: two frames of the heaviest segment dreamed at full size, scaled up to the
whole render by every frame's cost."""

from __future__ import annotations

import dataclasses

import pytest

import dreamvid
from dreamvid.rendering.estimate import duration, frame_cost, heaviest_frame
from tests.conftest import run_here, write_schedule

LIGHT = {"frames": 4, "layers": {"mixed0": 1.0}, "iterations": 1}
HEAVY = {"frames": 3, "layers": {"mixed3": 1.0}, "iterations": 3, "transition": 1}


def test_a_frame_costs_more_with_iterations_octaves_and_depth(tmp_path):
    s = dreamvid.load_schedule(write_schedule(tmp_path, segments=[LIGHT, HEAVY]))
    order = list(dreamvid.layers())
    p = s.params(1)
    base = frame_cost(p, order)
    assert base > 0
    assert frame_cost(dataclasses.replace(p, iterations=2), order) == pytest.approx(2 * base)
    assert frame_cost(dataclasses.replace(p, octaves=2), order) > base
    assert frame_cost(dataclasses.replace(p, layers={"mixed5": 1.0}), order) > base
    assert frame_cost(dataclasses.replace(p, layers={}), order) == 0.0
    costs = [frame_cost(s.params(n), order) for n in range(s.total_frames)]
    assert heaviest_frame(s, costs) == 4  # the second segment's first frame


def test_the_estimate_scales_the_timed_frame_by_the_costs(tmp_path, net):
    s = dreamvid.load_schedule(write_schedule(tmp_path, segments=[LIGHT, HEAVY]))
    e = dreamvid.estimate(s, model=net)
    order = list(net.catalogue)
    costs = [frame_cost(s.params(n), order) for n in range(s.total_frames)]
    costs[0] = 0.0  # the input
    assert e.segment == 1 and e.frames == 7 and e.device == "cpu" and e.peak_bytes > 100 << 20
    assert e.frame_seconds > 0
    assert e.seconds == pytest.approx(e.frame_seconds * sum(costs) / costs[5])
    assert str(e).startswith(f"estimate: {duration(e.seconds)} for 7 frames on cpu (")


def test_validate_estimate_prints_one_more_line(tmp_path):
    path = write_schedule(tmp_path, segments=[LIGHT, HEAVY])
    r = run_here("validate", path, "--estimate")
    assert r.returncode == 0, r.stderr
    *summary, last = r.stdout.strip().splitlines()
    assert summary[0].startswith("s.yaml: 7 frames") and last.startswith("estimate: ") and "peak memory" in last
    assert not (tmp_path / "out").exists()  # nothing rendered, nothing written


def test_duration_reads_like_a_clock():
    assert [duration(s) for s in (12.4, 250, 7500)] == ["12 s", "4 min 10 s", "2 h 05 min"]
