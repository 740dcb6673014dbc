"""FrameSource: the render's frames, one ahead on CUDA so frame n's copy overlaps frame n+1.

Look-ahead is forced on the CPU here (the CUDA copy itself needs a GPU): the frames, the
order the Dreamer makes them in, failures and stops must be those of the plain loop."""

import functools

import numpy as np
import pytest
import torch

from dreamvid.media.read import probe_video, read_frames
from dreamvid.pixels.images import to_uint8
from dreamvid.rendering import loop as render_module
from dreamvid.rendering.cadence import dreamed
from dreamvid.rendering.framesource import FrameSource
from dreamvid.rendering.step import FiniteChecks

from .conftest import write_schedule


class FakeDreamer:
    device = torch.device("cpu")

    def __init__(self, fail_at=None, nan_at=None):
        self.calls, self.fail_at, self.nan_at = [], fail_at, nan_at
        self.checks = FiniteChecks()

    def first_frame(self):
        self.calls.append(0)
        return torch.zeros(1, 3, 4, 6)

    def next_frame(self, frame, n):
        self.calls.append(n)
        if n == self.fail_at:
            raise RuntimeError(f"frame {n} failed")
        out = (frame + 0.1).clamp(0, 1) * (float("nan") if n == self.nan_at else 1.0)
        self.checks.add(out, f"frame {n} is not finite")
        return out


def plain(total):
    d, frame, out = FakeDreamer(), None, []
    for n in range(total):
        frame = d.first_frame() if n == 0 else d.next_frame(frame, n)
        out.append(frame)
    return out


@pytest.mark.parametrize("ahead", [False, True])
def test_frames_and_copies_are_the_plain_loops(ahead):
    d = FakeDreamer()
    source, frame = FrameSource(d, 5, ahead=ahead), None
    for n, expected in enumerate(plain(5)):
        frame, rgb = source.get(n, frame)
        assert torch.equal(frame.frame, expected)
        assert rgb.dtype == np.uint8 and np.array_equal(rgb, to_uint8(expected).numpy())
        # ahead: frame n + 1 is made before frame n is handed over (never past the last one)
        assert d.calls == list(range(min(n + 2, 5) if ahead else n + 1))


def test_a_failure_ahead_is_raised_when_its_frame_is_asked_for():
    d = FakeDreamer(fail_at=3)
    source = FrameSource(d, 6, ahead=True)
    frame = None
    for n in range(3):
        frame, _ = source.get(n, frame)  # frame 2 comes back although frame 3 already failed
    with pytest.raises(RuntimeError, match="frame 3 failed"):
        source.get(3, frame)


@pytest.mark.parametrize("ahead", [False, True])
def test_a_frame_that_is_not_finite_fails_when_asked_for_and_no_earlier(ahead):
    """Deferred with look-ahead (the check travels with the frame's copy), at once without."""
    from dreamvid.core.errors import DreamvidError

    d = FakeDreamer(nan_at=3)
    source = FrameSource(d, 6, ahead=ahead)
    assert d.checks.deferred is ahead
    frame = None
    for n in range(3):
        frame, _ = source.get(n, frame)  # frame 2 comes back although frame 3 is already NaN
    with pytest.raises(DreamvidError, match="frame 3 is not finite"):
        source.get(3, frame)


def test_a_frame_made_from_another_previous_is_made_again():
    """Resuming or restarting hands a frame the source did not make: nothing made ahead is used."""
    d = FakeDreamer()
    source = FrameSource(d, 5, ahead=True)
    frame, _ = source.get(0, None)
    frame, _ = source.get(1, frame)  # made frame 2 ahead from this frame 1
    other = dreamed(1, torch.ones_like(frame.frame))
    again, _ = source.get(2, other)
    assert torch.equal(again.frame, (other.frame + 0.1).clamp(0, 1)) and d.calls.count(2) == 2


def test_a_render_with_look_ahead_stops_resumes_and_equals_the_plain_one(tmp_path, monkeypatch):
    from dreamvid.rendering.loop import Interrupted, render
    from dreamvid.schedule.schedule import load_schedule

    segments = [{"frames": 10, "layers": {"mixed0": 1.0}}]
    plain_video = render(load_schedule(write_schedule(tmp_path / "plain", segments=segments)), device="cpu")
    monkeypatch.setattr(render_module, "FrameSource", functools.partial(FrameSource, ahead=True))
    s = load_schedule(write_schedule(tmp_path / "ahead", segments=segments))
    done = []
    with pytest.raises(Interrupted, match="frames 0-5"):  # stops inside a part (checkpoint_every 4)
        render(s, device="cpu", callback=lambda p: p.event == "frame" and done.append(p.frame),
               should_stop=lambda: len(done) == 6)  # fmt: skip
    ahead_video = render(s, device="cpu")
    a, b = read_frames(plain_video), read_frames(ahead_video)
    assert probe_video(ahead_video)["frames"] == 10 and len(a) == len(b)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
