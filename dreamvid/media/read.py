"""Reading video: a render's input clip, probed and streamed fitted to the render size; and any
video read back as it was encoded (:func:`iter_frames`, :func:`read_frames`, :func:`probe_video`).

    info = probe_clip("dancer.mov")           # frames, size, exact fps, audio, variable rate
    with ClipReader(info, (1280, 720), start=k) as frames:
        for image in frames:                  # frame k, k+1, ... as HxWx3 float32 RGB in [0, 1]
            ...

Guarantees:

* a clip is recognised by probing its content with ffmpeg, never by its file name; a still
  image (PNG, JPEG ... which ffmpeg also opens) is not a clip (:func:`is_clip` tells them apart);
* frames are decoded one at a time from an ffmpeg pipe: never the whole clip in memory, never
  a folder of images;
* ``ClipReader(info, size, start=k)`` yields exactly the frames that reading from frame 0 and
  skipping ``k`` would (ffmpeg drops the first ``k`` decoded frames itself: exact, and the
  skipped frames never cross the pipe; it still decodes them, see docs/video.md for the cost);
* each frame equals ``images.fit(decoded / 255, size)``, the fitting a still image gets;
* no ffmpeg outlives a reader: ``close()`` (run by ``__exit__``, on exhaustion and as a last
  resort by ``__del__``) terminates, then kills it; the kernel kills it if Python dies;
* a clip that ends before the frame count :func:`probe_clip` found raises a one-line
  ``DreamvidError`` naming the frame where it broke off.

Variable frame rate: a clip whose frames are not evenly spaced in time (phones, screen
recorders) is resampled to a constant rate, its average one (snapped to a standard rate such as
30000/1001 when within 2 %), with ffmpeg's ``fps`` filter: frames are repeated or dropped so
that frame ``i`` shows the clip at time ``i / fps``; the sound stays in sync.

Colour: every video is converted to RGB with the matrix and range its stream is tagged with,
and where it is untagged with the players' convention (BT.709 at HD and above, BT.601 below),
so that frames come out as a colour-managed player shows them (:mod:`dreamvid.media.colourspace`).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from dreamvid.core.errors import DreamvidError, InputError
from dreamvid.media import colourspace as C
from dreamvid.media import ffmpeg

__all__ = ["ClipInfo", "ClipReader", "is_clip", "iter_frames", "probe_clip", "probe_input", "probe_tags",
           "probe_video", "read_frames"]

EXPECTED = "expected a video file ffmpeg can decode (MP4, MOV, MKV, WebM, AVI, GIF ...)"
# ffmpeg demuxers that open single images: "png_pipe", "jpeg_pipe", ..., "image2"
_IMAGE_DEMUXER = re.compile(r"^(image2|\w+_pipe)$")
# standard rates a variable-rate clip's average is snapped to (when within _SNAP)
_STANDARD_RATES = [Fraction(r) for r in (12, 15, 24, 25, 30, 48, 50, 60, 90, 100, 120, 240)] + [
    Fraction(r * 1000, 1001) for r in (24, 30, 60, 120)
]
_SNAP = 0.02


@dataclass(frozen=True)
class ClipInfo:
    """What :func:`probe_clip` found; everything a render needs to plan and read the clip."""

    path: Path
    frames: int  # frames the reader yields (decoded and counted, after any resampling)
    width: int  # displayed size (after the rotation a phone clip asks for)
    height: int
    fps: Fraction  # exact, e.g. Fraction(30000, 1001)
    has_audio: bool
    variable_rate: bool  # True: resampled to ``fps`` (the average rate), see the module doc
    source_frames: int  # frames decoded before resampling (== frames when constant rate)
    format: str  # ffmpeg's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    warning: str | None = None  # ffmpeg's first decoding error, if any (a damaged clip)
    tags: C.Tags = field(default_factory=C.Tags)  # its stream's colour tags (untagged: the players' convention)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def colour(self) -> C.Colour:
        """How its frames become RGB: its tags, or the players' convention for its size."""
        return C.for_reading(self.tags, self.size)

    @property
    def duration(self) -> float:
        """Seconds, as rendered: frames / fps."""
        return self.frames / float(self.fps)


# --- probing --------------------------------------------------------------------


def _run(args: list[str]) -> subprocess.CompletedProcess:
    """ffmpeg to completion, its exit status unchecked: its report says what it found."""
    return ffmpeg.run(["-nostats", *args], check=False)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: file not found; {EXPECTED}")
    if not path.is_file():
        raise InputError(f"{path}: not a file; {EXPECTED}")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise InputError(f"{path}: cannot read the file ({err.strerror or err}); {EXPECTED}") from None


def _untag(stderr: str) -> str:
    return re.sub(r"^\[(info|warning|error|fatal)\] ", "", stderr, flags=re.M)  # "-v level+info" tags


def _video_stream(stderr: str) -> str:
    """ffmpeg's report line of the first video stream that is no cover art ("" if none)."""
    lines = re.findall(r"^\s*Stream #0:\d+\S*: Video: .*$", _untag(stderr), re.MULTILINE)
    return next((line for line in lines if "attached pic" not in line), "")


def _header(stderr: str) -> tuple[str | None, bool, bool]:
    """(demuxer name, has a video stream, has an audio stream) from ffmpeg's ``Input #0`` report."""
    stderr = _untag(stderr)
    fmt = re.search(r"^Input #0, (.+?), from ", stderr, re.M)
    streams = re.findall(r"^\s*Stream #0:\d+\S*: (Video|Audio): (.*)$", stderr, re.M)
    video = any(kind == "Video" and "attached pic" not in rest for kind, rest in streams)  # cover art is no video
    return (fmt[1] if fmt else None), video, any(kind == "Audio" for kind, _ in streams)


def is_clip(path: str | Path) -> bool:
    """True if ffmpeg opens ``path`` as a moving video (not a still image, not audio alone).

    Reads the container header only (fast); :func:`probe_clip` then checks the frames.
    """
    path = Path(path)
    if not path.is_file():
        return False
    proc = _run(["-v", "info", "-i", str(path)])  # no output named: ffmpeg reports the input, exits 1
    fmt, video, _ = _header(proc.stderr.decode(errors="replace"))
    return fmt is not None and video and not _IMAGE_DEMUXER.match(fmt)


def _count(path: Path, vf: list[str]) -> tuple[subprocess.CompletedProcess, str, list[tuple[int, int]], Fraction, str]:
    """Decode every frame of the first video stream once (no pixels leave ffmpeg).

    Returns the process, its stderr, ``(pts, duration)`` per frame in time base ``tb`` (ffmpeg
    picks 1 / the stream's guessed frame rate, so a constant-rate clip counts 0, 1, 2 ...),
    and the frame size ``WxH`` the reader will get.
    """
    proc = _run(["-v", "level+info", "-i", str(path), "-map", "0:v:0", *vf, "-fps_mode", "passthrough",
                 "-c:v", "wrapped_avframe", "-f", "framecrc", "pipe:1"])
    err = proc.stderr.decode(errors="replace")
    out = proc.stdout.decode(errors="replace")
    tb = re.search(r"^#tb 0: (\d+)/(\d+)\s*$", out, re.M)
    dims = re.search(r"^#dimensions 0: (\d+x\d+)\s*$", out, re.M)
    rows = [(int(m[1]), int(m[2])) for m in re.finditer(r"^0,\s*-?\d+,\s*(-?\d+),\s*(\d+),", out, re.M)]
    return proc, err, rows, (Fraction(int(tb[1]), int(tb[2])) if tb else Fraction(0)), (dims[1] if dims else "")


def _problems(stderr: str) -> str:
    """ffmpeg's error lines (not its warnings), without the level tags."""
    return "\n".join(re.sub(r"^(\[[^\]]*\]\s*)+", "", ln) for ln in stderr.splitlines()
                     if "[error]" in ln or "[fatal]" in ln)


def _average_rate(rows: list[tuple[int, int]], tb: Fraction) -> Fraction:
    """Frames per second over the clip's span (first frame's start to last frame's end),
    snapped to a standard rate when within 2 %."""
    span = (rows[-1][0] + max(rows[-1][1], 1) - rows[0][0]) * tb
    if span <= 0:
        return Fraction(1) / tb if tb else Fraction(25)
    rate = len(rows) / span
    best = min(_STANDARD_RATES, key=lambda r: abs(r - rate))
    return best if abs(best - rate) <= _SNAP * rate else rate.limit_denominator(1001)


def probe_clip(path: str | Path) -> ClipInfo:
    """Probe a video input by decoding it once (seconds for a short clip; no pixels copied out).

    The frame count is the number of frames ffmpeg decodes, whatever the container claims.
    ``InputError`` (one line naming the file) if it is no video, a still image, or has no frames.
    """
    path = Path(path)
    _check_file(path)
    proc, err, rows, tb, dims = _count(path, [])
    fmt, video, audio = _header(err)
    problems = _problems(err)
    if fmt is None:
        why = ffmpeg.reason(problems, "ffmpeg does not recognise the format")
        raise InputError(f"{path}: not a video ({why}); {EXPECTED}")
    if not video:
        what = "an audio file" if audio else "a file with no video stream"
        raise InputError(f"{path}: {what}, not a video; {EXPECTED}")
    if _IMAGE_DEMUXER.match(fmt):
        raise InputError(f"{path}: a still image ({fmt}), not a video; {EXPECTED}")
    if not rows or not dims or not tb:
        why = f" ({ffmpeg.reason(problems)})" if problems else ""
        raise InputError(f"{path}: the video has no frames that can be decoded{why}; {EXPECTED}")
    width, height = map(int, dims.split("x"))
    steps = {b[0] - a[0] for a, b in zip(rows, rows[1:])}
    if len(steps) <= 1 and (not steps or steps.pop() > 0):  # evenly spaced: the rate is exact
        step = rows[1][0] - rows[0][0] if len(rows) > 1 else 1
        fps, frames, variable = 1 / (step * tb), len(rows), False
    else:
        fps, variable = _average_rate(rows, tb), True
        _, err2, rows2, _, _ = _count(path, ["-vf", f"fps={fps}"])
        frames = len(rows2)
        problems = problems or _problems(err2)
    return ClipInfo(path=path, frames=frames, width=width, height=height, fps=fps, has_audio=audio,
                    variable_rate=variable, source_frames=len(rows), format=fmt,
                    warning=ffmpeg.reason(problems) if problems else None, tags=C.parse_tags(_video_stream(err)))


def probe_tags(path: str | Path) -> tuple[str, C.Tags, tuple[int, int]]:
    """``(codec, colour tags, (width, height) as decoded)`` of ``path``'s first video stream, from
    its header and first frame; DreamvidError if it has no video frame to decode."""
    path = Path(path)
    _, err, _, _, dims = _count(path, ["-frames:v", "1"])
    line = _video_stream(err)
    if not line or not dims:
        why = ffmpeg.reason(_problems(err), "no video frame that ffmpeg can decode")
        raise InputError(f"cannot read video {path}: {why}")
    codec = re.search(r"Video: (\w+)", line)
    width, height = map(int, dims.split("x"))
    return (codec[1] if codec else ""), C.parse_tags(line), (width, height)


def _rgb_args(path: Path, colour: C.Colour, filters: list[str]) -> list[str]:
    """ffmpeg's arguments to decode ``path``'s first video stream as raw rgb24 on stdout, with
    ``colour``'s matrix and range, after ``filters``; every decoded frame, none repeated."""
    return ["-nostdin", "-nostats", "-v", "error", "-i", str(path), "-map", "0:v:0",
            "-vf", ",".join([*filters, C.decode_filter(colour)]), "-fps_mode", "passthrough",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]


_PROBED: dict[tuple, ClipInfo | None] = {}  # (path, size, mtime) -> probe_input's answer


def probe_input(path: str | Path) -> ClipInfo | None:
    """A schedule's ``input`` file: its :class:`ClipInfo` when ffmpeg opens it as a video, None
    when it is not one (an image, or something neither ffmpeg nor OpenCV can read: reading it
    as an image then says so). Told apart by content, never by the file name. Remembered per
    file version, so validating a schedule again (the studio does, as you type) costs nothing."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _PROBED:
        if len(_PROBED) > 64:
            _PROBED.clear()
        _PROBED[key] = probe_clip(path) if is_clip(path) else None
    return _PROBED[key]


# --- reading --------------------------------------------------------------------


class ClipReader:
    """Frames ``start``, ``start + 1``, ... of a probed clip, each HxWx3 float32 RGB in [0, 1].

    ``size`` = (width, height) fits every frame as :func:`dreamvid.pixels.images.fit` fits a still
    image (cover, centre crop); ``None`` keeps the clip's own size. ``position`` is the index of
    the frame the next ``next()`` returns: what a checkpoint records to resume the stream.
    Use as a context manager (or call ``close()``): it ends the ffmpeg child.
    """

    def __init__(self, clip: ClipInfo | str | Path, size: tuple[int, int] | None = None, start: int = 0):
        self.info = clip if isinstance(clip, ClipInfo) else probe_clip(clip)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        if not 0 <= start <= self.info.frames:
            raise InputError(f"{self.info.path}: cannot start at frame {start}; expected 0 .. "
                             f"{self.info.frames} (the clip has {self.info.frames} frames)")
        self.position = start
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        if start == self.info.frames:
            return  # nothing left to read: no ffmpeg at all
        filters = ([f"fps={self.info.fps}"] if self.info.variable_rate else []) + (
            [f"trim=start_frame={start}"] if start else [])
        args = _rgb_args(self.info.path, self.info.colour, filters)
        self._proc, self._stderr = ffmpeg.start_logged(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                       what=f"to read {self.info.path}")  # fmt: skip

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        if self.position >= self.info.frames or self._proc is None:
            self.close()
            raise StopIteration
        w, h = self.info.size
        nbytes = w * h * 3
        buf = self._proc.stdout.read(nbytes)
        if len(buf) < nbytes:
            self._broke_off()
        frame = np.frombuffer(buf, np.uint8).reshape(h, w, 3).astype(np.float32) / 255.0
        self.position += 1
        if self.position == self.info.frames:
            self.close()
        if self.size is None:
            return frame
        from dreamvid.pixels.images import fit  # torch: not needed to probe (validating a schedule does not import it)

        return fit(frame, self.size)

    def _broke_off(self):
        k, n, path = self.position, self.info.frames, self.info.path
        try:
            rc = self._proc.wait(timeout=ffmpeg.TERMINATE_WAIT_S)
            self._stderr.seek(0)
            why = ffmpeg.reason(self._stderr.read(4000), "the stream ended early")
            why = why if rc == 0 else f"ffmpeg {ffmpeg.exit_reason(rc)}: {why}"
        except subprocess.TimeoutExpired:
            why = "ffmpeg stopped sending frames"
        self.close()
        raise DreamvidError(f"{path}: the video breaks off at frame {k} of {n} ({why}); expected the "
                            "complete clip that was probed: was the file changed or damaged?")

    def close(self) -> None:
        """End ffmpeg (terminate, then kill) and free the pipe. Idempotent, never raises."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                ffmpeg.stop(proc)  # killed if a second Ctrl-C interrupts it, never left running
        finally:
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None

    def __enter__(self) -> ClipReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # last resort: a reader dropped without close()
        if getattr(self, "_proc", None) is not None:
            self.close()


# --- reading a video back ----------------------------------------------------------


def iter_frames(path) -> Iterator[np.ndarray]:
    """Decode ``path`` frame by frame (HxWx3 uint8 RGB views, as a colour-managed player shows
    them: see the module doc), without holding the whole video."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: video not found; expected a video file")
    _, tags, (w, h) = probe_tags(path)
    proc, log = ffmpeg.start_logged(_rgb_args(path, C.for_reading(tags, (w, h)), []), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, what=f"to read {path}")
    try:
        while len(buf := proc.stdout.read(w * h * 3)) == w * h * 3:
            yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
        if proc.wait() != 0:
            log.seek(0)
            why = ffmpeg.reason(log.read(4000), "not a readable video")
            raise DreamvidError(f"cannot decode {path} ({ffmpeg.exit_reason(proc.returncode)}): {why}")
    finally:
        ffmpeg.stop(proc)
        log.close()


def read_frames(path) -> list[np.ndarray]:
    """Every frame of ``path`` as an HxWx3 uint8 RGB array (for tests and tools)."""
    return [f.copy() for f in iter_frames(path)]


def probe_video(path) -> dict:
    """``{"frames": n, "size": (w, h), "fps": f}`` of the first video stream.

    Frames are counted exactly by decoding them all (one ffmpeg pass); size and fps
    come from the stream header that the same pass prints.
    """
    path = Path(path)
    if not path.is_file():
        raise DreamvidError(f"video not found: {path}")
    # level+info: header lines to parse, and "[error]" tags to find the problem among warnings
    proc = ffmpeg.run(["-nostats", "-v", "level+info", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough",
                       "-f", "null", "-progress", "pipe:1", "-"], check=False)
    err = proc.stderr.decode(errors="replace")
    problems = "\n".join(ln for ln in err.splitlines() if "[error]" in ln or "[fatal]" in ln)
    stream = next((ln for ln in err.splitlines() if "Stream #" in ln and "Video:" in ln), None)
    frames = re.findall(r"^frame=(\d+)\s*$", proc.stdout.decode(errors="replace"), re.M)
    if stream is None and "Input #" in err:
        raise InputError(f"{path} has no video stream")
    if proc.returncode != 0 or stream is None or not frames:
        raise InputError(f"cannot read video {path}: {ffmpeg.reason(problems, 'ffmpeg gave no reason')}")
    size = re.search(r", (\d+)x(\d+)[ ,\[]", stream)
    rate = re.search(r"([\d.]+) fps", stream) or re.search(r"([\d.]+) tbr", stream)
    return {
        "frames": int(frames[-1]),
        "size": (int(size[1]), int(size[2])) if size else (0, 0),
        "fps": float(rate[1]) if rate else 0.0,
    }
