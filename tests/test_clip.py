"""dreamvid.media.read: probing a video input and streaming its frames, fitted, from any frame."""

from __future__ import annotations

import gc
import subprocess
from fractions import Fraction

import cv2
import numpy as np
import pytest
import skimage.data

from dreamvid.core.errors import DreamvidError, InputError
from dreamvid.media.ffmpeg import ffmpeg_exe
from dreamvid.media.read import ClipReader, is_clip, probe_clip
from dreamvid.media.write import VideoWriter
from dreamvid.pixels.images import fit
from tests.procs import ffmpeg_children

pytestmark = pytest.mark.timeout(120)

W, H = 64, 48


def pan_frames(n: int, speed: int = 3) -> list[np.ndarray]:
    """A photo panned right ``speed`` px per frame, HxWx3 uint8."""
    big = (fit(skimage.data.coffee().astype(np.float32) / 255, (W + speed * n, H)) * 255).round().astype(np.uint8)
    return [big[:, speed * (n - i) : speed * (n - i) + W].copy() for i in range(n)]


def write_clip(path, frames, fps=Fraction(30000, 1001), audio=None):
    with VideoWriter(path, frames[0].shape[1::-1], fps, codec="libx264", crf=12, preset="veryfast", audio=audio) as w:
        for f in frames:
            w.write(f)
    return path


def ffmpeg(*args):
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


@pytest.fixture(autouse=True)
def no_ffmpeg_left():
    yield
    gc.collect()
    assert ffmpeg_children() == []


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 panned frames at 30000/1001 fps with a sine sound track; (path, source frames)."""
    folder = tmp_path_factory.mktemp("clip")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", folder / "sine.wav")
    src = pan_frames(12)
    return write_clip(folder / "pan.mp4", src, audio=folder / "sine.wav"), src


def nearest(frame: np.ndarray, sources: list[np.ndarray]) -> int:
    return int(np.argmin([np.abs(frame * 255 - s).mean() for s in sources]))


def test_probe_counts_rate_size_audio(clip, tmp_path):
    path, src = clip
    info = probe_clip(path)
    assert (info.frames, info.size, info.fps, info.has_audio) == (12, (W, H), Fraction(30000, 1001), True)
    assert not info.variable_rate and info.warning is None and info.duration == pytest.approx(12 * 1.001 / 30)
    silent = write_clip(tmp_path / "silent.mkv", src[:5], fps=12)  # container by content: name it .dat
    silent = silent.rename(tmp_path / "silent.dat")
    info = probe_clip(silent)
    assert (info.frames, info.fps, info.has_audio, info.format) == (5, Fraction(12), False, "matroska,webm")
    assert is_clip(silent) and is_clip(path)


def test_reader_from_k_equals_reading_from_0_and_skipping(clip):
    path, src = clip
    info = probe_clip(path)
    with ClipReader(info) as reader:
        full = [f.copy() for f in reader]
    assert len(full) == 12 and full[0].shape == (H, W, 3) and full[0].dtype == np.float32
    assert [nearest(f, src) for f in full] == list(range(12))  # the right frames, in order
    # close to its source (yuv420p costs ~5 levels on 64x48), far from the neighbours (~27 levels)
    assert max(np.abs(f * 255 - s).mean() for f, s in zip(full, src)) < 8
    for k in (1, 5, 11, 12):
        with ClipReader(info, start=k) as reader:
            assert reader.position == k
            rest = list(reader)
            assert reader.position == 12
        assert len(rest) == 12 - k and all(np.array_equal(a, b) for a, b in zip(rest, full[k:]))


def test_frames_are_fitted_as_images_are(clip):
    path, _ = clip
    info = probe_clip(path)
    with ClipReader(info) as reader:
        native = list(reader)
    for size in ((40, 40), (100, 50), (W, H)):
        with ClipReader(info, size, start=3) as reader:
            got = list(reader)
        assert got[0].shape == (size[1], size[0], 3)
        assert all(np.array_equal(g, fit(n, size)) for g, n in zip(got, native[3:]))


def test_variable_frame_rate_is_resampled_to_the_average(tmp_path):
    path = tmp_path / "vfr.mp4"  # 10 frames at 30 fps, then 10 at 15 fps: 20 frames over 1 s
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={W}x{H}:r=30", "-vf", "setpts='if(lt(N,10),N/30,10/30+(N-10)/15)/TB'",
           "-frames:v", 20, "-fps_mode", "passthrough", "-c:v", "libx264", path)
    info = probe_clip(path)
    assert info.variable_rate and info.source_frames == 20 and info.fps == Fraction(20)
    with ClipReader(info) as reader:
        full = list(reader)
    assert len(full) == info.frames == 20  # resampled at 20 fps over the 1 s span
    with ClipReader(info, start=7) as reader:
        assert all(np.array_equal(a, b) for a, b in zip(reader, full[7:]))


def test_rotated_clip_has_its_displayed_size(clip, tmp_path):
    path = tmp_path / "rot.mov"
    ffmpeg("-display_rotation", 90, "-i", clip[0], "-c", "copy", path)
    info = probe_clip(path)
    assert info.size == (H, W)
    with ClipReader(info) as reader:
        assert next(reader).shape == (W, H, 3)


def one_line_input_error(path, looks_like_clip: bool = False) -> str:
    with pytest.raises(InputError) as err:
        probe_clip(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ") and "expected a video file" in msg
    assert is_clip(path) is looks_like_clip  # is_clip reads the header only
    return msg


def test_files_that_are_no_video(tmp_path):
    (tmp_path / "notes.mp4").write_text("hello, not a video\n")
    assert "not a video" in one_line_input_error(tmp_path / "notes.mp4")
    (tmp_path / "photo.mp4").write_bytes(cv2.imencode(".png", skimage.data.coffee()[::8, ::8])[1].tobytes())
    assert "still image" in one_line_input_error(tmp_path / "photo.mp4")
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", tmp_path / "sound.mp4")
    assert "audio file" in one_line_input_error(tmp_path / "sound.mp4")
    assert "not found" in one_line_input_error(tmp_path / "missing.mp4")
    assert "not a file" in one_line_input_error(tmp_path)
    empty = tmp_path / "empty.avi"  # a video stream whose every packet was dropped: 0 frames
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={W}x{H}", "-frames:v", 3, "-c:v", "mpeg4", "-bsf:v", "noise=drop=1", empty)
    assert "no frames" in one_line_input_error(empty, looks_like_clip=True)


def test_clip_that_breaks_off_mid_stream(tmp_path):
    path = write_clip(tmp_path / "long.mp4", pan_frames(40))  # +faststart: the index comes first
    info = probe_clip(path)
    assert info.frames == 40
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut after probing, as a file changed under a render
    got = 0
    with pytest.raises(DreamvidError) as err:
        with ClipReader(info, (32, 24)) as reader:
            for _ in reader:
                got += 1
    msg = str(err.value)
    assert type(err.value) is DreamvidError and err.value.exit_code == 1 and "\n" not in msg
    assert msg.startswith(f"{path}: the video breaks off at frame {got} of 40")
    assert 0 < got < 40
    damaged = probe_clip(path)  # probing the cut file: the frames that decode, and why it stopped
    assert damaged.frames < 40 and damaged.warning


def test_no_ffmpeg_outlives_a_reader(clip):
    path, _ = clip
    info = probe_clip(path)
    with ClipReader(info) as reader:  # left early
        next(reader)
        assert len(ffmpeg_children()) == 1
    assert ffmpeg_children() == []
    with pytest.raises(KeyError):  # an exception in the block
        with ClipReader(info, (32, 32)) as reader:
            next(reader)
            raise KeyError("boom")
    assert ffmpeg_children() == []
    reader = ClipReader(info, start=2)  # dropped without close
    next(reader)
    del reader
    gc.collect()
    assert ffmpeg_children() == []
    reader = ClipReader(info, start=10)  # read to the end: closed by itself
    assert len(list(reader)) == 2 and ffmpeg_children() == []
    with ClipReader(info, start=12) as reader:  # nothing left: no ffmpeg started
        assert ffmpeg_children() == [] and list(reader) == []


def test_start_out_of_range(clip):
    info = probe_clip(clip[0])
    for bad in (-1, 13):
        with pytest.raises(InputError, match=r"cannot start at frame .*; expected 0 .. 12 \(the clip has 12 frames\)"):
            ClipReader(info, start=bad)
