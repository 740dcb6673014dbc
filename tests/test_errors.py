"""Every bad input gets a one-line error, every fault is survived, nothing is lost (issue 7).

One table of cases, one test. Each case builds its files (and fakes) in a fresh folder and
returns the ``dreamvid`` arguments; the test runs them and checks:

* the exit status (2 bad input, 1 runtime failure, 130 interrupted, 0 where dreamvid copes);
* on failure, stderr holds exactly one ``dreamvid: error:`` line, no traceback, and that line
  names the offending key, file or resource;
* after a render failed: no file at the output path, no temp files, no ffmpeg left running,
  and the checkpoint the case expects still loads.

Cases run in-process through ``dreamvid.cli.main`` (a process start costs seconds) with
real faults where possible: a fake ffmpeg binary (IMAGEIO_FFMPEG_EXE), RLIMIT_FSIZE, fsync
failing with ENOSPC; NaN and out-of-memory are faked with monkeypatch. SIGTERM needs a real
process: ``python -m dreamvid``.
docs/errors.md lists the same errors for users.
"""

from __future__ import annotations

import errno
import functools
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from dreamvid import api, cli
from dreamvid.media import write
from dreamvid.media.ffmpeg import ffmpeg_exe
from dreamvid.media.read import probe_video
from dreamvid.pixels.images import fit, read_image
from dreamvid.rendering import checkpoint as ckpt
from dreamvid.rendering import loop as render_mod
from dreamvid.rendering import step as step_mod
from dreamvid.rendering.workdir import list_checkpoints
from dreamvid.schedule import schedule as schedule_mod
from tests.conftest import ENV, pan_clip, write_schedule, write_video_schedule
from tests.docs_examples import error_rows, matches_doc
from tests.procs import ffmpeg_children

OUT = Path("out/video.mp4")  # write_schedule's output, relative to the case folder


@dataclass
class Ctx:
    """A case's folder and fakes; ``setup`` fills it in."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    net: torch.nn.Module
    fsize_limit: int | None = None  # RLIMIT_FSIZE (soft) while the command runs
    sigterm: bool = False  # subprocess cases: SIGTERM once the first checkpoint exists
    tiles: list | None = None  # out-of-memory cases: the tile setting of each dream() call
    output: Path | None = None  # where a render would write (checked after failures)

    def schedule(self, segments=None, **top) -> Path:
        self.output = self.output or self.tmp / OUT
        return write_schedule(self.tmp, segments=segments, **top)

    def raw(self, text: str) -> Path:
        path = self.tmp / "raw.yaml"
        path.write_text(text)
        return path

    def good_text(self) -> str:
        return self.schedule().read_text()

    def cached_model(self) -> None:
        """In-process renders reuse the session's network: loading it is not under test."""
        self.monkeypatch.setattr(render_mod, "shared_model", lambda *a, **k: self.net)


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Ctx], list]  # builds the case, returns the CLI arguments
    code: int  # expected exit status
    names: tuple[str, ...] = ()  # what the error line must name (key, file, resource, cause)
    kept: int | None = None  # checkpoint frame that must survive the failure (-1: any one)
    subprocess: bool = False
    check: Callable[[Ctx], None] | None = None  # more assertions (cases that succeed)


def seg(**over) -> list[dict]:
    """write_schedule's two segments with the first one changed."""
    return [{"frames": 6, "layers": {"mixed0": 1.0}, **over}, {"frames": 6, "layers": {"mixed3": 1.0}}]


def validate(**top):
    return lambda c: ["validate", c.schedule(**top)]


def validate_segment(**over):
    return lambda c: ["validate", c.schedule(segments=seg(**over))]


def validate_text(make: Callable[[Ctx], str]):
    return lambda c: ["validate", c.raw(make(c))]


def render_args(c: Ctx, *extra, schedule: Path | None = None) -> list:
    return ["render", "--quiet", schedule or c.schedule(), *extra]


# ----------------------------------------------------------------------------- files


def _coffee() -> np.ndarray:
    return skimage.data.coffee()[::4, ::4]  # RGB uint8, 100x150


def image_file(kind: str):
    def make(c: Ctx) -> list:
        path = c.tmp / f"{kind}.png"
        rgb = _coffee()
        if kind == "gray":
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        elif kind == "rgba":  # left half transparent: it must come out white
            bgra = np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 255, np.uint8)])
            bgra[:, : rgb.shape[1] // 2, 3] = 0
            cv2.imwrite(str(path), bgra)
        elif kind == "16bit":
            cv2.imwrite(str(path), rgb[:, :, ::-1].astype(np.uint16) * 257)
        elif kind == "text":
            path.write_text("this is not a picture\n")
        elif kind == "truncated":
            ok, buf = cv2.imencode(".png", rgb[:, :, ::-1])
            path.write_bytes(buf.tobytes()[: buf.size // 2])
        c.schedule(input=path.name)
        return ["validate" if kind in ("text", "truncated") else "preview", c.tmp / "s.yaml",
                *([] if kind in ("text", "truncated") else ["--frame", "0", "-o", c.tmp / "f0.png", "--quiet"])]

    return make


def frame0(c: Ctx) -> np.ndarray:
    return (read_image(c.tmp / "f0.png") * 255).round().astype(np.uint8)


def check_gray(c: Ctx) -> None:
    img = frame0(c).astype(int)
    assert np.abs(img[..., 0] - img[..., 1]).max() <= 1 and np.abs(img[..., 1] - img[..., 2]).max() <= 1
    assert img.std() > 10  # a picture, not a flat fill


def check_rgba(c: Ctx) -> None:
    img = frame0(c)
    assert img[:, :10].min() >= 250  # transparent -> white
    assert img[:, -10:].mean() < 200  # opaque part keeps the photo


def check_16bit(c: Ctx) -> None:
    cv2.imwrite(str(c.tmp / "8bit.png"), _coffee()[:, :, ::-1])
    expected = (fit(read_image(c.tmp / "8bit.png"), (96, 64)) * 255).round()
    assert np.abs(frame0(c).astype(float) - expected).max() <= 1


def render_to_new_folder(c: Ctx) -> list:
    c.cached_model()
    c.output = c.tmp / "new" / "deeper" / "v.mp4"
    return [*render_args(c, "-o", c.output), "--frames", "2"]


def check_new_folder(c: Ctx) -> None:
    assert probe_video(c.output)["frames"] == 2
    assert [p.name for p in c.output.parent.iterdir()] == ["v.mp4"]  # work folder removed


def output_under_a_file(c: Ctx) -> list:
    (c.tmp / "afile").write_text("x")
    c.output = c.tmp / "afile" / "v.mp4"
    return render_args(c, "-o", c.output)


def audio(kind: str, command: str = "validate"):
    def make(c: Ctx) -> list:
        if kind == "garbage":
            (c.tmp / "a.wav").write_bytes(b"RIFF\x00\x00garbage" * 50)
        elif kind == "no-stream":
            (c.tmp / "a.wav").write_bytes(cv2.imencode(".png", _coffee())[1].tobytes())  # a PNG: no audio stream
        path = c.schedule(audio="a.wav")
        if kind == "missing":
            (c.tmp / "a.wav").unlink(missing_ok=True)
        return render_args(c, schedule=path) if command == "render" else ["validate", path]

    return make


def picture_key(key: str, kind: str, command: str = "validate"):
    """A guide (in segments[0]) or a mask that is missing or not an image."""
    def make(c: Ctx) -> list:
        if kind == "text":
            (c.tmp / "p.png").write_text("this is not a picture\n")
        if key == "guide":
            path = c.schedule(segments=seg(guide="p.png"))
        else:
            path = c.schedule(mask="p.png")
        return render_args(c, schedule=path) if command == "render" else ["validate", path]

    return make


# ----------------------------------------------------------------------- video input


def clip_case(kind: str, command: str = "validate", frames: int = 12, **top):
    """A schedule of ``frames`` frames over a clip ``kind``: pan (8 frames), sound (8, with a
    tone), garbage (text named .mp4), empty (a video stream with 0 frames), vfr (20 frames,
    unevenly spaced)."""

    def make(c: Ctx) -> list:
        clip = c.tmp / ("clip.avi" if kind == "empty" else "clip.mp4")
        if kind in ("pan", "sound"):
            pan_clip(clip, frames=8, sound=kind == "sound")
        elif kind == "garbage":
            clip.write_text("this is no video\n")
        elif kind == "empty":  # every packet dropped: a video stream with no frames
            _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x48", "-frames:v", 3, "-c:v", "mpeg4", "-bsf:v",
                    "noise=drop=1", clip)
        elif kind == "vfr":  # 10 frames at 30 fps, then 10 at 15 fps
            _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=96x64:r=30", "-vf",
                    "setpts='if(lt(N,10),N/30,10/30+(N-10)/15)/TB'", "-frames:v", 20, "-fps_mode", "passthrough",
                    "-c:v", "libx264", clip)
        path = c.schedule(input=clip.name, fps="auto", segments=[{"frames": frames, "layers": {"mixed0": 1.0}}], **top)
        if command == "render":
            c.cached_model()
            return render_args(c, schedule=path)
        return ["validate", path]

    return make


def _ffmpeg(*args) -> None:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


def clip_cut_while_rendering(c: Ctx) -> list:
    """The clip is cut short after it was probed (as a file changed under a render): the
    render stops where it breaks off, with the frames before it saved."""
    real = schedule_mod.probe_input

    def probe_then_cut(path):
        info = real(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 8 // 10])  # about 9 of the 16 frames still decode
        return info

    c.monkeypatch.setattr(schedule_mod, "probe_input", probe_then_cut)
    c.cached_model()
    pan_clip(c.tmp / "clip.mp4", frames=16)
    return render_args(c, schedule=c.schedule(input="clip.mp4", fps="auto", checkpoint_every=2,
                                              segments=[{"frames": 16, "layers": {"mixed0": 1.0}}]))


def check_vfr_reported(c: Ctx) -> None:
    summary = api.validate(c.tmp / "s.yaml")
    assert "variable rate resampled to a constant one (20 frames decoded)" in summary, summary


# ---------------------------------------------------------------------------- runtime


def disk_full_at_second_checkpoint(c: Ctx) -> list:
    """fsync of the second checkpoint fails with ENOSPC, as on a full disk (delayed allocation)."""
    c.cached_model()
    real, seen = os.fsync, []

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if "/.ckpt-" in name:
            seen.append(name)
            if len(seen) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
        return real(fd)

    c.monkeypatch.setattr(os, "fsync", fsync)
    return render_args(c, schedule=c.schedule(checkpoint_every=2))


def file_size_limit(c: Ctx) -> list:
    """RLIMIT_FSIZE (set by the runner around the command): writing beyond 32 KiB fails with
    EFBIG in this process and in the ffmpeg it starts (Python ignores SIGXFSZ)."""
    c.cached_model()
    c.fsize_limit = 32 * 1024
    return render_args(c, schedule=c.schedule(checkpoint_every=1))


def ffmpeg_dies(c: Ctx) -> list:
    """An ffmpeg that answers probes but dies after reading about one frame."""
    fake = c.tmp / "fake-ffmpeg"
    fake.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do\n'
        '  if [ "$a" = "pipe:0" ]; then head -c 20000 >/dev/null; echo "simulated encoder crash" >&2; exit 1; fi\n'
        "done\n"
        f'exec "{ffmpeg_exe()}" "$@"\n'
    )
    fake.chmod(0o755)
    use_ffmpeg(c, fake)
    return render_args(c)


def ffmpeg_missing(c: Ctx) -> list:
    use_ffmpeg(c, c.tmp / "no" / "ffmpeg")
    return render_args(c)


def use_ffmpeg(c: Ctx, exe: Path) -> None:
    """IMAGEIO_FFMPEG_EXE for this case, with a fresh encoder list (probe_codec caches it)."""
    c.cached_model()
    c.monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(exe))
    c.monkeypatch.setattr(write, "_encoders", functools.cache(write._encoders.__wrapped__))


def cuda_absent(device: str):
    def make(c: Ctx) -> list:
        c.cached_model()
        c.monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        c.output = c.tmp / OUT
        if device == "cuda":
            return ["render", "--quiet", c.schedule(device="cuda")]
        return ["preview", c.schedule(device="auto"), "--frame", "1", "-o", c.tmp / "f1.png", "--quiet"]

    return make


def check_preview_written(c: Ctx) -> None:
    assert read_image(c.tmp / "f1.png").shape == (64, 96, 3)


def nan_at_frame(k: int):
    """Frame ``k``'s camera move yields NaN (move runs once per frame from frame 1 on)."""

    def make(c: Ctx) -> list:
        c.cached_model()
        real, calls = step_mod.move, []

        def move(image, *args, **kwargs):
            calls.append(1)
            out = real(image, *args, **kwargs)
            return out * float("nan") if len(calls) == k else out

        c.monkeypatch.setattr(step_mod, "move", move)
        return render_args(c, schedule=c.schedule(checkpoint_every=2))

    return make


def out_of_memory(tile, tiled_too: bool = False):
    """Every untiled dream (every dream: ``tiled_too``) runs out of GPU memory (faked: raises
    torch.OutOfMemoryError)."""

    def make(c: Ctx) -> list:
        from dreamvid.engine import ascent as dream_mod

        c.cached_model()
        real, c.tiles = dream_mod.dream, []

        def dream(net, image, objective, settings, generator, *args, **kwargs):
            c.tiles.append(settings.tile)
            if settings.tile is None or tiled_too:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return real(net, image, objective, settings, generator, *args, **kwargs)

        c.monkeypatch.setattr(dream_mod, "dream", dream)
        c.output = c.tmp / OUT
        return ["render", "--quiet", "--frames", "2", c.schedule(size=[320, 256], tile=tile)]

    return make


def check_tiled_retry(c: Ctx) -> None:
    assert c.tiles[0] is None and c.tiles[1] is not None and 128 <= c.tiles[1] < 320  # retried in tiles
    assert probe_video(c.output)["frames"] == 2


def cpu_out_of_memory(c: Ctx) -> list:
    """Frame 1 fails to allocate on the CPU, as torch reports it (a plain RuntimeError)."""
    c.cached_model()

    def move(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 40000000000 bytes. Error code 12 (Cannot allocate memory)")

    c.monkeypatch.setattr(step_mod, "move", move)
    return render_args(c)


def sigterm(c: Ctx) -> list:
    c.sigterm = True
    return ["render", "--quiet", c.schedule(segments=[{"frames": 200, "layers": {"mixed0": 1.0}}], checkpoint_every=2)]


# ------------------------------------------------------------------------ fuzz findings
# Inputs the fuzz tests (tests/test_fuzz_*.py, issue 22) found that gave a traceback, a hang or
# a broken line; each is kept here as a case.


def validate_bytes(data: bytes):
    def make(c: Ctx) -> list:
        path = c.tmp / "raw.yaml"
        path.write_bytes(data)
        return ["validate", path]

    return make


def huge_png_header(c: Ctx) -> list:
    """A PNG whose header claims 100000x100000 pixels (its CRC fixed): OpenCV raised cv2.error."""
    import struct
    import zlib

    png = cv2.imencode(".png", _coffee())[1].tobytes()
    body = png[12:16] + struct.pack(">II", 100_000, 100_000) + png[24:29]
    (c.tmp / "big.png").write_bytes(png[:12] + body + struct.pack(">I", zlib.crc32(body)) + png[33:])
    return ["validate", c.schedule(input="big.png")]


def jpeg_bomb(c: Ctx) -> list:
    """A 16x16 JPEG whose header claims 20000x20000 pixels (under OpenCV's own limit of 2**30):
    it decoded to 1.2 GB and then needed 4.8 GB as float32 (the fuzz test's example hung)."""
    import struct

    jpg = bytearray(cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))[1].tobytes())
    sof = jpg.find(b"\xff\xc0")
    struct.pack_into(">HH", jpg, sof + 5, 20_000, 20_000)
    (c.tmp / "bomb.jpg").write_bytes(bytes(jpg))
    return ["validate", c.schedule(input="bomb.jpg")]


def checkpoint_payload_corrupt(c: Ctx) -> list:
    """The newest checkpoint's payload is not a checkpoint though its checksum matches (a
    writer's bug, another version): it unpickled with EOFError; now it is skipped like a
    truncated one and the render resumes from the previous checkpoint."""
    import hashlib

    c.cached_model()
    path = c.schedule(checkpoint_every=2)
    assert cli.main(["render", "--quiet", "--frames", "6", "--keep-parts", str(path)]) == 0
    newest = c.tmp / "out" / "video.mp4.parts" / "ckpt-00000005.pt"
    payload = b"not a pickle"
    newest.write_bytes(ckpt.MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
    return render_args(c, schedule=path)


def check_resumed_video(c: Ctx) -> None:
    assert probe_video(c.output)["frames"] == 12


def batch_job(text: str):
    def make(c: Ctx) -> list:
        c.schedule()
        (c.tmp / "job.yaml").write_text(text)
        return ["batch", c.tmp / "job.yaml"]

    return make


# ------------------------------------------------------------------------------ table

CASES = [
    # fuzz findings (tests/test_fuzz_*.py), the issue's NUL byte first
    Case("schedule-nul-byte", validate_bytes(b"input: noise\x00\nsegments: []\n"), 2,
         ("raw.yaml", "line 1, column 13", "not valid YAML", "character U+0000", "UTF-16")),
    Case("schedule-utf16-without-bom", validate_bytes("input: noise\n".encode("utf-16-le")), 2,
         ("raw.yaml", "line 1, column 2", "character U+0000")),
    Case("yaml-integer-too-long", validate_text(lambda c: "seed: " + "9" * 5000 + "\n"), 2,
         ("raw.yaml", "line 1, column 7", "an integer of 5000 characters is too large")),
    Case("yaml-tag-value-mismatch", validate_text(lambda c: c.good_text() + "x: !!float fast\n"), 2,
         ("raw.yaml", "'fast' is not a !!float value", "line")),
    Case("yaml-tag-empty-value", validate_text(lambda c: c.good_text() + 'x: !!int ""\n'), 2,
         ("raw.yaml", "'' is not a !!int value")),
    Case("key-with-line-break", validate_segment(layers={"mixed3\nmixed4": 1.0}), 2,
         ("segments[0].layers.'mixed3\\nmixed4'", "unknown layer")),
    Case("layer-weight-too-large", validate_segment(layers={"mixed0": 10**400}), 2,
         ("segments[0].layers.mixed0", "a huge integer", "expected a finite number")),
    Case("fps-too-large", validate(fps=10**400), 2, ("fps:", "a huge integer", "expected a number > 0")),
    Case("keyframe-value-too-large", validate_segment(zoom={0: 10**400}), 2,
         ("segments[0].zoom.0", "a huge integer is out of range")),
    Case("keyframe-frame-too-long", validate_segment(zoom="0: (1.0), " + "9" * 5000 + ": (1.1)"), 2,
         ("segments[0].zoom", "has 5000 digits", "expected a frame number")),
    Case("input-name-too-long", validate(input="x" * 300 + ".png"), 2, ("input:", "File name too long")),
    Case("mask-name-too-long", validate(mask="x" * 300 + ".png"), 2, ("mask:", "File name too long")),
    Case("output-name-too-long", validate(output="x" * 300 + ".mp4"), 2, ("output:", "File name too long")),
    Case("frames-too-many", validate_segment(frames=10**12, zoom="1 + 0*t"), 2,
         ("segments[0].frames", "1000000000000 is out of range", "1..1000000")),
    Case("frames-too-many-in-all", lambda c: ["validate", c.schedule(segments=[
        {"frames": 600_000, "layers": {"mixed0": 1.0}, "zoom": "1 + 0*t"}, {"frames": 600_000, "layers": {
            "mixed3": 1.0}}])], 2, ("segments:", "1200000 frames in all", "at most 1000000")),
    Case("input-header-too-large", huge_png_header, 2, ("big.png", "readable image", "more than 134217728 pixels")),
    Case("input-jpeg-bomb", jpeg_bomb, 2, ("bomb.jpg", "readable image", "more than 134217728 pixels")),
    Case("checkpoint-payload-corrupt", checkpoint_payload_corrupt, 0, check=check_resumed_video),
    Case("batch-key-path-odd-digit", batch_job("schedule: s.yaml\nsegments.\u00b2.zoom: [1.1]\n"), 2,
         ("job.yaml", "segments.\u00b2.zoom", "not a mapping")),
    Case("batch-half-utf16-pair", batch_job('schedules: ["\\ud800\\udc00.yaml"]\n'), 2,
         ("job.yaml", "half a UTF-16 pair", "line 1")),
    Case("batch-nul-escape", batch_job('- "a\\0.yaml"\n'), 2, ("job.yaml", "holds a NUL character", "line 1")),
    Case("batch-segments-not-a-list", batch_job("schedule: s.yaml\nsegments:\n- 1\n"), 2,
         ("job.yaml", "segments: got 1", "expected a non-empty list of segments")),
    Case("batch-input-name-too-long", batch_job("schedule: s.yaml\ninputs:\n- " + "x" * 5000 + "\n"), 2,
         ("job.yaml", "inputs[0]: cannot look at the file (File name too long)", "expected an image file")),
    Case("batch-value-too-long", batch_job("schedule: s.yaml\nseed: [" + "9" * 5000 + "]\n"), 2,
         ("job.yaml", "an integer of 5000 characters is too large")),
    # schedule: syntax
    Case("schedule-file-missing", lambda c: ["validate", c.tmp / "nothere.yaml"], 2, ("nothere.yaml", "cannot read")),
    Case("not-yaml", validate_text(lambda c: "input: [in.png\n  output: : :\n"), 2,
         ("raw.yaml", "not valid YAML", "line 2")),
    Case("empty-file", validate_text(lambda c: ""), 2, ("raw.yaml", "empty file", "expected a mapping")),
    Case("not-a-mapping", validate_text(lambda c: "- input: in.png\n- output: o.mp4\n"), 2,
         ("got a list", "expected a mapping")),
    Case("python-tag", validate_text(lambda c: c.good_text() + "x: !!python/object/apply:os.system ['true']\n"), 2,
         ("x:", "!!python/object/apply:os.system", "not allowed")),
    Case("duplicate-key", validate_text(lambda c: c.good_text() + "fps: 24\n"), 2,
         ("fps:", "duplicate key", "first at line")),
    Case("include", validate_text(lambda c: c.good_text() + "include: other.yaml\n"), 2, ("include:", "no includes")),
    Case("render-without-output", lambda c: ["render", c.raw("input: noise\nsize: [64, 64]\nsegments: [{frames: 2, "
                                                             "layers: {mixed0: 1}}]\n")], 2, ("raw.yaml", "output:", "-o")),
    # schedule: keys, types, ranges
    Case("unknown-key", validate(fsp=24), 2, ("fsp:", "did you mean 'fps'")),
    Case("unknown-segment-key", validate_segment(zooom=1.1), 2, ("segments[0].zooom", "did you mean 'zoom'")),
    Case("formula-refused", validate_segment(zoom="().__class__"), 2, ("segments[0].zoom", "attribute access")),
    Case("formula-out-of-range", validate_segment(zoom="1 - t/2"), 2,
         ("segments[0].zoom", "the formula gives 0 at frame 2", "expected a number > 0")),
    Case("formula-music-without-audio", validate_segment(zoom="1 + 0.1*bass"), 2,
         ("segments[0].zoom", "uses bass", "no audio")),
    Case("wrong-type", validate(fps="fast"), 2, ("fps:", "'fast'", "expected a number")),
    Case("wrong-type-layers", validate_segment(layers=["mixed0"]), 2,
         ("segments[0].layers", "expected a non-empty mapping")),
    Case("frames-zero", validate_segment(frames=0), 2, ("segments[0].frames", "expected an integer 1..1000000")),
    Case("frames-negative", validate_segment(frames=-3), 2, ("segments[0].frames", "-3")),
    Case("zoom-zero", validate_segment(zoom=0), 2, ("segments[0].zoom", "expected a number > 0")),
    Case("cadence-zero", validate_segment(cadence=0), 2, ("segments[0].cadence", "expected an integer >= 1")),
    Case("zoom-negative-keyframe", validate_segment(zoom={0: 1.02, 3: -1.0}), 2, ("segments[0].zoom.3", "> 0")),
    Case("size-not-positive", validate(size=[0, 64]), 2, ("size[0]", "32..8192")),
    Case("size-odd", validate(size=[97, 64]), 2, ("size:", "97x64", "even", "yuv420p")),
    Case("size-absurd", validate(size=[100000, 64]), 2, ("size[0]", "100000", "32..8192")),
    # a frame the deepest layer's features shrink to nothing in (a traceback from conv2d before)
    Case("size-too-small-for-layer", validate(size=[64, 40]), 2,
         ("segments[1].layers", "mixed3", "at least 43 pixels", "64x40", "shallower layer")),
    Case("size-too-small-for-layer-render", lambda c: render_args(c, schedule=c.schedule(size=[96, 64], segments=seg(
        layers={"mixed8": 1.0}))), 2, ("segments[0].layers", "mixed8", "at least 75 pixels", "96x64")),
    Case("fps-zero", validate(fps=0), 2, ("fps:", "expected a number > 0")),
    Case("fps-negative", validate(fps=-12), 2, ("fps:", "-12")),
    Case("segments-empty", validate_text(lambda c: c.good_text().split("segments:")[0] + "segments: []\n"), 2,
         ("segments:", "empty list")),
    Case("unknown-layer", validate_segment(layers={"mixed33": 1.0}), 2,
         ("segments[0].layers.mixed33", "did you mean 'mixed3'")),
    Case("channel-out-of-range", validate_segment(layers={"mixed0:256": 1.0}), 2,
         ("segments[0].layers.mixed0:256", "channel 256", "0..255")),
    Case("keyframe-outside-segment", validate_segment(zoom={0: 1.0, 6: 1.1}), 2, ("segments[0].zoom.6", "frame < 6")),
    Case("keyframes-unsorted", validate_segment(zoom={3: 1.0, 1: 1.1}), 2, ("segments[0].zoom.1", "increasing order")),
    Case("center-outside-frame", validate_segment(center=[1.2, 0.5]), 2, ("segments[0].center[0]", "1.2", "0..1")),
    Case("center-keyframe-outside", validate_segment(center=[0.5, {0: 0.5, 3: -0.1}]), 2,
         ("segments[0].center[1].3", "-0.1", "0..1")),
    Case("gradient-norm-unknown", validate_segment(gradient_norm="lap"), 2,
         ("segments[0].gradient_norm", "'lap'", "mean, laplacian")),
    Case("bad-device", validate(device="gpu"), 2, ("device:", "'gpu'", "auto, cpu, cuda")),
    Case("tile-too-small", validate(tile=64), 2, ("tile:", "got 64", ">= 128")),
    Case("formula-out-of-range-later-segment", lambda c: ["validate", c.schedule(segments=[
        {"frames": 6, "layers": {"mixed0": 1.0}}, {"frames": 30, "layers": {"mixed3": 1.0}, "zoom": "1 - f/20"}])], 2,
         ("segments[1].zoom", "at frame 26 (frame 20 of segments[1])")),
    Case("schedule-half-utf16-pair", validate_text(lambda c: 'input: "\\ud800.png"\n'), 2,
         ("raw.yaml", "line 1, column 8", "half a UTF-16 pair")),
    # a model that needs a weight file: validate finds it as the render does, before any work
    Case("model-without-weights-validate", validate(model="vgg16", segments=[{"frames": 2, "layers": {"conv3_1": 1}}]),
         2, ("s.yaml", "model_weights", "vgg16 needs weights", "never downloads")),
    Case("model-without-weights-render", lambda c: render_args(c, schedule=c.schedule(
        model="vgg16", segments=[{"frames": 2, "layers": {"conv3_1": 1}}])), 2,
         ("model_weights", "vgg16 needs weights")),
    Case("preview-no-frame", lambda c: ["preview", c.schedule()], 2, ("preview: no frame", "--frame N")),
    Case("preview-motion-scale", lambda c: ["preview", c.schedule(), "--motion", "--scale", "0.5"], 2,
         ("--scale applies to dreamed previews", "leave out --scale")),
    Case("estimate-too-short", lambda c: ["validate", "--estimate", c.schedule(segments=[{"frames": 2, "layers": {
        "mixed0": 1}}])], 2, ("s.yaml", "2 frame(s)", "3 or more to estimate")),
    Case("version-newer", validate(version=2), 2, ("version:", "newer than this dreamvid")),
    Case("preview-frame-outside", lambda c: ["preview", c.schedule(segments=[{"frames": 90, "layers": {"mixed0": 1}}]),
                                             "--frame", "120", "-o", c.tmp / "f.png"], 2,
         ("s.yaml", "frame 120 is outside the schedule", "0..89")),
    Case("stats-video-longer-than-schedule", lambda c: ["stats", pan_clip(c.tmp / "long.mp4", frames=8), "--schedule",
                                                        c.schedule(segments=[{"frames": 4, "layers": {"mixed0": 1}}])],
         2, ("long.mp4", "more frames than the schedule", "(4)")),
    Case("stats-schedule-with-clip", lambda c: ["stats", c.tmp / "clip.mp4", "--schedule", write_video_schedule(c.tmp)],
         2, ("s.yaml", "input: a video clip", "image or noise input")),
    Case("stats-source-shorter-than-video", lambda c: ["stats", pan_clip(c.tmp / "long.mp4", frames=8), "--source",
                                                       pan_clip(c.tmp / "short.mp4", frames=4)],
         2, ("short.mp4", "fewer frames than", "long.mp4")),
    # files
    Case("input-missing", validate(input="nothere.png"), 2, ("input:", "nothere.png", "file not found")),
    Case("input-not-an-image", image_file("text"), 2, ("text.png", "neither a readable image nor a video")),
    Case("input-truncated", image_file("truncated"), 2, ("truncated.png", "neither a readable image nor a video",
                                                          "libpng")),
    Case("input-grayscale", image_file("gray"), 0, check=check_gray),
    Case("input-rgba", image_file("rgba"), 0, check=check_rgba),
    Case("input-16-bit", image_file("16bit"), 0, check=check_16bit),
    Case("output-folder-created", render_to_new_folder, 0, check=check_new_folder),
    Case("output-under-a-file-validate", lambda c: ["validate", c.schedule(output="in.png/v.mp4")], 2,
         ("output:", "in.png is a file, not a folder")),
    Case("output-under-a-file-render", output_under_a_file, 2, ("afile/v.mp4", "afile is a file, not a folder")),
    Case("output-is-input-validate", validate(output="in.png"), 2, ("output:", "in.png is the input image")),
    Case("output-is-input-render", lambda c: render_args(c, "-o", c.tmp / "in.png"), 2,
         ("in.png", "is the input image")),
    Case("output-is-a-folder", lambda c: render_args(c, "-o", c.tmp), 2, ("is a folder",)),
    Case("output-extension", validate(output="out/video.gif"), 2, ("output:", "'.gif'", ".mp4")),
    Case("guide-missing", picture_key("guide", "missing"), 2, ("segments[0].guide", "p.png", "file not found")),
    Case("guide-not-an-image", picture_key("guide", "text"), 2, ("segments[0].guide", "p.png", "not a readable image")),
    Case("guide-not-an-image-render", picture_key("guide", "text", "render"), 2,
         ("segments[0].guide", "p.png", "not a readable image")),
    Case("mask-missing", picture_key("mask", "missing"), 2, ("mask:", "p.png", "file not found")),
    Case("mask-not-an-image", picture_key("mask", "text"), 2, ("mask:", "p.png", "not a readable image")),
    Case("audio-missing", audio("missing"), 2, ("audio:", "a.wav", "file not found")),
    Case("audio-unreadable", audio("garbage"), 2, ("a.wav", "not a readable audio file")),
    Case("audio-without-audio", audio("no-stream"), 2, ("a.wav", "no audio stream")),
    Case("audio-unreadable-render", audio("garbage", "render"), 2, ("a.wav", "not a readable audio file")),
    # video input
    Case("input-no-video", clip_case("garbage"), 2, ("clip.mp4", "neither a readable image nor a video", "MP4")),
    Case("input-video-no-frames", clip_case("empty"), 2, ("input:", "clip.avi", "no frames")),
    Case("input-video-variable-rate", clip_case("vfr"), 0, check=check_vfr_reported),
    Case("video-more-frames-than-clip", clip_case("pan"), 2, ("segments:", "12 frames", "clip.mp4 has 8")),
    Case("audio-input-without-sound", clip_case("pan", frames=6, audio="input"), 2,
         ("audio:", "clip.mp4 has no sound")),
    Case("audio-input-image", validate(audio="input"), 2, ("audio:", "the input is an image (in.png)")),
    Case("flow-raft-without-weights", clip_case("pan", frames=6, defaults={"flow": "raft"}), 2,
         ("defaults.flow", "flow_weights", "nothing is downloaded")),
    Case("flow-weights-missing", clip_case("pan", frames=6, flow_weights="raft.pth"), 2,
         ("flow_weights:", "raft.pth", "file not found")),
    Case("cadence-with-clip", clip_case("pan", frames=6, defaults={"cadence": 3}), 2,
         ("defaults.cadence", "3 with a video input", "expected 1")),
    Case("video-breaks-off-render", clip_cut_while_rendering, 1,
         ("clip.mp4", "breaks off at frame", "of 16", "are saved", "rerun"), kept=-1),
    # runtime
    Case("disk-full-checkpoint", disk_full_at_second_checkpoint, 1,
         ("ckpt-00000003", "No space left on device", "frames 0-1 are saved", "rerun"), kept=1),
    Case("file-size-limit", file_size_limit, 1, ("ckpt-00000000", "File too large", "no frame had been saved")),
    Case("ffmpeg-exits-early", ffmpeg_dies, 1, ("ffmpeg", "simulated encoder crash", "part-00000000")),
    Case("ffmpeg-missing", ffmpeg_missing, 1, ("no/ffmpeg", "IMAGEIO_FFMPEG_EXE")),
    Case("cuda-absent", cuda_absent("cuda"), 2, ("device 'cuda'", "no CUDA GPU", "auto")),
    Case("cuda-auto-falls-back", cuda_absent("auto"), 0, check=check_preview_written),
    Case("gpu-out-of-memory", out_of_memory(None), 1, ("out of GPU memory", "320x256", "tile: auto")),
    Case("gpu-out-of-memory-tile-auto", out_of_memory("auto"), 0, check=check_tiled_retry),
    Case("gpu-out-of-memory-in-tiles", out_of_memory("auto", tiled_too=True), 1,
         ("out of GPU memory", "even in tiles of 128 px")),
    Case("cpu-out-of-memory", cpu_out_of_memory, 1, ("out of CPU memory", "96x64", "smaller size")),
    Case("nan-frame", nan_at_frame(3), 1, ("frame 3", "NaN", "segments[0].step", "frames 0-1 are saved"), kept=1),
    Case("sigterm", sigterm, 130, ("stopped", "rerun the same command to resume"), kept=-1, subprocess=True),
]


# case -> the start of its row in docs/errors.md: the case's error line must be that row's message
# (tests.docs_examples.matches_doc: `...` is any text, the end may be left out, `s.yaml` is the schedule)
DOCUMENTED = {
    "schedule-file-missing": "nothere.yaml: cannot",
    "not-yaml": "s.yaml: line 2, column",
    "empty-file": "s.yaml: got an empty",
    "schedule-nul-byte": "s.yaml: line 1, column 13:",
    "yaml-integer-too-long": "s.yaml: line 1, column 7:",
    "schedule-half-utf16-pair": "s.yaml: line 1, column 8:",
    "python-tag": "s.yaml: x: tag '!!python/object/...'",
    "duplicate-key": "s.yaml: fps: duplicate",
    "unknown-key": "s.yaml: fsp: unknown",
    "include": "s.yaml: include: unknown",
    "wrong-type": "s.yaml: fps: got 'fast';",
    "frames-zero": "s.yaml: segments[0].frames:",
    "zoom-zero": "s.yaml: segments[0].zoom: 0",
    "cadence-zero": "s.yaml: segments[0].cadence: 0",
    "size-not-positive": "s.yaml: size[0]: 0 is",
    "size-too-small-for-layer": "s.yaml: segments[1].layers:",
    "size-odd": "s.yaml: size: 97x64 has",
    "fps-zero": "s.yaml: fps: 0 is out",
    "segments-empty": "s.yaml: segments: got",
    "unknown-layer": "s.yaml: segments[0].layers.mixed33:",
    "channel-out-of-range": "s.yaml: segments[0].layers.mixed0:256:",
    "center-outside-frame": "s.yaml: segments[0].center[0]:",
    "gradient-norm-unknown": "s.yaml: segments[0].gradient_norm:",
    "keyframe-outside-segment": "s.yaml: segments[0].zoom.6:",
    "keyframes-unsorted": "s.yaml: segments[0].zoom.1:",
    "formula-refused": "s.yaml: segments[0].zoom: attribute",
    "formula-out-of-range-later-segment": "s.yaml: segments[1].zoom:",
    "formula-music-without-audio": "s.yaml: segments[0].zoom: uses",
    "render-without-output": "s.yaml: output: no output",
    "frames-too-many-in-all": "s.yaml: segments: 1200000",
    "key-with-line-break": "s.yaml: segments[0].layers.'mixed3\\nmixed4':",
    "bad-device": "s.yaml: device: got 'gpu';",
    "tile-too-small": "s.yaml: tile: got 64;",
    "input-missing": "s.yaml: input: file not",
    "input-truncated": "truncated.png: neither",
    "input-name-too-long": "s.yaml: input: cannot",
    "input-no-video": "clip.mp4: neither a readable",
    "input-video-no-frames": "s.yaml: input: clip.avi:",
    "video-more-frames-than-clip": "s.yaml: segments: 12 frames,",
    "flow-raft-without-weights": "s.yaml: defaults.flow:",
    "model-without-weights-validate": "s.yaml: model_weights:",
    "model-without-weights-render": "s.yaml: model_weights:",
    "flow-weights-missing": "s.yaml: flow_weights:",
    "cadence-with-clip": "s.yaml: defaults.cadence: 3",
    "output-is-input-validate": "s.yaml: output: in.png is",
    "output-under-a-file-validate": "s.yaml: output: in.png/v.mp4:",
    "output-is-a-folder": "...: is a folder; expected",
    "output-extension": "s.yaml: output: ...:",
    "guide-missing": "s.yaml: segments[0].guide: file",
    "guide-not-an-image": "s.yaml: segments[0].guide: p.png:",
    "guide-not-an-image-render": "s.yaml: segments[0].guide: p.png:",
    "audio-missing": "s.yaml: audio: file not",
    "audio-unreadable": "a.wav: not a readable",
    "audio-unreadable-render": "a.wav: not a readable",
    "audio-input-without-sound": "s.yaml: audio: 'input':",
    "audio-input-image": "s.yaml: audio: 'input' keeps",
    "preview-frame-outside": "s.yaml: frame 120 is outside",
    "preview-no-frame": "preview: no frame;",
    "stats-video-longer-than-schedule": "long.mp4: more frames than",
    "stats-schedule-with-clip": "s.yaml: input: a video clip",
    "stats-source-shorter-than-video": "short.mp4: fewer frames than",
    "preview-motion-scale": "preview --motion: --scale applies",
    "estimate-too-short": "s.yaml: 2 frame(s);",
    "version-newer": "s.yaml: version: 2",
    "disk-full-checkpoint": "out/video.mp4.parts/.ckpt-00000003.pt.partial-...:",
    "ffmpeg-exits-early": "could not write out/video.mp4.parts/part-00000000.mp4:",
    "ffmpeg-missing": "no/ffmpeg: ffmpeg not",
    "cuda-absent": "device 'cuda' requested",
    "gpu-out-of-memory": "out of GPU memory dreaming",
    "gpu-out-of-memory-in-tiles": "out of GPU memory ...",
    "cpu-out-of-memory": "out of CPU memory rendering",
    "nan-frame": "frame 3: the image became",
    "video-breaks-off-render": "clip.mp4: the video breaks",
}


# ------------------------------------------------------------------------------- runner


def _run_in_process(c: Ctx, args: list, capfd) -> tuple[int, str]:
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}  # render installs its own
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        if c.fsize_limit:
            resource.setrlimit(resource.RLIMIT_FSIZE, (c.fsize_limit, limits[1]))
        code = cli.main([str(a) for a in args])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        for s, h in handlers.items():
            signal.signal(s, h)
    return code, capfd.readouterr().err


def _run_subprocess(c: Ctx, args: list) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, "-m", "dreamvid", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    if c.sigterm:  # once a checkpoint is on disk and ffmpeg is encoding the next part
        work = c.output.with_name(c.output.name + ".parts")
        deadline = time.time() + 120
        while not (list(work.glob("ckpt-*.pt")) and ffmpeg_children(proc.pid)):
            assert proc.poll() is None and time.time() < deadline, "the render ended before its first checkpoint"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    return proc.returncode, err


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that name ``text`` (orphans included, whatever their parent)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if text in cmd and state not in ("Z", "X"):
                found.append(cmd)
    return found


def _check_nothing_lost(c: Ctx, case: Case) -> None:
    if c.output is not None:
        assert not c.output.exists(), "a failed render left a file at the output path"
        work = c.output.with_name(c.output.name + ".parts")
        if case.kept is not None:
            saved = list_checkpoints(work)
            assert saved, "the checkpoint did not survive"
            checkpoint = ckpt.load(saved[0])  # verifies the checksum
            assert case.kept == -1 or checkpoint.index == case.kept
            assert all((work / name).is_file() for name, _, _ in checkpoint.parts), "its video parts are gone"
        else:
            assert not work.exists(), "a render that saved nothing left its work folder"
    assert not [p for p in c.tmp.rglob("*") if "partial" in p.name], "temp files left behind"
    assert ffmpeg_children() == []
    assert _processes_mentioning(str(c.tmp)) == [], "a process outlived the command"


def documented_row(start: str) -> str:
    """The one row of docs/errors.md whose message starts with ``start``."""
    rows = [row for row in error_rows() if row.startswith(start)]
    assert len(rows) == 1, f"{len(rows)} rows of docs/errors.md start with {start!r}"
    return rows[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_error(case: Case, tmp_path, monkeypatch, capfd, net):
    c = Ctx(tmp_path, monkeypatch, net)
    args = case.setup(c)
    code, err = _run_subprocess(c, args) if case.subprocess else _run_in_process(c, args, capfd)

    assert code == case.code, err
    assert "Traceback" not in err
    # a stop that was asked for is reported as a plain message, not as an error
    prefix = "dreamvid: stopped; " if case.code == 130 else "dreamvid: error: "
    if case.code == 130:
        assert "dreamvid: error" not in err, err
    errors = [line for line in err.splitlines() if line.startswith(prefix)]
    if case.code == 0:
        assert errors == []
        if case.check:
            case.check(c)
        return
    assert len(errors) == 1, err
    notices = [line for line in err.splitlines() if line.strip() and line not in errors]
    allowed = "dreamvid: stopping after this frame (SIGTERM again to abort now)" if c.sigterm else "(nothing else)"
    assert all(line.startswith(allowed) for line in notices), err
    for name in case.names:
        assert name in errors[0], f"{name!r} not in {errors[0]!r}"
    if case.id in DOCUMENTED:
        row = documented_row(DOCUMENTED[case.id])
        assert matches_doc(row, errors[0], tmp_path), f"docs/errors.md says {row!r}, dreamvid says {errors[0]!r}"
    if args[0] == "render":
        _check_nothing_lost(c, case)


def test_debug_shows_the_traceback(tmp_path):
    path = write_schedule(tmp_path, fsp=24)
    with pytest.raises(Exception, match="fsp: unknown key"):
        cli.main(["--debug", "validate", str(path)])


def test_table_covers_the_issue():
    """At least 30 cases, each id once."""
    ids = [c.id for c in CASES]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)


# ----------------------------------------------------------------------- the studio's requests
# Fuzz findings in `dreamvid studio` (tests/test_fuzz_studio.py): these requests were answered
# 500 (an uncaught exception); a bad request is a 4xx with a one-line error.

STUDIO_CASES = [
    ("studio-name-half-utf16-pair", "post", "/api/check", {"name": "\ud800.yaml", "text": "input: noise\n"}, 400,
     "half a UTF-16 pair"),
    ("studio-name-too-long", "get", "/api/file", {"name": "x" * 300 + ".yaml"}, 400, "File name too long"),
    ("studio-text-half-utf16-pair", "post", "/api/save", {"name": "new.yaml", "text": "a: \ud800\n"}, 400,
     "text: character 4 is half a UTF-16 pair"),
    ("studio-peek-no-schedule", "get", "/api/peek", {"name": "gone.yaml"}, 404, "no such file in the studio folder"),
    ("studio-motion-no-text", "post", "/api/motion", {"name": "s.yaml"}, 400, "text: missing or not a string"),
    ("studio-estimate-climbs-out", "post", "/api/estimate", {"name": "../s.yaml", "text": "input: noise\n"}, 403,
     "climbs out with '..'"),
]


@pytest.mark.parametrize("case", STUDIO_CASES, ids=[c[0] for c in STUDIO_CASES])
def test_studio_error(case, tmp_path):
    pytest.importorskip("starlette", reason="the studio extra (pip install 'dreamvid[studio]')")
    pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")
    import json

    from starlette.testclient import TestClient

    from dreamvid.studio.app import Studio, create_app

    _, method, route, data, status, text = case
    studio = Studio(tmp_path)
    client = TestClient(create_app(studio, allowed_hosts=["testserver"]), headers={"X-Dreamvid-Token": studio.token})
    if method == "get":
        r = client.get(route, params=data)
    else:
        r = client.post(route, content=json.dumps(data), headers={"content-type": "application/json"})
    studio.close()
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert text in error and "\n" not in error, error
    assert list(tmp_path.iterdir()) == [], "the studio wrote a file"


# ------------------------------------------------------------------ the shared helpers (issue "one of each")


def test_first_line_is_the_first_line_with_text():
    from dreamvid.core.errors import first_line

    assert first_line(RuntimeError("\n  torch.load failed  \nTraceback ...\n")) == "torch.load failed"
    assert first_line(KeyError("inception_v9")) == "inception_v9"  # the key, not its repr
    assert first_line(ConnectionError()) == "ConnectionError"
    assert first_line(ValueError(" \n"), "nothing said") == "nothing said"
    assert first_line("Input should be a valid number\n  more") == "Input should be a valid number"
    assert first_line("") == ""


def test_out_of_memory_is_worded_once(capsys):
    from dreamvid.core.errors import out_of_memory_message

    gpu, cpu = torch.OutOfMemoryError("CUDA out of memory"), RuntimeError("DefaultCPUAllocator: can't allocate memory")
    assert out_of_memory_message(cpu, "rendering a 96x64 frame") == (
        "out of CPU memory rendering a 96x64 frame; expected a size that fits: choose a smaller size "
        "(on a GPU, `tile: auto` splits frames that do not fit)")  # fmt: skip
    assert out_of_memory_message("GPU", advice="free GPU memory") == "out of GPU memory; free GPU memory"
    assert cli._report(gpu, debug=False) == 1  # preview and dream: the CLI's own line, its option named
    assert capsys.readouterr().err == ("dreamvid: error: out of GPU memory; expected a size that fits: choose a "
                                       "smaller --size/size (on a GPU, `tile: auto` splits frames that do not fit)\n")
    with pytest.raises(RuntimeError, match="something else"):
        cli._report(RuntimeError("something else"), debug=False)  # not out of memory: a bug, raised again


def test_stop_request_first_signal_asks_second_aborts():
    from dreamvid.core.stop import StopRequest

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    said = []
    with StopRequest(on_first=said.append) as stop:
        assert not stop()
        signal.raise_signal(signal.SIGTERM)
        assert stop() and said == [signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert said == [signal.SIGTERM]  # told once
    assert {s: signal.getsignal(s) for s in before} == before  # given back
    with StopRequest((signal.SIGTERM,), second_aborts=False) as worker:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)  # a batch worker: only its parent aborts it
        assert worker()
    assert {s: signal.getsignal(s) for s in before} == before


def test_stop_request_off_the_main_thread_leaves_signals_alone():
    import threading

    from dreamvid.core.stop import StopRequest

    before, installed = signal.getsignal(signal.SIGINT), []
    stop = StopRequest()
    thread = threading.Thread(target=lambda: installed.append(stop.install()))
    thread.start()
    thread.join()
    assert installed == [False] and signal.getsignal(signal.SIGINT) is before
    stop.request()
    assert stop()
