"""A clip's flow computed one frame ahead in a thread (on CUDA; forced on here, on the CPU):
the same frames bit for bit, errors on the frame that needs them, no thread after a render."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import dreamvid
from dreamvid.core import defaults as D
from dreamvid.core.errors import DreamvidError
from dreamvid.pixels import flow
from tests.conftest import pan_clip
from tests.test_video import frames_of, schedule

pytestmark = pytest.mark.timeout(300)

WORKER = "dreamvid-flow"


def flow_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(WORKER)]


@pytest.fixture
def ahead(monkeypatch):
    """Turn the look-ahead on or off for renders on the CPU."""

    def set_ahead(on: bool) -> None:
        monkeypatch.setattr(D, "FLOW_AHEAD_DEVICES", ("cpu", "cuda") if on else ())

    return set_ahead


@pytest.fixture
def dis_calls(monkeypatch):
    """``flow.dis`` wrapped: records (thread name, call number) of every call; ``fail_at`` (a call
    number, from 1) raises there, ``interrupt_at`` raises KeyboardInterrupt, ``slow`` sleeps."""
    calls: list[str] = []
    real = flow.dis
    options = {"fail_at": None, "slow": 0.0}

    def dis(*args, **kwargs):
        fn = real(*args, **kwargs)

        def recorded(a, b):
            calls.append(threading.current_thread().name)
            if len(calls) == options["fail_at"]:
                raise DreamvidError(f"flow failed on call {len(calls)}")
            time.sleep(options["slow"])
            return fn(a, b)

        return recorded

    monkeypatch.setattr(flow, "dis", dis)
    return calls, options


def test_frames_are_the_same_bit_for_bit_with_the_flow_ahead(tmp_path, net, ahead, dis_calls):
    calls, _ = dis_calls
    pan_clip(tmp_path / "c.mp4", frames=6)
    s = schedule(tmp_path, "c.mp4", 6, output=None)
    ahead(False)
    inline = frames_of(s, net)
    assert calls and all(not name.startswith(WORKER) for name in calls)
    calls.clear()
    ahead(True)
    threaded = frames_of(s, net)
    assert len(calls) == 5 and all(name.startswith(WORKER) for name in calls)  # frames 1..5, none ahead of the end
    assert len(inline) == len(threaded) == 6
    for n, (a, b) in enumerate(zip(inline, threaded)):
        assert np.array_equal(a, b), n
    assert flow_threads() == []


@pytest.mark.parametrize("on", [False, True])
def test_a_flow_error_stops_the_frame_that_needs_it(tmp_path, net, ahead, dis_calls, on):
    """Frame 3's flow fails (computed ahead while frame 2 dreams): frames 0-2 come out, then the error."""
    _, options = dis_calls
    options["fail_at"] = 3
    ahead(on)
    pan_clip(tmp_path / "c.mp4", frames=6)
    got = []
    with pytest.raises(DreamvidError, match="flow failed on call 3"):
        for frame in dreamvid.frames(schedule(tmp_path, "c.mp4", 6, output=None), model=net, progress=False):
            got.append(frame)
    assert len(got) == 3
    assert flow_threads() == []


def test_ctrl_c_mid_render_leaves_no_flow_thread(tmp_path, net, ahead, dis_calls):
    """A stop while the worker is inside a (slow) flow: the render waits for it and ends the thread."""
    calls, options = dis_calls
    options["slow"] = 0.5
    ahead(True)
    pan_clip(tmp_path / "c.mp4", frames=8)
    seen: list[list[str]] = []

    def callback(p):
        if p.event == "frame":
            seen.append(flow_threads())
            if p.frame == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dreamvid.render(schedule(tmp_path, "c.mp4", 8), callback=callback, progress=False, model=net)
    assert any(seen[1:]) and calls  # the worker ran during the render
    assert flow_threads() == []


def test_clip_frames_keep_one_device_copy_per_kept_frame(tmp_path):
    """On a device other than the CPU (the meta device stands in for CUDA here) each kept frame
    goes up once, and its copy is dropped with it; ``host`` gives the frame on the CPU."""
    import torch

    from dreamvid.rendering.video_input import ClipFrames

    pan_clip(tmp_path / "c.mp4", frames=5)
    s = schedule(tmp_path, "c.mp4", 5)
    frames = ClipFrames(s.clip, s.size, torch.device("meta"))
    try:
        one = frames.get(1)
        assert one.device.type == "meta" and frames.get(1) is one
        assert frames.host(1).device.type == "cpu" and frames.host(1).shape == one.shape
        frames.get(3)
        assert set(frames._on_device) == {3}  # frame 1 is no longer kept (frames 2 and 3 are)
    finally:
        frames.close()
    assert frames._reader is None
