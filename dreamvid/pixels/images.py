"""Reading, fitting and writing still images (OpenCV on the CPU, once per render).

Images travel inside dreamvid as float32 tensors (1, 3, H, W), RGB in [0, 1].
Any image OpenCV reads works: grayscale is repeated to RGB, 16-bit is scaled down, and
transparency is composited over white (logos are usually drawn on transparent canvases).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from dreamvid.core import defaults as D
from dreamvid.core.errors import InputError
from dreamvid.core.files import write_atomic

VIDEO_TOO = "an image (PNG, JPEG, TIFF, WebP, BMP ...) or a video ffmpeg can decode (MP4, MOV, MKV, WebM ...)"


def read_image(path: str | Path, *, video_too: bool = False) -> np.ndarray:
    """HxWx3 float32 RGB in [0, 1]. ``video_too``: the file could have been a video as well
    (a schedule's ``input``), and the error message says so."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image not found")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise InputError(f"{path}: cannot read the image ({err.strerror or err}); expected a readable file") from None
    img, complaint = _decode(data) if data.size else (None, "empty file")
    if img is not None and img.shape[0] * img.shape[1] > D.MAX_INPUT_PIXELS:  # cv2 was imported before dreamvid
        img, complaint = None, f"{img.shape[1]}x{img.shape[0]}: more than {D.MAX_INPUT_PIXELS} pixels"
    if img is None:
        why = f" ({complaint})" if complaint else ""
        if video_too:
            raise InputError(f"{path}: neither a readable image nor a video{why}; expected {VIDEO_TOO}")
        raise InputError(f"{path}: not a readable image{why}; expected PNG, JPEG, TIFF, WebP, BMP ...")
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype, 1.0)
    img = img.astype(np.float32) / scale
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        alpha = img[:, :, 3:4]
        img = img[:, :, :3] * alpha + (1.0 - alpha)  # over white
    elif img.shape[2] == 2:  # gray + alpha
        alpha = img[:, :, 1:2]
        img = np.repeat(img[:, :, :1] * alpha + (1.0 - alpha), 3, axis=2)
    img = img[:, :, :3][:, :, ::-1]  # BGR -> RGB
    return np.ascontiguousarray(np.clip(img, 0.0, 1.0))


def _decode(data: np.ndarray) -> tuple[np.ndarray | None, str]:
    """``cv2.imdecode`` and the first line libpng/libjpeg printed while it ran.

    Those libraries write to file descriptor 2 directly ("libpng error: ..."), which would
    break the CLI's one-line error; we catch it around the call (read_image runs once,
    before any progress bar) and put it into our message instead.
    """
    with tempfile.TemporaryFile() as log:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(log.fileno(), 2)
            img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        except cv2.error as err:  # OpenCV's own checks, e.g. a header claiming more pixels than it decodes
            why = (f"its header claims more than {os.environ.get('OPENCV_IO_MAX_IMAGE_PIXELS')} pixels"
                   if "CV_IO_MAX_IMAGE_PIXELS" in str(err) else "OpenCV error")
            return None, why
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        lines = log.read(4000).decode(errors="replace").strip().splitlines()
    return img, (lines[0].strip() if lines else "")


def fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale to cover ``size`` = (width, height), then crop the centre."""
    w, h = size
    ih, iw = img.shape[:2]
    s = max(w / iw, h / ih)
    nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    img = cv2.resize(img, (nw, nh), interpolation=interp)
    x0, y0 = (nw - w) // 2, (nh - h) // 2
    return np.clip(img[y0 : y0 + h, x0 : x0 + w], 0.0, 1.0)


def noise_image(size: tuple[int, int], generator: torch.Generator) -> np.ndarray:
    """Soft grey noise, the usual start for dreaming from nothing."""
    w, h = size
    return (0.5 + 0.1 * torch.randn(h, w, 3, generator=generator)).clamp(0, 1).numpy()


def to_tensor(img: np.ndarray, device="cpu") -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].to(device)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device`` without the host waiting for the device: on CUDA through
    pinned memory with ``non_blocking`` (a plain copy from pageable memory waits until the
    device has done all the work queued before it); elsewhere ``t`` as it is or copied."""
    if torch.device(device).type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device, non_blocking=True)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> (H, W, 3) uint8, on the tensor's device."""
    return (x[0].clamp(0, 1) * 255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous()


def jpeg(rgb8: np.ndarray, *, max_side: int, quality: int, comment: str = "") -> bytes:
    """``rgb8`` (HxWx3 uint8) as JPEG bytes, shrunk so that its longer side is at most
    ``max_side``, with ``comment`` in a COM segment right after the start marker (ASCII;
    :func:`dreamvid.rendering.workdir.peek_frame` reads it back)."""
    h, w = rgb8.shape[:2]
    k = max_side / max(h, w)
    small = rgb8
    if k < 1:  # shrink first: the colour swap then copies the small picture only
        step = int(1 / k) // 2 or 1  # a plain stride first halves INTER_AREA's work at 1080p and up
        small = cv2.resize(rgb8[::step, ::step], (max(1, round(w * k)), max(1, round(h * k))),
                           interpolation=cv2.INTER_AREA)  # fmt: skip
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InputError("could not encode a JPEG")
    data = buf.tobytes()
    if comment:
        text = comment.encode("ascii")
        data = data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:]
    return data


def write_png(path: str | Path, rgb8: np.ndarray) -> Path:
    """Write atomically: temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb8[:, :, ::-1]))
    if not ok:
        raise InputError(f"{path}: could not encode PNG")
    return write_atomic(path, buf.tobytes())


def check_images(schedule) -> None:
    """A schedule's guide and mask images (``schedule.images()``) must decode: found before any
    work, each named by its key."""
    for key, path in schedule.images():
        try:
            read_image(path)
        except InputError as err:
            raise InputError(f"{schedule.source}: {key}: {err}") from None
