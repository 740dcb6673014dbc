"""Fuzzing the media dreamvid reads: images, audio, video clips, checkpoints (issue 22).

Each input is a tiny file made here (16x16 PNG and JPEG, a short WAV and FLAC, a 6-frame clip
made with the bundled ffmpeg, the checkpoints of a 5-frame 32x32 render), then truncated, bit-flipped,
overwritten, cut or padded. The property: the reader returns what it promises (an image in
[0, 1], per-frame audio features in [0, 1], the clip's frames) or raises dreamvid's one-line
error naming the file; never another exception, never longer than a bound, no output on the
terminal from the C libraries, no ffmpeg left running. A corrupt newest checkpoint makes a
render fall back to the previous one (the same video as an uninterrupted render); with every
checkpoint corrupt it refuses with one line. Budget and long run: tests/fuzzing.py.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import zlib

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from dreamvid import api
from dreamvid.core.errors import DreamvidError
from dreamvid.media.audio import features, probe_audio
from dreamvid.media.ffmpeg import ffmpeg_exe
from dreamvid.media.read import ClipReader, probe_clip, read_frames
from dreamvid.pixels.images import read_image
from dreamvid.rendering import checkpoint as ckpt
from dreamvid.rendering.workdir import list_checkpoints
from tests.fuzzing import (
    Hang,
    bounded,
    budget,
    check_one_line,
    check_refusal,
    count,
    fuzz,
    fuzz_item,  # noqa: F401 - an autouse fixture (Hypothesis statistics)
    listing,
)
from tests.procs import ffmpeg_children
from tests.test_fuzz_schedule import write_wav


@st.composite
def damaged(draw, original: bytes) -> bytes:
    """``original`` truncated, bit-flipped, overwritten, with bytes cut out or added."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "cut", "insert", "zero"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at:at + len(chunk)] = chunk
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            data[at:] = bytes(len(data) - at)
    return bytes(data)


def png_with_size(png: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims another size (its CRC fixed, so only the size is wrong)."""
    ihdr = png[12:29]  # b"IHDR" + 13 bytes
    body = ihdr[:4] + struct.pack(">II", width, height) + ihdr[12:]
    return png[:12] + body + struct.pack(">I", zlib.crc32(body)) + png[33:]


def jpeg_claiming(jpg: bytes, width: int, height: int) -> bytes:
    """A baseline JPEG whose frame header (SOF0) claims another size."""
    data = bytearray(jpg)
    struct.pack_into(">HH", data, data.find(b"\xff\xc0") + 5, height, width)
    return bytes(data)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """The undamaged originals, by name."""
    folder = tmp_path_factory.mktemp("media")
    rgb = np.dstack([*np.meshgrid(np.arange(16) * 16, np.arange(16) * 16), np.full((16, 16), 99)]).astype(np.uint8)
    out = {"png": cv2.imencode(".png", rgb)[1].tobytes(),
           "png16a": cv2.imencode(".png", np.dstack([rgb, rgb[:, :, :1]]).astype(np.uint16) * 257)[1].tobytes(),
           "jpg": cv2.imencode(".jpg", rgb)[1].tobytes()}
    write_wav(folder / "a.wav", seconds=0.3)
    out["wav"] = (folder / "a.wav").read_bytes()
    ff = [ffmpeg_exe(), "-v", "error", "-nostdin", "-y"]
    subprocess.run([*ff, "-i", folder / "a.wav", folder / "a.flac"], check=True)
    out["flac"] = (folder / "a.flac").read_bytes()
    for ext, codec in (("mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p"]), ("mkv", ["-c:v", "ffv1"])):
        subprocess.run([*ff, "-f", "lavfi", "-i", "testsrc=size=32x32:rate=10:duration=0.6", *codec,
                        folder / f"c.{ext}"], check=True)
        out[ext] = (folder / f"c.{ext}").read_bytes()
    return out


def test_damaged_inputs_are_damaged(media):
    """The originals decode (so a refusal below is the damage's doing)."""
    for kind in ("png", "png16a", "jpg"):
        assert cv2.imdecode(np.frombuffer(media[kind], np.uint8), cv2.IMREAD_UNCHANGED).shape[:2] == (16, 16)


def read_damaged(path, data, read, accept) -> None:
    """Write ``data`` to ``path`` and ``read(path)`` within the time bound: either a one-line
    error naming the file, or a result that ``accept`` checks; either way nothing new beside
    the file and no ffmpeg left running."""
    path.write_bytes(data)
    before = listing(path.parent)
    try:
        with bounded():
            got = read(path)
    except Hang:
        raise
    except BaseException as err:  # noqa: BLE001
        check_one_line(err, str(path))
    else:
        accept(got)
    assert listing(path.parent) == before
    assert ffmpeg_children() == []


# ------------------------------------------------------------------------------- images


def test_fuzz_images(media, tmp_path, capfd):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"input": "in.png", "size": [32, 32], "segments": [
        {"frames": 1, "layers": {"mixed0": 1}}]}))

    @budget(100)
    @given(st.sampled_from(["png", "png16a", "jpg"]).flatmap(lambda kind: damaged(media[kind])))
    @example(b"")
    @example(b"\x89PNG\r\n\x1a\n")
    @example(jpeg_claiming(media["jpg"], 20_000, 20_000))  # it decoded to 1.2 GB, then 4.8 GB as float32
    def images(data):
        count("images")
        path = tmp_path / "in.png"
        capfd.readouterr()

        def accept(img):
            assert img.dtype == np.float32 and img.ndim == 3 and img.shape[2] == 3
            assert 0.0 <= img.min() and img.max() <= 1.0

        read_damaged(path, data, read_image, accept)
        before = listing(tmp_path)
        try:
            with bounded():
                api.validate(str(tmp_path / "s.yaml"))
        except Hang:
            raise
        except BaseException as err:  # noqa: BLE001
            check_refusal(err, (str(path),))
        assert listing(tmp_path) == before
        assert capfd.readouterr().err == "", "a C library wrote to the terminal"

    fuzz(images)


def test_image_header_claiming_a_huge_size(media, tmp_path):
    """A PNG header that claims 100000x100000 pixels is refused in one line, not decoded."""
    path = tmp_path / "big.png"
    path.write_bytes(png_with_size(media["png"], 100_000, 100_000))
    with pytest.raises(DreamvidError, match="big.png: not a readable image"):
        read_image(path)


# -------------------------------------------------------------------------------- audio


def test_fuzz_audio(media, tmp_path):
    @budget(25)
    @given(st.sampled_from(["wav", "flac"]).flatmap(lambda kind: st.tuples(st.just(kind), damaged(media[kind]))))
    def audio(case):
        count("audio")
        kind, data = case

        def read(path):
            probe_audio(path)
            return features(path, 10.0, 5)

        def accept(got):
            for name, values in got.items():
                assert values.shape == (5,) and np.all((values >= 0) & (values <= 1)), name

        read_damaged(tmp_path / f"a.{kind}", data, read, accept)

    fuzz(audio)


# ---------------------------------------------------------------------------- video clips


def test_fuzz_video_clips(media, tmp_path):
    @budget(30)
    @given(st.sampled_from(["mp4", "mkv"]).flatmap(lambda kind: st.tuples(st.just(kind), damaged(media[kind]))))
    def video_clips(case):
        count("video_clips")
        kind, data = case

        def read(path):
            info = probe_clip(path)
            with ClipReader(info, (32, 32)) as reader:
                return info, list(reader)

        def accept(got):
            info, frames = got
            assert len(frames) == info.frames
            assert all(f.shape == (32, 32, 3) and 0 <= f.min() and f.max() <= 1 for f in frames)

        read_damaged(tmp_path / f"c.{kind}", data, read, accept)

    fuzz(video_clips)


# ---------------------------------------------------------------------------- checkpoints

TINY = {"input": "noise", "output": "out/v.mp4", "size": [32, 32], "fps": 10, "seed": 1, "checkpoint_every": 1,
        "precision": "fp32", "defaults": {"iterations": 1, "octaves": 1, "jitter": 2, "zoom": 1.05},
        "segments": [{"frames": 5, "layers": {"mixed0": 1.0}}]}  # fmt: skip


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, net):
    """A 32x32 render of 5 frames, its work folder kept (checkpoints 3 and 4), and its video."""
    folder = tmp_path_factory.mktemp("ckpt")
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(TINY))
    video = api.render(str(path), model=net, keep_parts=True, progress=False)
    work = folder / "out" / "v.mp4.parts"
    assert [p.name for p in list_checkpoints(work)] == ["ckpt-00000004.pt", "ckpt-00000003.pt"]
    saved = folder / "saved.parts"
    shutil.copytree(work, saved)
    reference = read_frames(video)
    shutil.rmtree(video.parent)
    return path, saved, reference


def rechecksummed(data: bytes) -> st.SearchStrategy:
    """A checkpoint whose payload is damaged but whose checksum matches it (as a writer bug or
    another dreamvid version could leave): the reader must not trust the payload either."""
    head = len(ckpt.MAGIC) + 65
    return damaged(data[head:]).map(lambda p: ckpt.MAGIC + hashlib.sha256(p).hexdigest().encode() + b"\n" + p)


def test_fuzz_checkpoint_files(rendered, tmp_path):
    _, saved, _ = rendered
    original = (saved / "ckpt-00000004.pt").read_bytes()

    @budget(150)
    @given(st.one_of(damaged(original), rechecksummed(original)))
    @example(original[: len(original) // 2])
    def checkpoint_files(data):
        count("checkpoint_files")
        path = tmp_path / "ckpt-00000004.pt"
        path.write_bytes(data)
        try:
            with bounded():
                checkpoint = ckpt.load(path)
        except Hang:
            raise
        except BaseException as err:  # noqa: BLE001
            check_one_line(err, str(path))
        else:
            assert isinstance(checkpoint, ckpt.Checkpoint) and isinstance(checkpoint.index, int)

    fuzz(checkpoint_files)


def test_fuzz_resume_from_damaged_checkpoints(rendered, net):
    """The newest checkpoint damaged: the render falls back to the previous one and makes the
    same video as an uninterrupted render. Both damaged: one line, nothing written."""
    path, saved, reference = rendered
    newest, previous = (saved / "ckpt-00000004.pt").read_bytes(), (saved / "ckpt-00000003.pt").read_bytes()
    work = path.parent / "out" / "v.mp4.parts"

    @budget(6)
    @given(damaged(newest), st.booleans(), damaged(previous))
    def resume_from_damaged_checkpoints(bad_newest, both, bad_previous):
        count("resume_from_damaged_checkpoints")
        shutil.rmtree(work.parent, ignore_errors=True)
        shutil.copytree(saved, work)
        (work / "ckpt-00000004.pt").write_bytes(bad_newest)
        if both:
            (work / "ckpt-00000003.pt").write_bytes(bad_previous)
        warnings = []
        try:
            with bounded(120):
                out = api.render(str(path), model=net, progress=False,
                                 callback=lambda p: p.event == "warning" and warnings.append(p.message))
        except Hang:
            raise
        except BaseException as err:  # noqa: BLE001
            check_one_line(err, str(work))
            assert both and "no usable checkpoint" in str(err), err
            assert not (work.parent / "v.mp4").exists()
        else:
            frames = read_frames(out)
            assert len(frames) == len(reference) and all(np.array_equal(a, b) for a, b in zip(frames, reference))
            assert bad_newest == newest or any("falling back to the previous checkpoint" in w for w in warnings)
            assert not both or bad_newest == newest or bad_previous == previous
        assert ffmpeg_children() == []

    fuzz(resume_from_damaged_checkpoints)
