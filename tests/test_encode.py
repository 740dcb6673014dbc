"""dreamvid.media.write (streaming frames into ffmpeg, atomic output, joining), read back with
dreamvid.media.read; dreamvid.media.ffmpeg (how every ffmpeg starts)."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import numpy as np
import pytest

from dreamvid.core.errors import DreamvidError
from dreamvid.media.ffmpeg import ffmpeg_exe
from dreamvid.media.read import probe_video, read_frames
from dreamvid.media.write import VideoWriter, join_videos, probe_codec
from tests.procs import ffmpeg_children

pytestmark = pytest.mark.timeout(60)

W, H, FPS = 64, 48, 24


def frames(n: int, w: int = W, h: int = H, seed: int = 0) -> list[np.ndarray]:
    """Distinct smooth frames: a solid colour plus a gradient that moves with the index."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        base = rng.integers(30, 200, size=3)
        ramp = (xx * 40 // w + yy * 20 // h + 3 * i)[..., None]
        out.append(np.clip(base + ramp, 0, 255).astype(np.uint8))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def write_video(path, frame_list, fps=FPS, **kw):
    h, w = frame_list[0].shape[:2]
    with VideoWriter(path, (w, h), fps, **kw) as writer:
        for f in frame_list:
            writer.write(f)
    assert writer.frames_written == len(frame_list)
    return path


def make_sine(path, seconds: float):
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=440:sample_rate=44100:duration={seconds}", str(path)], check=True)
    return path


def audio_seconds(path) -> float | None:
    """Duration of the first audio stream (decoded), None if there is none."""
    p = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:a:0?",
                        "-f", "null", "-progress", "pipe:1", "-nostats", "-"], capture_output=True, text=True)
    if not re.search(r"Stream #.*Audio:", p.stderr):
        return None
    return int(re.findall(r"^out_time_us=(\d+)", p.stdout, re.M)[-1]) / 1e6


@pytest.fixture(autouse=True)
def no_ffmpeg_left():
    yield
    assert ffmpeg_children() == []


def test_roundtrip_frames_size_fps(tmp_path):
    src = frames(12, 200, 90)  # 90 is not a multiple of 16: must not be padded/rescaled
    out = write_video(tmp_path / "v.mp4", src, fps=30)
    assert probe_video(out) == {"frames": 12, "size": (200, 90), "fps": 30.0}
    got = read_frames(out)
    assert len(got) == 12 and got[0].shape == (90, 200, 3) and got[0].dtype == np.uint8
    assert min(psnr(a, b) for a, b in zip(src, got)) > 30
    assert os.listdir(tmp_path) == ["v.mp4"]


def test_caller_may_reuse_its_buffer(tmp_path):
    src = frames(6)
    buf = np.empty_like(src[0])
    with VideoWriter(tmp_path / "v.mp4", (W, H), FPS, queue_size=8) as w:
        for f in src:
            buf[...] = f
            w.write(buf)  # queued, not yet encoded: the writer must have copied it
    assert min(psnr(a, b) for a, b in zip(src, read_frames(tmp_path / "v.mp4"))) > 30


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_exception_in_block_leaves_nothing(tmp_path, exc):
    path = tmp_path / "v.mp4"
    with pytest.raises(exc):
        with VideoWriter(path, (W, H), FPS) as w:
            for f in frames(5):
                w.write(f)
            assert len(ffmpeg_children()) == 1
            raise exc("boom")
    assert os.listdir(tmp_path) == []
    assert ffmpeg_children() == []
    w.abort()  # idempotent
    with pytest.raises(DreamvidError, match="aborted"):
        w.close()  # nothing was published: close must not pretend it was


def test_existing_file_untouched_by_abort_replaced_by_success(tmp_path):
    path = tmp_path / "v.mp4"
    path.write_bytes(b"old video")
    with pytest.raises(ValueError):
        with VideoWriter(path, (W, H), FPS) as w:
            w.write(frames(1)[0])
            raise ValueError
    assert path.read_bytes() == b"old video"
    assert os.listdir(tmp_path) == ["v.mp4"]
    write_video(path, frames(3))
    assert probe_video(path)["frames"] == 3
    assert os.listdir(tmp_path) == ["v.mp4"]


def test_bad_frames_and_sizes(tmp_path):
    path = tmp_path / "v.mp4"
    with pytest.raises(DreamvidError, match=r"48x64x3 uint8"):
        with VideoWriter(path, (W, H), FPS) as w:
            w.write(np.zeros((H, W + 2, 3), np.uint8))
    with pytest.raises(DreamvidError, match="uint8"):
        with VideoWriter(path, (W, H), FPS) as w:
            w.write(np.zeros((H, W, 3), np.float32))
    with pytest.raises(DreamvidError, match="even"):
        VideoWriter(path, (65, 48), FPS)
    with pytest.raises(DreamvidError, match="no frames"):
        with VideoWriter(path, (W, H), FPS):
            pass
    assert os.listdir(tmp_path) == []


def test_probe_codec():
    assert probe_codec("auto") in ("libx264", "h264_nvenc")
    assert probe_codec("auto") == probe_codec("auto")  # cached
    assert probe_codec("libx264") == "libx264"
    with pytest.raises(DreamvidError, match="libx264"):
        probe_codec("nonsense")


def test_ffmpeg_killed_mid_stream(tmp_path):
    path = tmp_path / "v.mp4"
    src = frames(4)
    with pytest.raises(DreamvidError) as info:
        with VideoWriter(path, (W, H), FPS, queue_size=2) as w:
            w.write(src[0])
            (pid,) = ffmpeg_children()
            os.kill(pid, signal.SIGKILL)
            for i in range(500):
                w.write(src[i % 4])
    msg = str(info.value)
    assert "\n" not in msg and "v.mp4" in msg and "ffmpeg" in msg and "SIGKILL" in msg
    assert os.listdir(tmp_path) == []
    with pytest.raises(DreamvidError):  # the failure sticks
        w.close()


def test_ffmpeg_error_is_reported(tmp_path):
    path = tmp_path / "v.mp4"
    with pytest.raises(DreamvidError, match=r"v\.mp4.*ffmpeg \(libx264\)") as info:
        with VideoWriter(path, (W, H), FPS, codec="libx264", extra_output_params=("-profile:v", "nonsense")) as w:
            for f in frames(3):
                w.write(f)
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_join_copies_parts_and_adds_audio(tmp_path):
    parts = [write_video(tmp_path / f"p{i}.mp4", frames(n, seed=i)) for i, n in enumerate((5, 7, 4))]
    expected = [f for p in parts for f in read_frames(p)]

    out = join_videos(parts, tmp_path / "all.mp4")
    assert probe_video(out) == {"frames": 16, "size": (W, H), "fps": float(FPS)}
    got = read_frames(out)
    assert len(got) == 16 and all(np.array_equal(a, b) for a, b in zip(expected, got))
    assert audio_seconds(out) is None

    for seconds in (3.0, 0.2):  # longer audio is cut, shorter is padded: video unchanged
        out = join_videos(parts, tmp_path / "all.mp4", audio=make_sine(tmp_path / "a.wav", seconds))
        assert probe_video(out)["frames"] == 16
        assert all(np.array_equal(a, b) for a, b in zip(expected, read_frames(out)))
        assert audio_seconds(out) == pytest.approx(16 / FPS, abs=0.08)
    assert sorted(os.listdir(tmp_path)) == ["a.wav", "all.mp4", "p0.mp4", "p1.mp4", "p2.mp4"]


def test_joined_parts_keep_the_frame_rate_when_the_last_part_is_short(tmp_path):
    """A short last part has fewer B-frames, so its encoder delays decoding less: without
    renumbering the decode timestamps the join left a hole, and 10 frames at 12 fps read back
    as 12 frames at 10 fps."""
    parts = [write_video(tmp_path / f"p{i}.mp4", frames(n, seed=i), fps=12) for i, n in enumerate((4, 4, 2))]
    expected = [f for p in parts for f in read_frames(p)]
    out = join_videos(parts, tmp_path / "all.mp4", durations=[n / 12 for n in (4, 4, 2)], fps=12)
    assert probe_video(out) == {"frames": 10, "size": (W, H), "fps": 12.0}
    got = read_frames(out)
    assert len(got) == 10 and all(np.array_equal(a, b) for a, b in zip(expected, got))


def test_writer_with_audio(tmp_path):
    wav = make_sine(tmp_path / "a.wav", 2.0)
    out = write_video(tmp_path / "v.mp4", frames(12), audio=wav)
    assert probe_video(out)["frames"] == 12
    assert audio_seconds(out) == pytest.approx(12 / FPS, abs=0.08)
    assert sorted(os.listdir(tmp_path)) == ["a.wav", "v.mp4"]


def test_join_and_probe_errors(tmp_path):
    with pytest.raises(DreamvidError, match="no video stream"):
        probe_video(make_sine(tmp_path / "a.wav", 0.2))
    (tmp_path / "a.wav").unlink()
    with pytest.raises(DreamvidError, match="missing.mp4"):
        join_videos([tmp_path / "missing.mp4"], tmp_path / "out.mp4")
    with pytest.raises(DreamvidError):
        join_videos([], tmp_path / "out.mp4")
    assert os.listdir(tmp_path) == []


def test_ffmpeg_starts_in_its_own_session_without_preexec_fn(tmp_path, monkeypatch):
    """Python code between fork and exec (``preexec_fn``) can deadlock a process with threads
    and forbids vfork; every ffmpeg is started without it, in a session of its own."""
    from dreamvid.media import ffmpeg

    calls, real = [], subprocess.Popen

    def popen(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ffmpeg.subprocess, "Popen", popen)
    out = write_video(tmp_path / "v.mp4", frames(3), codec="libx264")
    join_videos([out], tmp_path / "joined.mp4")
    assert probe_video(tmp_path / "joined.mp4")["frames"] == 3
    assert len(calls) >= 3  # the writer, the join, the probe
    assert all(k.get("preexec_fn") is None and k.get("start_new_session") for k in calls), calls


WRITER_THEN_SLEEP = """
import sys, time
import numpy as np
from dreamvid.media.write import VideoWriter
w = VideoWriter(sys.argv[1], (64, 48), 24, codec="libx264")
w.write(np.zeros((48, 64, 3), np.uint8))
print("writing", flush=True)
time.sleep(120)
"""


def test_a_sigkilled_writer_leaves_no_ffmpeg(tmp_path):
    """SIGKILL runs no cleanup in Python; ffmpeg must still go: its stdin pipe closes with the
    process, and ffmpeg exits on end-of-file."""
    import sys
    import time

    from tests.conftest import ENV

    proc = subprocess.Popen([sys.executable, "-c", WRITER_THEN_SLEEP, str(tmp_path / "v.mp4")],
                            stdout=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
    assert proc.stdout.readline().strip() == "writing"
    children = ffmpeg_children(proc.pid)
    assert len(children) == 1
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while [pid for pid in children if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in children if _alive(pid)], "ffmpeg outlived its SIGKILLed parent"
    assert not (tmp_path / "v.mp4").exists()  # only a temp file may be left (the next render removes it)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
