"""The motion preview: a schedule's camera path without dreaming.

Frame 0 is the input (the fitted image, noise, or a clip's frame 0); frame n is frame n-1
moved by frame n's camera (:class:`.step.Motion`, the very warps a render's step starts with:
with a clip input, the clip's frame n blended with the flow-warped previous frame, then moved).
So the preview equals a render of the schedule with ``iterations: 0`` and colour control off,
frame for frame. Each frame can carry a caption in its top-left corner (frame number, segment,
its strongest layer) and a small map of the frame in its bottom-right corner with a dot on the
zoom centre: both stay out of the middle of the frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from dreamvid.core.errors import InputError, describe_os_error
from dreamvid.core.progress import Callback, Progress, ignore
from dreamvid.engine.model import pick_device
from dreamvid.media.write import VideoWriter, output_problem, probe_codec
from dreamvid.pixels.images import to_uint8
from dreamvid.rendering.step import Motion
from dreamvid.schedule.schedule import FrameParams, Schedule

MOTION_SUFFIX = ".motion.mp4"  # the motion preview's default name: <output stem>.motion.mp4 beside the output


def motion_frames(schedule: Schedule, *, start: int = 0, stop: int | None = None, captions: bool = False,
                  device: str | None = None, callback: Callback = ignore) -> Iterator[np.ndarray]:  # fmt: skip
    """Frames ``start`` .. ``stop - 1`` of the camera path, HxWx3 uint8 RGB (see the module doc).
    Each costs one warp (frame n needs frames 0..n-1 first)."""
    total = schedule.total_frames
    stop = total if stop is None else stop
    if not 0 <= start < stop <= total:
        raise InputError(f"frames {start}..{stop - 1} are outside the schedule; expected frames within 0..{total - 1}")
    motion = Motion(schedule, schedule.size, 1.0, pick_device(device or schedule.device))
    callback(Progress("start", frame=0, total=stop, start=0))
    try:
        frame = None
        for n in range(stop):
            frame = motion.first_frame() if n == 0 else motion.start(frame, n, schedule.params(n))[0]
            callback(Progress("frame", frame=n + 1, total=stop, start=0, segment=schedule.segment_of(n)[0]))
            if n >= start:
                rgb = to_uint8(frame).cpu().numpy()
                yield caption(rgb, schedule.params(n)) if captions else rgb
    finally:
        motion.close()


def default_path(schedule: Schedule, output: Path | None = None) -> Path:
    """Where the motion preview goes by default: ``<output stem>.motion.mp4`` beside the output."""
    output = output or schedule.output_path
    if output is None:
        raise InputError(f"{schedule.source}: output: no output file; expected `output:` in the schedule, "
                         "or -o for the motion preview")  # fmt: skip
    output = Path(output)
    return output.with_name(output.stem + MOTION_SUFFIX)


def write_motion(schedule: Schedule, path: Path, *, captions: bool = True, device: str | None = None,
                 callback: Callback = ignore) -> Path:  # fmt: skip
    """Encode the camera path into ``path`` with the schedule's encoder settings; the file
    appears only when complete (:class:`~dreamvid.media.write.VideoWriter`)."""
    path = Path(path).absolute()
    try:  # as a render makes its output's folder (its work folder goes there)
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{path}: {describe_os_error(err)}") from None
    problem = output_problem(path)
    if problem:
        raise InputError(f"{path}: {problem}")
    enc = schedule.encoder
    codec = probe_codec(enc.codec)
    with VideoWriter(path, schedule.size, schedule.frame_rate, codec=codec, crf=enc.crf, preset=enc.preset,
                     pix_fmt=enc.pix_fmt) as writer:  # fmt: skip
        for rgb in motion_frames(schedule, captions=captions, device=device, callback=callback):
            writer.write(rgb)
    callback(Progress("done", frame=schedule.total_frames, total=schedule.total_frames, message=str(path)))
    return path


# -- captions -----------------------------------------------------------------------------------

CAPTION_WIDTH = 0.45  # the caption's box at most this share of the frame's width (top-left corner)
MAP_WIDTH = 0.15  # the zoom centre's map: this share of the frame's width (bottom-right corner)


def caption(rgb: np.ndarray, p: FrameParams) -> np.ndarray:
    """``rgb`` with frame ``p.index``'s caption in the top-left corner and the zoom centre's map
    in the bottom-right one (a copy)."""
    out = np.ascontiguousarray(rgb).copy()
    _label(out, f"frame {p.index}  seg {p.segment}  {strongest_layer(p)}")
    _centre_map(out, p.center)
    return out


def strongest_layer(p: FrameParams) -> str:
    """The frame's layer with the largest weight (``-`` for none)."""
    return max(p.layers.items(), key=lambda kv: abs(kv[1]))[0] if p.layers else "-"


def _label(img: np.ndarray, text: str) -> None:
    h, w = img.shape[:2]
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, 1
    scale = max(0.3, h / 900)
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    if tw > CAPTION_WIDTH * w:  # shrink to fit the corner
        scale *= CAPTION_WIDTH * w / tw
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    pad = max(2, th // 3)
    cv2.rectangle(img, (0, 0), (tw + 2 * pad, th + base + 2 * pad), (0, 0, 0), -1)
    cv2.putText(img, text, (pad, pad + th), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


def _centre_map(img: np.ndarray, center: tuple[float, float]) -> None:
    h, w = img.shape[:2]
    mw = max(8, round(MAP_WIDTH * w))
    mh = max(6, round(mw * h / w))
    x0, y0 = w - mw - 2, h - mh - 2
    cv2.rectangle(img, (x0, y0), (x0 + mw, y0 + mh), (0, 0, 0), -1)
    cv2.rectangle(img, (x0, y0), (x0 + mw, y0 + mh), (255, 255, 255), 1)
    cx = x0 + round(min(max(center[0], 0.0), 1.0) * mw)
    cy = y0 + round(min(max(center[1], 0.0), 1.0) * mh)
    cv2.drawMarker(img, (cx, cy), (255, 64, 64), cv2.MARKER_CROSS, max(3, mw // 5), 1)

