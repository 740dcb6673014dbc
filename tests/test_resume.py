"""Resuming long renders: killed renders resume to the same video; bad checkpoints are caught."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from dreamvid.media.read import read_frames
from dreamvid.rendering.workdir import list_checkpoints
from tests.conftest import ENV, run_cli, run_here, write_schedule
from tests.procs import ffmpeg_children

SEGMENTS = [{"frames": 14, "layers": {"mixed0": 1.0}}, {"frames": 14, "layers": {"mixed3": 1.0}, "transition": 4}]
# one ascent step a frame: a resume must still give the dream's bits exactly (half the cost of two)
DEFAULTS = {"iterations": 1, "octaves": 1, "jitter": 8, "step": 0.02, "zoom": 1.05}


def same_video(a, b):
    fa, fb = read_frames(a), read_frames(b)
    return len(fa) == len(fb) and all(np.array_equal(x, y) for x, y in zip(fa, fb))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted render of the 28-frame schedule."""
    folder = tmp_path_factory.mktemp("reference")
    path = write_schedule(folder, segments=SEGMENTS, defaults=DEFAULTS)
    r = run_cli("render", path, "--quiet")
    assert r.returncode == 0, r.stderr
    return folder / "out" / "video.mp4"


def start_render(path, *extra):
    return subprocess.Popen([sys.executable, "-m", "dreamvid", "render", str(path), "--quiet", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip


def wait_for_checkpoint(work, proc, timeout=120):
    deadline = time.time() + timeout
    while not list(work.glob("ckpt-*.pt")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_render_resumes_to_the_same_video(tmp_path, reference, sig):
    path = write_schedule(tmp_path, segments=SEGMENTS, defaults=DEFAULTS)
    work = tmp_path / "out" / "video.mp4.parts"
    proc = start_render(path)
    wait_for_checkpoint(work, proc)
    time.sleep(random.uniform(0.0, 0.3))  # a random moment after the first checkpoint (the render runs 1.2-1.5 s past it)
    killed_during_render = proc.poll() is None
    children = ffmpeg_children(proc.pid)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if killed_during_render:
        assert proc.returncode == (-9 if sig == signal.SIGKILL else 130), err
    # the signal can land after the join renamed the whole video onto the output, before the
    # process exited: then the output is that whole video, never a part of it
    finished = (tmp_path / "out" / "video.mp4").exists()
    if finished:
        assert same_video(tmp_path / "out" / "video.mp4", reference)
    time.sleep(0.2)
    assert not [pid for pid in children if _alive(pid)], "ffmpeg outlived the render"

    r = run_cli("render", path)
    assert r.returncode == 0, r.stderr
    if killed_during_render and not finished:
        assert "resuming at frame" in r.stderr
    assert same_video(tmp_path / "out" / "video.mp4", reference)
    assert not work.exists()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path, reference):
    path = write_schedule(tmp_path, segments=SEGMENTS, defaults=DEFAULTS)
    assert run_cli("render", path, "--frames", "8", "--keep-parts", "--quiet").returncode == 0
    work = tmp_path / "out" / "video.mp4.parts"
    newest = work / "ckpt-00000007.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    r = run_cli("render", path)
    assert r.returncode == 0, r.stderr
    assert "ckpt-00000007.pt: checkpoint is truncated or corrupt" in r.stderr
    assert "resuming at frame 4 of 28" in r.stderr
    assert same_video(tmp_path / "out" / "video.mp4", reference)


def test_checkpoint_from_another_schedule_is_refused(tmp_path):
    a = write_schedule(tmp_path / "a", segments=SEGMENTS, defaults=DEFAULTS)
    assert run_here("render", a, "--frames", "5", "--keep-parts", "--quiet").returncode == 0
    b = write_schedule(tmp_path / "b", segments=SEGMENTS, defaults=DEFAULTS, seed=99)
    shutil.copytree(tmp_path / "a" / "out", tmp_path / "b" / "out")
    work = tmp_path / "b" / "out" / "video.mp4.parts"
    before = {p.name: p.read_bytes() for p in work.iterdir() if p.name != "lock"}  # the lock names its holder
    r = run_here("render", b)
    assert r.returncode == 2
    msg = r.stderr.strip()
    assert len(msg.splitlines()) == 1 and "Traceback" not in msg
    assert "belongs to another schedule (seed changed (3 -> 99))" in msg and "--fresh" in msg
    assert {p.name: p.read_bytes() for p in work.iterdir() if p.name != "lock"} == before  # nothing overwritten
    assert (tmp_path / "b" / "out" / "video.mp4").read_bytes() == (tmp_path / "a" / "out" / "video.mp4").read_bytes()
    assert run_here("render", b, "--fresh", "--quiet").returncode == 0
    assert not work.exists()


def test_changed_input_image_is_detected(tmp_path):
    import cv2

    path = write_schedule(tmp_path, segments=SEGMENTS, defaults=DEFAULTS)
    assert run_here("render", path, "--frames", "5", "--keep-parts", "--quiet").returncode == 0
    img = cv2.imread(str(tmp_path / "in.png"))
    cv2.imwrite(str(tmp_path / "in.png"), 255 - img)
    r = run_here("render", path)
    assert r.returncode == 2
    assert "the input file's content changed" in r.stderr and "--fresh" in r.stderr


def test_appending_a_segment_renders_only_the_new_frames(tmp_path):
    path = write_schedule(tmp_path, segments=SEGMENTS, defaults=DEFAULTS)
    assert run_here("render", path, "--keep-parts", "--quiet").returncode == 0
    first = read_frames(tmp_path / "out" / "video.mp4")
    data = yaml.safe_load(path.read_text())
    data["segments"].append({"frames": 4, "layers": {"mixed2": 1.0}, "transition": 2})
    path.write_text(yaml.safe_dump(data))
    r = run_here("render", path, "--keep-parts")
    assert r.returncode == 0, r.stderr
    assert "resuming at frame 28 of 32" in r.stderr
    frames = read_frames(tmp_path / "out" / "video.mp4")
    assert len(frames) == 32
    assert all(np.array_equal(x, y) for x, y in zip(frames, first))
    # the same as rendering the longer schedule from scratch
    full = write_schedule(tmp_path / "full", segments=data["segments"], defaults=DEFAULTS)
    assert run_here("render", full, "--quiet").returncode == 0
    assert same_video(tmp_path / "full" / "out" / "video.mp4", tmp_path / "out" / "video.mp4")


def test_preview_starts_from_a_checkpoint(tmp_path):
    import cv2

    path = write_schedule(tmp_path, segments=SEGMENTS, defaults=DEFAULTS)
    assert run_here("render", path, "--frames", "12", "--keep-parts", "--quiet").returncode == 0
    r = run_here("preview", path, "--frame", "13", "-o", tmp_path / "from_checkpoint.png")
    assert r.returncode == 0, r.stderr
    assert "resuming at frame 12" in r.stderr
    shutil.rmtree(tmp_path / "out")
    r = run_here("preview", path, "--frame", "13", "-o", tmp_path / "from_start.png")
    assert r.returncode == 0 and "resuming" not in r.stderr
    a, b = (cv2.imread(str(tmp_path / f)) for f in ("from_checkpoint.png", "from_start.png"))
    assert np.array_equal(a, b)


def test_resuming_with_another_thread_count_warns(tmp_path, monkeypatch):
    """The CPU thread count changes a frame's last bits, so a checkpoint records it and a resume
    with another count says the video may differ (and how to match it)."""
    import torch

    from dreamvid.rendering.loop import render
    from dreamvid.schedule.schedule import load_schedule

    s = load_schedule(write_schedule(tmp_path, segments=[{"frames": 8, "layers": {"mixed0": 1.0}}]))
    render(s, device="cpu", frames=4, keep_parts=True)  # checkpoint at frame 3, parts kept
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads + 1)
    warnings = []
    render(s, device="cpu", frames=8, callback=lambda p: p.event == "warning" and warnings.append(p.message))
    assert len(warnings) == 1
    assert f"threads {threads} -> {threads + 1}" in warnings[0] and f"OMP_NUM_THREADS={threads}" in warnings[0]
    assert len(read_frames(tmp_path / "out" / "video.mp4")) == 8


def test_a_second_render_into_the_same_work_folder_is_refused(tmp_path, monkeypatch):
    """While one render holds the work folder, another waits (a bound, shortened here), then
    stops with a one-line error naming it (and touches nothing); once the first is gone the
    folder is free again."""
    from dreamvid.core.errors import InputError
    from dreamvid.rendering import lease
    from dreamvid.rendering.lease import exclusive
    from dreamvid.rendering.loop import render
    from dreamvid.rendering.workdir import work_dir
    from dreamvid.schedule.schedule import load_schedule

    s = load_schedule(write_schedule(tmp_path, segments=[{"frames": 2, "layers": {"mixed0": 1.0}}]))
    work = work_dir(s.output_path.absolute())
    work.mkdir(parents=True)
    monkeypatch.setattr(lease, "WAIT_S", 0.5)
    with exclusive(work):  # another render (its own lease) holds the folder
        with pytest.raises(InputError, match=f"another dreamvid \\(pid {os.getpid()} on [^)]+\\) is rendering"):
            render(s, device="cpu")
        assert sorted(p.name for p in work.iterdir()) == ["lock"]
    assert render(s, device="cpu").is_file()


# ------------------------------------------------------- stops, shorter reruns, settings (issue 17)

STOP_SEGMENTS = [{"frames": 10, "layers": {"mixed0": 1.0}}]
STOP_TOP = {"size": [64, 64], "checkpoint_every": 4,
            "defaults": {"iterations": 1, "octaves": 1, "jitter": 4, "step": 0.02, "zoom": 1.05}}  # fmt: skip


def _stopped_after(s, net, last):
    """Render ``s`` and ask it to stop once frame ``last`` is done (as Ctrl-C would)."""
    from dreamvid.rendering.loop import Interrupted, render

    done = []
    with pytest.raises(Interrupted, match=f"frames 0-{last} of"):
        render(s, model=net, callback=lambda p: p.event == "frame" and done.append(p.frame),
               should_stop=lambda: bool(done) and done[-1] > last)  # fmt: skip


@pytest.fixture(scope="module")
def short_references(tmp_path_factory, net):
    """Uninterrupted renders of the first 5, 6 and 10 frames of the stop schedule."""
    from dreamvid.rendering.loop import render
    from dreamvid.schedule.schedule import load_schedule

    folder = tmp_path_factory.mktemp("short")
    s = load_schedule(write_schedule(folder, segments=STOP_SEGMENTS, **STOP_TOP))
    return {n: render(s, model=net, frames=n, output=folder / f"ref{n}.mp4") for n in (5, 6, 10)}


def test_frames_saved_at_a_stop_are_used_by_a_rerun_that_ends_there(tmp_path, net, short_references):
    """Stopped after frame 5 (part 0-3 closed, frames 4-5 saved at the stop): a rerun of the
    first 6 frames holds all 6 and equals an uninterrupted 6-frame render."""
    from dreamvid.rendering.loop import render
    from dreamvid.schedule.schedule import load_schedule

    s = load_schedule(write_schedule(tmp_path, segments=STOP_SEGMENTS, **STOP_TOP))
    _stopped_after(s, net, 5)
    out = render(s, model=net, frames=6)
    assert same_video(out, short_references[6])
    assert not (tmp_path / "out" / "video.mp4.parts").exists()  # it held nothing beyond frame 5


def test_a_rerun_shorter_than_the_saved_frames_loses_none_of_them(tmp_path, net, short_references):
    """Stopped after frame 5, rerun for 5 frames: the video is the 5-frame one, the work
    folder keeps frame 5 (the output lacks it), and a full rerun resumes after frame 5."""
    from dreamvid.rendering import checkpoint as ckpt
    from dreamvid.rendering.loop import render
    from dreamvid.schedule.schedule import load_schedule

    s = load_schedule(write_schedule(tmp_path, segments=STOP_SEGMENTS, **STOP_TOP))
    _stopped_after(s, net, 5)
    work = tmp_path / "out" / "video.mp4.parts"
    before = {p.name: p.read_bytes() for p in work.iterdir() if p.name not in ("lock", "lease")}
    warnings = []
    out = render(s, model=net, frames=5, callback=lambda p: p.event == "warning" and warnings.append(p.message))
    assert same_video(out, short_references[5])
    assert {p.name: p.read_bytes() for p in work.iterdir() if p.name not in ("lock", "lease")} == before
    assert ckpt.load(list_checkpoints(work)[0]).index == 5
    assert any("frames 0-5" in w and str(work) in w for w in warnings), warnings
    starts = []
    out = render(s, model=net, callback=lambda p: p.event == "start" and starts.append(p.start))
    assert starts == [6]
    assert same_video(out, short_references[10])
    assert not work.exists()


def test_a_stop_checkpoint_refers_to_the_frames_on_disk(tmp_path, net):
    """The open part's frames go to the work folder as they are made (lossless), not into
    RAM until a stop: a stop checkpoint's size does not grow with the frames it saves."""
    from dreamvid.rendering import checkpoint as ckpt
    from dreamvid.schedule.schedule import load_schedule

    sizes = {}
    for last in (1, 7):
        folder = tmp_path / str(last)
        s = load_schedule(write_schedule(folder, segments=STOP_SEGMENTS, **{**STOP_TOP, "checkpoint_every": 100}))
        _stopped_after(s, net, last)
        (path,) = list_checkpoints(folder / "out" / "video.mp4.parts")
        sizes[last] = path.stat().st_size
        assert len(ckpt.load(path).pending) == last + 1
    assert abs(sizes[7] - sizes[1]) < 1024, sizes  # 6 more frames, next to no more bytes


@pytest.mark.parametrize("change", [{"checkpoint_every": 2}, {"tile": 128}])
def test_changing_what_shapes_the_video_refuses_the_checkpoints(tmp_path, net, change):
    """Part boundaries (checkpoint_every) and tiling (tile) change the video's bits: a resume
    after changing them would not give the same video, so it is refused in one line."""
    from dreamvid.rendering.loop import ScheduleChanged, render
    from dreamvid.schedule.schedule import load_schedule

    path = write_schedule(tmp_path, segments=STOP_SEGMENTS, **STOP_TOP)
    render(load_schedule(path), model=net, frames=4, keep_parts=True)
    path = write_schedule(tmp_path, segments=STOP_SEGMENTS, **{**STOP_TOP, **change})
    (key,) = change
    with pytest.raises(ScheduleChanged) as err:
        render(load_schedule(path), model=net)
    msg = str(err.value)
    assert "\n" not in msg and f"belongs to another schedule ({key} changed" in msg and "--fresh" in msg


# ------------------------------------------------------------ the work folder's lease (issue 17)

HOLD_LEASE = """
import sys, time
from pathlib import Path
from dreamvid.rendering.lease import exclusive
with exclusive(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold_lease(work, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, str(work), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env=ENV)  # fmt: skip
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_lease_whose_heartbeat_stopped_is_taken_over(tmp_path):
    """A node that died (no process here to ask) leaves a lease behind: one with an old
    heartbeat is taken over at once, one that stops changing once it has been still for the
    stale bound. The pid stays the lease's first word."""
    from dreamvid.rendering import lease

    work = tmp_path / "w.mp4.parts"
    work.mkdir()
    (work / "lock").write_text(lease.lease_line(4242, "lost-node", "boot", time.time() - 3600, "old"))
    t0 = time.monotonic()
    with lease.exclusive(work, wait=5, stale=60):
        assert time.monotonic() - t0 < 2
        assert (work / "lock").read_text().split()[0] == str(os.getpid())
    assert not (work / "lock").exists()

    (work / "lock").write_text(lease.lease_line(4242, "lost-node", "boot", time.time(), "fresh-then-dead"))
    t0 = time.monotonic()
    with lease.exclusive(work, wait=10, stale=1.5):
        waited = time.monotonic() - t0
    assert 1.5 <= waited < 5, waited


def test_a_live_lease_is_waited_for_then_refused(tmp_path):
    """A lease whose holder heartbeats is waited for, within a bound, then refused in one line;
    once the holder is gone it is free. A killed holder on this machine frees it at once."""
    from dreamvid.rendering import lease

    work = tmp_path / "w.mp4.parts"
    work.mkdir()
    holder = _hold_lease(work, 60)
    try:
        waits = []
        t0 = time.monotonic()
        with pytest.raises(lease.InputError) as err:
            with lease.exclusive(work, wait=1.0, on_wait=waits.append):
                pass
        assert time.monotonic() - t0 >= 1.0
        msg = str(err.value)
        assert "\n" not in msg and f"another dreamvid (pid {holder.pid}" in msg and "-o" in msg
        assert len(waits) == 1 and str(holder.pid) in waits[0]
    finally:
        holder.kill()
        holder.wait()
    t0 = time.monotonic()
    with lease.exclusive(work, wait=30):  # the holder was SIGKILLed: its pid is gone, no stale bound to wait
        assert time.monotonic() - t0 < 2
