"""cadence: dream every k-th frame, crossfade the camera-moved dreams between (issue 29).

Small frames (64x48 or 96x64), one octave, one or two iterations: seconds each."""

from __future__ import annotations

import random
import signal
import time

import numpy as np
import pytest
import torch

import dreamvid
from dreamvid.media.read import read_frames
from dreamvid.rendering import checkpoint as ckpt
from dreamvid.rendering.cadence import Cadenced
from dreamvid.rendering.loop import Interrupted, render
from dreamvid.rendering.step import Dreamer
from dreamvid.rendering.workdir import list_checkpoints
from dreamvid.schedule import cadence
from dreamvid.schedule.schedule import load_schedule
from dreamvid.tools import timeline
from tests.conftest import run_cli, write_schedule
from tests.test_resume import same_video, start_render, wait_for_checkpoint

LOSSLESS = {"codec": "libx264rgb", "crf": 0, "pix_fmt": "rgb24"}  # decoded frames == the frames (test_api)
# cadence 3, then 2 from a segment that blends in over 3 frames: dreamed 0, 3, 6, 9 (frame 6's cadence is 3), 11
CHANGING = [{"frames": 7, "layers": {"mixed0": 1.0}, "cadence": 3},
            {"frames": 5, "layers": {"mixed1": 1.0}, "transition": 3, "cadence": 2}]  # fmt: skip
SMALL = {"size": [64, 48], "defaults": {"iterations": 1, "octaves": 1, "jitter": 4, "step": 0.02, "zoom": 1.05}}


def schedule_at(folder, segments, **top):
    return load_schedule(write_schedule(folder, segments=segments, **{**SMALL, **top}))


def test_the_plan_dreams_every_kth_frame_and_the_last_one(tmp_path):
    s = schedule_at(tmp_path, CHANGING)
    assert cadence.dreamed_frames(s) == [0, 3, 6, 9, 11]
    assert cadence.around(s, 4) == (3, 6) and cadence.around(s, 6) == (6, 6)
    assert cadence.reach(s, 10) == 11 and not cadence.is_dreamed(s, 10) and cadence.is_dreamed(s, 11)
    header, rows = timeline.params_table(s)
    assert [row[header.index("dreamed")] for row in rows] == [int(n in (0, 3, 6, 9, 11)) for n in range(12)]
    assert [row[header.index("cadence")] for row in rows] == [3] * 7 + [2] * 5
    t = timeline.timeline(s)
    assert list(t.dreamed) == [0, 3, 6, 9, 11] and "cadence (dots: dreamed)" in dict(timeline.extra_panels(t))
    assert timeline.timeline(schedule_at(tmp_path / "one", [{"frames": 4, "layers": {"mixed0": 1.0}}])).cadence is None


def test_the_last_frame_is_dreamed_and_its_digest_says_why(tmp_path):
    """11 frames at cadence 3: frame 10 is dreamed because it is the last; with 13 frames it is
    not, so a checkpoint of the shorter schedule at frame 10 must not serve the longer one."""
    short = schedule_at(tmp_path / "a", [{"frames": 11, "layers": {"mixed0": 1.0}, "cadence": 3}])
    longer = schedule_at(tmp_path / "b", [{"frames": 13, "layers": {"mixed0": 1.0}, "cadence": 3}])
    assert cadence.dreamed_frames(short) == [0, 3, 6, 9, 10] and cadence.dreamed_frames(longer)[-2:] == [9, 12]
    a, b = ckpt.frame_digests(short, 10), ckpt.frame_digests(longer, 10)
    assert a[:10] == b[:10] and a[10] != b[10]
    assert ckpt.checkpoint_digests(longer, 10) == ckpt.frame_digests(longer, 12)  # frame 10 reads frame 12


def test_cadence_1_is_the_plain_step_and_the_same_digests(tmp_path, net):
    """An older schedule (no key) and ``cadence: 1`` give the same parameters, checkpoint digests
    and, through the cadence module, bit for bit the frames of the plain step n-1 -> n."""
    segments = [{"frames": 5, "layers": {"mixed0": 1.0}}, {"frames": 4, "layers": {"mixed1": 1.0}, "transition": 2}]
    old = schedule_at(tmp_path / "old", segments)
    one = schedule_at(tmp_path / "one", [{**seg, "cadence": 1} for seg in segments])
    assert all(old.params(n) == one.params(n) for n in range(9))
    assert ckpt.frame_digests(old, 8) == ckpt.frame_digests(one, 8)
    plain, frame = Dreamer(old, net), None
    made, state = Cadenced(Dreamer(one, net)), None
    for n in range(9):
        frame = plain.first_frame() if n == 0 else plain.next_frame(frame, n)
        state = made.make(n, state)
        assert torch.equal(state.frame, frame), n
        assert state.kept is None  # every frame dreamed: checkpoints hold what they always held


def test_cadence_1_renders_byte_identical_frames_to_a_schedule_without_it(tmp_path, net):
    segments = [{"frames": 6, "layers": {"mixed0": 1.0}}]
    without = render(schedule_at(tmp_path / "a", segments, encoder=LOSSLESS), model=net)
    with_key = render(schedule_at(tmp_path / "b", [{**segments[0], "cadence": 1}], encoder=LOSSLESS), model=net)
    a, b = read_frames(without), read_frames(with_key)
    assert len(a) == 6 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_frames_between_two_dreams_are_their_crossfade_and_only_dreamed_frames_dream(tmp_path, net, monkeypatch):
    """With a still camera the warps are the identity: frame n = lerp(dream a, dream b, (n-a)/(b-a))."""
    s = schedule_at(tmp_path, [{"frames": 8, "layers": {"mixed0": 1.0}, "cadence": 3, "zoom": 1.0}])
    dreamer = Dreamer(s, net)
    dreamt = []
    step = dreamer.dream
    monkeypatch.setattr(dreamer, "dream", lambda moved, pull, n, p: dreamt.append(n) or step(moved, pull, n, p))
    made, state, frames = Cadenced(dreamer), None, []
    for n in range(8):
        state = made.make(n, state)
        frames.append(state.frame)
    assert dreamt == [3, 6, 7]  # frame 0 is the input; 7 is the last
    for n, (a, b) in {1: (0, 3), 2: (0, 3), 4: (3, 6), 5: (3, 6)}.items():
        assert torch.equal(frames[n], torch.lerp(frames[a], frames[b], (n - a) / (b - a))), n
    assert not torch.equal(frames[1], frames[2])


def test_frames_between_dreams_follow_the_camera(tmp_path, net):
    """With a zoom, an in-between frame is closer to its neighbours carried by the camera than
    to the neighbours as they are (the crossfade is of moved dreams, not of still ones)."""
    s = schedule_at(tmp_path, [{"frames": 5, "layers": {"mixed0": 1.0}, "cadence": 4, "zoom": 1.1}])
    dreamer = Dreamer(s, net)
    made, state, frames = Cadenced(dreamer), None, []
    for n in range(5):
        state = made.make(n, state)
        frames.append(state.frame)
    moved = dreamer.motion.carried(frames[0], 0, 2)
    assert (frames[2] - moved).abs().mean() < 0.5 * (frames[2] - frames[0]).abs().mean()


@pytest.mark.parametrize("start", ["photo", "noise"])
def test_cadence_steadies_the_video_its_warp_error_is_lower(tmp_path, net, start):
    """The warp error (``dreamvid stats --schedule``) of the frames at cadence 3 is below that
    at cadence 1: the frames between two dreams are crossfades of camera-moved dreams, not
    fresh dreams (docs/quality.md measures 0.57 -> 0.30 on a photo, 0.49 -> 0.32 on noise)."""
    from dreamvid.tools.warp_error import warp_errors

    errors = {}
    for k in (1, 3):
        s = schedule_at(tmp_path / f"k{k}", [{"frames": 10, "layers": {"mixed3": 1.0}, "cadence": k}],
                        input="in.png" if start == "photo" else "noise",  # in.png: the coffee photo
                        defaults={**SMALL["defaults"], "iterations": 2, "zoom": 1.03})  # fmt: skip
        errors[k] = float(np.mean(warp_errors(dreamvid.frames(s, model=net, progress=False), s)[1:]))
    print(f"{start}: warp error cadence 1 {errors[1]:.3g}, cadence 3 {errors[3]:.3g}")
    assert errors[3] < 0.8 * errors[1], errors


def test_a_lossless_render_equals_frames_and_preview_between_dreams(tmp_path, net):
    s = schedule_at(tmp_path, CHANGING, encoder=LOSSLESS)
    video = read_frames(render(s, model=net))
    ours = list(dreamvid.frames(s, model=net, progress=False))
    assert len(video) == 12 and all(np.array_equal(a, b) for a, b in zip(video, ours, strict=True))
    for n in (7, 10):  # between two dreams: in the transition, at cadence 2
        assert not cadence.is_dreamed(s, n)
        assert np.array_equal(dreamvid.preview(s, n, model=net, progress=False), video[n]), n


def test_a_stop_between_two_dreams_resumes_to_the_same_video(tmp_path, net):
    """A stop after frame 4 (between dreams 3 and 6): its checkpoint holds dream 3, the rerun
    dreams frame 6 again, and the video is the uninterrupted one; a preview resumes from it."""
    reference = read_frames(render(schedule_at(tmp_path / "ref", CHANGING, encoder=LOSSLESS), model=net))
    s = schedule_at(tmp_path / "run", CHANGING, encoder=LOSSLESS)
    done = []
    with pytest.raises(Interrupted, match="frames 0-4"):
        render(s, model=net, callback=lambda p: p.event == "frame" and done.append(p.frame),
               should_stop=lambda: len(done) == 5)  # fmt: skip
    saved = ckpt.load(list_checkpoints(tmp_path / "run" / "out" / "video.mp4.parts")[0])
    assert saved.index == 4 and saved.dreamed is not None and saved.dreamed[0] == 3
    events = []
    assert np.array_equal(dreamvid.preview(s, 5, model=net, callback=events.append), reference[5])
    assert any(e.event == "start" and e.start == 5 for e in events)  # from the checkpoint, not from frame 0
    video = read_frames(render(s, model=net))
    assert len(video) == 12 and all(np.array_equal(a, b) for a, b in zip(video, reference, strict=True))


def test_a_render_killed_anywhere_with_cadence_3_resumes_to_the_same_video(tmp_path):
    segments = [{**seg, "cadence": 3} for seg in CHANGING]
    folder = tmp_path / "reference"
    assert run_cli("render", write_schedule(folder, segments=segments, **SMALL), "--quiet").returncode == 0
    path = write_schedule(tmp_path / "run", segments=segments, **SMALL)
    work = tmp_path / "run" / "out" / "video.mp4.parts"
    proc = start_render(path)
    wait_for_checkpoint(work, proc)
    time.sleep(random.uniform(0.0, 0.6))  # a random moment after the first checkpoint (frame 3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    r = run_cli("render", path)
    assert r.returncode == 0, r.stderr
    assert same_video(tmp_path / "run" / "out" / "video.mp4", folder / "out" / "video.mp4")


def test_a_shorter_render_ends_between_dreams_and_a_longer_one_goes_on(tmp_path, net):
    """``--frames 5`` ends between dreams 3 and 6: it dreams frame 6 for its last frames, and the
    full render resumed from it is the uninterrupted one."""
    reference = read_frames(render(schedule_at(tmp_path / "ref", CHANGING, encoder=LOSSLESS), model=net))
    s = schedule_at(tmp_path / "run", CHANGING, encoder=LOSSLESS)
    short = read_frames(render(s, model=net, frames=5, keep_parts=True))
    assert len(short) == 5 and all(np.array_equal(a, b) for a, b in zip(short, reference[:5]))
    events = []
    video = read_frames(render(s, model=net, callback=events.append))
    assert any(e.event == "start" and e.start == 5 for e in events)
    assert all(np.array_equal(a, b) for a, b in zip(video, reference, strict=True))


def test_look_ahead_with_cadence_makes_the_same_video(tmp_path, net, monkeypatch):
    """CUDA's look-ahead (forced here on the CPU) makes frame n+1's state before frame n is
    handed over: with a cadence that can be a dream ahead; a stop between dreams drops it."""
    import functools

    from dreamvid.rendering import loop as render_module
    from dreamvid.rendering.framesource import FrameSource

    reference = read_frames(render(schedule_at(tmp_path / "ref", CHANGING, encoder=LOSSLESS), model=net))
    monkeypatch.setattr(render_module, "FrameSource", functools.partial(FrameSource, ahead=True))
    s = schedule_at(tmp_path / "ahead", CHANGING, encoder=LOSSLESS)
    done = []
    with pytest.raises(Interrupted, match="frames 0-7"):
        render(s, model=net, callback=lambda p: p.event == "frame" and done.append(p.frame),
               should_stop=lambda: len(done) == 8)  # fmt: skip
    video = read_frames(render(s, model=net))
    assert all(np.array_equal(a, b) for a, b in zip(video, reference, strict=True))


def test_the_estimate_counts_the_dreamed_frames_only(tmp_path, net, monkeypatch):
    """``validate --estimate`` times one dream and scales by the frames' costs: at cadence 3 only
    the dreamed frames cost (the clock is faked so the dream's time is the same in both)."""
    import itertools
    import types

    from dreamvid.rendering import estimate

    clock = itertools.count()
    monkeypatch.setattr(estimate, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))
    segments = [{"frames": 12, "layers": {"mixed0": 1.0}}]
    every = estimate.estimate(schedule_at(tmp_path / "a", segments), net)
    third = estimate.estimate(schedule_at(tmp_path / "b", [{**segments[0], "cadence": 3}]), net)
    assert every.frame_seconds == third.frame_seconds == 1.0
    assert every.seconds == pytest.approx(11.0) and third.seconds == pytest.approx(4.0)  # frames 3, 6, 9, 11
