"""Writing video: stream RGB frames into ffmpeg, join the parts of a render, add its sound.

``VideoWriter`` starts one ffmpeg process (the binary bundled with imageio-ffmpeg)
that reads raw RGB frames on stdin. ``write()`` copies the frame into a bounded
queue; a writer thread feeds ffmpeg, so encoding overlaps the caller's work.

Guarantees:

* the output appears only when complete: ffmpeg writes ``.<stem>.partial-<pid>-<hex><ext>``
  in the same folder, which ``close()`` fsyncs and ``os.replace``-s onto ``path``;
  after ``abort()`` or a failed ``close()`` nothing new exists at ``path`` (a file
  that was already there is untouched) and the temp file is removed;
* no ffmpeg outlives the writer: ``close()`` waits for it, ``abort()`` (also run by
  ``__exit__`` on any exception, KeyboardInterrupt included) terminates, then kills
  it; if Python itself is SIGKILLed, ffmpeg reads end-of-file on its stdin and exits
  (see :mod:`dreamvid.media.ffmpeg`);
* every ffmpeg failure becomes a one-line ``DreamvidError``;
* colour: frames are converted to YCbCr with an explicit matrix, BT.709 at HD and above,
  BT.601 below, and every stream is tagged with it (:mod:`dreamvid.media.colourspace`); joining
  parts and adding sound keep, and restate, the tags.

Audio is muxed in a second, cheap pass (video stream copied, audio encoded to AAC,
padded with silence and cut to the video length), so a render that takes hours
never has ffmpeg buffering an audio stream that runs ahead of the video.
"""

from __future__ import annotations

import functools
import os
import queue
import secrets
import subprocess
import tempfile
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

from dreamvid.core.errors import DreamvidError
from dreamvid.core.files import fsync_folder
from dreamvid.media import colourspace as C
from dreamvid.media import ffmpeg
from dreamvid.media.read import probe_tags

__all__ = ["VIDEO_SUFFIXES", "VideoWriter", "join_videos", "output_problem", "part_colour", "probe_codec"]

_FALLBACK_CODEC = "libx264"
_NVENC_PRESETS = {  # x264 preset names -> NVENC p1 (fastest) .. p7 (best)
    "ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p3",
    "medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7", "placebo": "p7",
}
_MP4_LIKE = {".mp4", ".m4v", ".mov"}

# --- files and arguments ---------------------------------------------------------


def _temp_path(path: Path) -> Path:
    """Hidden sibling of ``path`` keeping its extension last (ffmpeg picks the muxer from it)."""
    return path.with_name(f".{path.stem}.partial-{os.getpid()}-{secrets.token_hex(3)}{path.suffix}")


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # pragma: no cover - e.g. a read-only folder; cleanup never raises
        pass


def _publish(tmp: Path, path: Path) -> Path:
    """fsync ``tmp`` and atomically rename it onto ``path`` (then fsync the folder)."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_folder(path.parent)
    return path


def _container_args(path: Path) -> list[str]:
    return ["-movflags", "+faststart"] if path.suffix.lower() in _MP4_LIKE else []


def _audio_args(audio: Path | str) -> list[str]:
    """Inputs/options after the video input #0: audio #1, AAC, padded then cut to the video."""
    audio = Path(audio)
    if not audio.is_file():
        raise DreamvidError(f"audio file not found: {audio}")
    return ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "192k",
            "-af", "apad", "-shortest"]


VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")  # containers that take every CODECS stream as is


def output_problem(path: Path | str) -> str | None:
    """Why ``path`` cannot become the video, or None; checked before hours of rendering.

    Its folders need not exist yet (the renderer creates them) but must be creatable.
    """
    path = Path(path)
    if path.is_dir():
        return "is a folder; expected a video file name"
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        return (f"unsupported video file extension {path.suffix or '(none)'!r}; expected a file name ending in "
                + ", ".join(VIDEO_SUFFIXES))
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder; expected a path whose folders can be created"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write in {folder}; expected a writable location"
    return None


def _mux(video_args: list[str], out: Path, audio: Path | str | None, what: str, video_filters=(),
         colour: C.Colour | None = None) -> Path:
    """Copy the video of ``video_args`` (+ optional audio) into ``out``, atomically; ``colour``:
    the tags the copied stream's container states (the stream's own are copied with it)."""
    extra = _audio_args(audio) if audio is not None else ["-map", "0:v:0"]
    tags = C.tag_args(colour) if colour is not None else []
    tmp = _temp_path(out)
    try:
        ffmpeg.run(["-v", "error", "-y", *video_args, *extra, "-c:v", "copy", *video_filters, *tags,
                    *_container_args(out), str(tmp)], what)
        return _publish(tmp, out)
    finally:
        _unlink(tmp)


# --- codecs --------------------------------------------------------------------


@functools.cache
def _encoders() -> frozenset[str]:
    out = ffmpeg.run(["-v", "error", "-encoders"], "listing encoders").stdout.decode(errors="replace")
    names = set()
    for line in out.splitlines():
        parts = line.split()
        # rows look like " V....D libx264   libx264 H.264 ..."; the legend has "=" in it
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS" and "=" not in parts:
            names.add(parts[1])
    return frozenset(names)


@functools.cache
def _nvenc_works() -> bool:
    """A tiny real encode: nvenc is compiled in everywhere but needs a GPU + driver."""
    try:
        proc = ffmpeg.run(["-v", "error", "-f", "lavfi", "-i", "testsrc2=s=256x256:r=16", "-frames:v", "16",
                           "-c:v", "h264_nvenc", "-pix_fmt", "yuv420p", "-f", "null", "-"], check=False, timeout=30)
    except (DreamvidError, subprocess.TimeoutExpired):  # ffmpeg cannot run, or the test encode hangs
        return False
    return proc.returncode == 0


def probe_codec(codec: str = "auto") -> str:
    """``"auto"``: h264_nvenc if a test encode works, else libx264. Other names must exist."""
    if codec == "auto":
        return "h264_nvenc" if "h264_nvenc" in _encoders() and _nvenc_works() else _FALLBACK_CODEC
    if codec not in _encoders():
        known = [c for c in ("libx264", "h264_nvenc", "libx265", "hevc_nvenc", "libvpx-vp9", "libsvtav1")
                 if c in _encoders()]
        raise DreamvidError(f"unknown video encoder {codec!r}; use 'auto' or one of: {', '.join(known)}")
    return codec


def _quality_args(codec: str, crf: float, preset: str | None) -> list[str]:
    if "nvenc" in codec:
        args = ["-rc", "vbr", "-cq", str(crf), "-b:v", "0"]
        if preset:
            args += ["-preset", _NVENC_PRESETS.get(preset, preset)]
        return args
    if codec in ("libx264", "libx264rgb", "libx265"):
        return ["-crf", str(crf)] + (["-preset", preset] if preset else [])
    if codec in ("libvpx-vp9", "libaom-av1", "libsvtav1"):
        return ["-crf", str(crf), "-b:v", "0"]
    return []


# --- writing -------------------------------------------------------------------

_STOP = object()  # queue sentinel


class VideoWriter:
    """Encode HxWx3 uint8 RGB frames to ``path``; see the module docstring.

    Use as a context manager: ``close()`` on success, ``abort()`` on any exception.
    """

    def __init__(self, path, size: tuple[int, int], fps: float, *, codec: str = "auto", crf=18,
                 preset: str | None = "medium", pix_fmt: str = "yuv420p", audio=None,
                 queue_size: int = 8, extra_output_params=(), colour: C.Colour | None = None):
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        self.fps = fps
        self.frames_written = 0
        self._audio = audio
        self._failure: str | None = None  # message once something went wrong
        self._thread_error: BaseException | None = None
        self._closed = False  # no more writes: closed or aborted
        self._published = False  # close() succeeded
        self._proc = None
        self._thread = None
        self._stderr = None
        self._tmp = _temp_path(self.path)
        w, h = self.size
        if w <= 0 or h <= 0:
            raise DreamvidError(f"video size must be positive, got {w}x{h}")
        if ("420" in pix_fmt and (w % 2 or h % 2)) or ("422" in pix_fmt and w % 2):
            raise DreamvidError(f"video size {w}x{h} must be even for {pix_fmt}; crop or pad the frames")
        if not self.path.parent.is_dir():
            raise DreamvidError(f"output folder does not exist: {self.path.parent}")
        if audio is not None:
            _audio_args(audio)  # fail now, not after hours of rendering
        self.codec = probe_codec(codec)
        self.colour = colour or C.for_writing(self.size, pix_fmt)  # how RGB becomes YCbCr, and the tags
        rate = str(Fraction(fps).limit_denominator(100000))
        args = ["-v", "error", "-y",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", rate, "-i", "pipe:0",
                "-an", "-vf", C.encode_filter(self.colour, pix_fmt), "-c:v", self.codec,
                *_quality_args(self.codec, crf, preset), "-pix_fmt", pix_fmt, *C.tag_args(self.colour),
                *_container_args(self.path), *map(str, extra_output_params), str(self._tmp)]
        # The filter converts colour only: 200x90 stays 200x90 (imageio's macro_block_size=16 would pad it).
        # stderr goes to a file (start_logged): we read its tail on error.
        self._proc, self._stderr = ffmpeg.start_logged(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                                       what=f"for {self.path}")
        self._queue: queue.Queue = queue.Queue(max(1, queue_size))
        self._thread = threading.Thread(target=self._feed, name=f"ffmpeg-writer:{self.path.name}", daemon=True)
        self._thread.start()

    # writer thread
    def _feed(self) -> None:
        try:
            while (frame := self._queue.get()) is not _STOP:
                self._proc.stdin.write(frame.data)  # BrokenPipeError if ffmpeg died
            self._proc.stdin.flush()
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            self._thread_error = err

    def _fail(self, why: str) -> None:
        """Remember the failure, clean up, raise it as one line."""
        if self._failure is None:
            self._failure = f"could not write {self.path}: {why}"
        self.abort()
        raise DreamvidError(self._failure)

    def _ffmpeg_died_reason(self) -> str:
        try:
            rc = self._proc.wait(timeout=ffmpeg.TERMINATE_WAIT_S)
        except subprocess.TimeoutExpired:
            return f"the {self.codec} encoder stopped reading frames"
        self._stderr.seek(0)
        reason = ffmpeg.reason(self._stderr.read(4000), default="")
        hint = "" if self.codec == _FALLBACK_CODEC else f"; try codec {_FALLBACK_CODEC!r}"
        return f"ffmpeg ({self.codec}) failed ({ffmpeg.exit_reason(rc)})" + (f": {reason}" if reason else "") + hint

    def _check_open(self) -> None:
        if self._failure is not None:
            raise DreamvidError(self._failure)
        if self._closed:
            raise DreamvidError(f"the video writer for {self.path} was already closed or aborted")

    def _check_alive(self) -> None:
        if self._failure is not None:
            raise DreamvidError(self._failure)
        if self._thread_error is not None or self._proc.poll() is not None:
            self._fail(self._ffmpeg_died_reason())

    def _put(self, item) -> None:
        while True:
            self._check_alive()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def write(self, frame) -> None:
        """Queue one HxWx3 uint8 RGB frame (copied: the caller may reuse its buffer)."""
        self._check_open()
        w, h = self.size
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", None)
        if shape != (h, w, 3) or dtype != np.uint8:
            raise DreamvidError(f"frame must be a {h}x{w}x3 uint8 RGB array (height x width x 3), "
                                f"got shape {shape} dtype {dtype}")
        self._put(np.array(frame, dtype=np.uint8, order="C", copy=True))
        self.frames_written += 1

    def close(self) -> Path:
        """Flush, finish ffmpeg, check it, publish the file atomically; returns ``path``."""
        if self._published:
            return self.path
        self._check_open()
        try:
            if self.frames_written == 0:
                self._fail("no frames were written")
            self._put(_STOP)
            self._thread.join()
            if self._thread_error is not None:
                self._fail(self._ffmpeg_died_reason())
            try:
                self._proc.stdin.close()
            except OSError:  # broken pipe: ffmpeg died, its exit status says why
                pass
            if self._proc.wait() != 0:  # no timeout: flushing a long render may take a while
                self._fail(self._ffmpeg_died_reason())
            if self._audio is not None:
                _mux(["-i", str(self._tmp)], self.path, self._audio, f"adding audio {self._audio} to {self.path}",
                     colour=self.colour)
            else:
                _publish(self._tmp, self.path)
            self._published = True
        except BaseException as err:
            if self._failure is None:
                self._failure = str(err) if isinstance(err, DreamvidError) else f"could not write {self.path}: {err!r}"
            self.abort()
            raise
        finally:
            self._closed = True
            self._cleanup_files()
        return self.path

    def abort(self) -> None:
        """Kill ffmpeg, stop the thread, remove the temp file. Idempotent, never raises."""
        self._closed = True
        proc, thread = self._proc, self._thread
        try:
            if proc is not None and proc.poll() is None:
                proc.terminate()  # first: a write blocked on a full pipe fails, so the thread can stop
            if thread is not None and thread.is_alive():
                try:  # drop queued frames, then let the thread finish its current write and stop
                    while True:
                        self._queue.get_nowait()
                except queue.Empty:
                    pass
                self._queue.put_nowait(_STOP)
                thread.join(timeout=ffmpeg.TERMINATE_WAIT_S)
            if proc is not None:  # its stdin is closed only once the thread no longer writes to it
                ffmpeg.stop(proc, terminate=False, close_pipes=not (thread is not None and thread.is_alive()))
        except BaseException:  # noqa: BLE001 - cleanup must not mask the original error
            if proc is not None and proc.poll() is None:
                proc.kill()  # e.g. a second Ctrl-C during the waits above
        finally:
            self._cleanup_files()

    def _cleanup_files(self) -> None:
        _unlink(self._tmp)
        if self._stderr is not None:
            try:
                self._stderr.close()
            except OSError:  # pragma: no cover
                pass

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):  # last resort, e.g. a writer dropped without close()
        if getattr(self, "_closed", True) is False:
            self.abort()


# --- joining --------------------------------------------------------------------


def join_videos(parts: list[Path], out: Path, *, audio: Path | None = None,
                durations: list[float] | None = None, fps: float | None = None,
                colour: C.Colour | None = None) -> Path:
    """Concatenate video files made with the same settings, without re-encoding.

    ``colour``: the parts' colour (:attr:`VideoWriter.colour`), stated again on the joined
    stream, in its container and, for H.264 and HEVC, in the stream itself (a part that an
    earlier release wrote untagged, then resumed, gets the tags of the matrix it was made with).

    Optional ``audio`` is encoded to AAC, padded with silence and cut to the video length.
    ``durations`` (seconds, one per part; frames / fps) spares the concat demuxer from
    trusting the containers' rounded durations, which leave timestamp gaps at the joins
    (a 12 fps video came out as 12.01 fps without them). With ``fps`` (constant-rate parts)
    the decode timestamps are renumbered frame by frame: parts whose encoders delayed
    decoding by different numbers of frames (B-frames; a short last part has fewer) would
    otherwise leave a hole in them, which made the container's frame rate wrong (a 10-frame
    12 fps video read back as 12 frames at 10 fps).
    """
    parts = [Path(p) for p in parts]
    out = Path(out)
    if not parts:
        raise DreamvidError(f"nothing to join into {out}: no parts given")
    for p in parts:
        if not p.is_file():
            raise DreamvidError(f"video part not found: {p}")
    # concat demuxer list; paths quoted with '...' ('\'' for a quote inside)
    listing = "".join("file '{}'\n".format(str(p.resolve()).replace("'", "'\\''")) for p in parts)
    if durations is not None:
        listing = "".join(f"{line}\nduration {d:.9f}\n" for line, d in zip(listing.splitlines(), durations))
    fd, list_path = tempfile.mkstemp(prefix=f".{out.stem}.concat-", suffix=".txt", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(listing)
        bsfs = [_retag_bsf(parts[0], colour)] if colour is not None else []
        if fps is not None and len(parts) > 1:
            rate = Fraction(fps).limit_denominator(100000)
            delay = max(_decode_delay(p) for p in parts)
            bsfs.append(f"setts=pts=PTS:dts=(N-{delay})*{rate.denominator}/({rate.numerator}*TB)")
        bsfs = [b for b in bsfs if b]
        return _mux(["-f", "concat", "-safe", "0", "-i", list_path], out, audio,
                    f"joining {len(parts)} parts into {out}", ["-bsf:v", ",".join(bsfs)] if bsfs else [], colour)
    finally:
        _unlink(Path(list_path))


def _decode_delay(path: Path) -> int:
    """How many frames the decoder of ``path``'s video lags behind its presentation (B-frames:
    the first packet's pts - dts, in frames)."""
    proc = ffmpeg.run(["-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-frames:v", "1", "-f", "framecrc", "-"],
                       f"reading the timestamps of {path}")  # fmt: skip
    for line in proc.stdout.decode(errors="replace").splitlines():
        if not line.startswith("#"):
            _, dts, pts, duration = (int(v) for v in line.split(",")[:4])
            return max(0, round((pts - dts) / duration)) if duration > 0 else 0
    return 0


# H.273 code points of the colours dreamvid writes, for the metadata bitstream filters
_H273_MATRIX = {"gbr": 0, "bt709": 1, "smpte170m": 6}
_H273_PRIMARIES = {"bt709": 1}
_H273_TRANSFER = {"bt709": 1}


def _retag_bsf(part: Path, colour: C.Colour) -> str:
    """The bitstream filter that writes ``colour``'s tags into every H.264 / HEVC parameter set
    of the joined stream ("" for another codec, or a colour without code points here)."""
    codec = probe_tags(part)[0]
    matrix, primaries = _H273_MATRIX.get(colour.matrix), _H273_PRIMARIES.get(colour.primaries)
    transfer = _H273_TRANSFER.get(colour.transfer)
    if codec not in ("h264", "hevc") or None in (matrix, primaries, transfer):
        return ""
    return (f"{codec}_metadata=colour_primaries={primaries}:transfer_characteristics={transfer}"
            f":matrix_coefficients={matrix}:video_full_range_flag={int(colour.range == 'pc')}")


def part_colour(part: Path, size: tuple[int, int], pix_fmt: str) -> C.Colour:
    """The colour a render's encoded ``part`` was written with, which the rest of its render
    keeps: its tags, or for an untagged part (written before colours were tagged) the matrix
    ffmpeg converts with by default, BT.601."""
    tags = probe_tags(part)[1]
    return C.for_writing(size, pix_fmt, tags.matrix or C.FFMPEG_MATRIX)
