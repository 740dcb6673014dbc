"""Optical flow between source frames, and the flow-warped start image of a video frame.

A *flow method* is a function ``flow(a, b) -> f`` with one signature for all methods: ``a`` and
``b`` are (N, 3, H, W) float32 RGB images in [0, 1] on any device; ``f`` is (N, 2, H, W) float32
on the same device, in pixels (``f[:, 0]`` = x, right; ``f[:, 1]`` = y, down), such that

    a[p] ~ b[p + f[p]]        (where each pixel of ``a`` is found in ``b``)

so ``warp(b, f)`` redraws ``b`` with ``a``'s geometry. For video frame n, the *backward* flow
``flow(source[n], source[n-1])`` tells where each pixel of frame n was in frame n-1; warping the
previous *output* along it carries the dream along with the motion::

    start = (1 - flow_blend) * source[n] + flow_blend * warp(out[n-1], backward)

and pixels that the forward-backward check marks as occluded or newly visible take the source
pixel (:func:`start_image`). Methods (:func:`flow_method` by name):

- ``dis``: OpenCV's DIS (dense inverse search), CPU, the default: fast and good on the large
  smooth motions of camera moves (preset in :data:`DIS_PRESET`, measured in docs/video.md);
- ``farneback``: OpenCV's Farneback polynomial expansion, CPU;
- ``raft``: torchvision's RAFT (large or small, told apart by the weights) on the render's
  device, from a local weights file: nothing is ever downloaded; frames larger than
  :data:`~dreamvid.core.defaults.RAFT_MAX_PIXELS` are estimated at that size and the flow
  scaled up (:func:`capped`), which bounds RAFT's all-pairs correlation volume;
- ``none``: no motion compensation, the previous output is blended as is (DeepDreamVideo).

The methods in :data:`HOST_METHODS` run on the CPU whatever the render's device: a video
render computes them from the clip's host frames, on CUDA one frame ahead in a thread
(:mod:`dreamvid.rendering.video_input`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import isqrt
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dreamvid.core import defaults as D
from dreamvid.core.errors import InputError, first_line

__all__ = [
    "METHODS",
    "FlowFn",
    "HOST_METHODS",
    "Start",
    "capped",
    "capped_size",
    "dis",
    "farneback",
    "flow_method",
    "flows",
    "occlusion",
    "pull_toward",
    "raft",
    "start_image",
    "temporal_pull",
    "warp",
]

FlowFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
METHODS = ("dis", "farneback", "raft", "none")
HOST_METHODS = ("dis", "farneback")  # OpenCV's: CPU code, on any render device
DIS_PRESET = "medium"  # 2x closer to the true motion than "fast" on non-rigid motion, same cost at 256x144 (docs/video.md)
OCCLUSION_ALPHA = 0.01  # forward-backward check of Sundaram et al. 2010 (also Ruder et al. 2016):
OCCLUSION_BETA = 0.5  # |b + f(p+b)|^2 > alpha (|b|^2 + |f(p+b)|^2) + beta  (pixels^2)
MATCH_TOLERANCE = 0.1  # mean |RGB| gap (in [0, 1]) between the warped previous source and the source
# above which a pixel is not trusted either: scene cuts, flashes, failed flow (a good flow leaves < 0.01)
RAFT_ITERATIONS = 12  # torchvision's default number of flow updates
_RAFT_MIN_SIDE = 128  # RAFT's correlation pyramid divides by 64: smaller frames are padded up


# --- flow methods ------------------------------------------------------------------


def _gray_u8(x: torch.Tensor) -> list[np.ndarray]:
    """(N, 3, H, W) in [0, 1] -> N HxW uint8 luma images on the CPU (what OpenCV's flows take)."""
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    y = ((x * w).sum(1).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return list(y)


def _opencv_flow(calc: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> FlowFn:
    def flow(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = [torch.from_numpy(calc(ga, gb)) for ga, gb in zip(_gray_u8(a), _gray_u8(b))]
        return torch.stack(out).permute(0, 3, 1, 2).to(a.device)

    return flow


def dis(preset: str = DIS_PRESET) -> FlowFn:
    """OpenCV's DIS optical flow (Kroeger et al. 2016) with ``preset`` ultrafast, fast or medium."""
    presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    if preset not in presets:
        raise InputError(f"unknown DIS preset {preset!r}; expected one of {', '.join(presets)}")
    engine = cv2.DISOpticalFlow_create(presets[preset])
    return _opencv_flow(lambda a, b: engine.calc(a, b, None))


def farneback(levels: int = 5, winsize: int = 15, iterations: int = 3) -> FlowFn:
    """OpenCV's Farneback flow (pyramid scale 0.5, poly_n 5, sigma 1.1, OpenCV's example values)."""
    return _opencv_flow(lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, levels, winsize,
                                                                  iterations, 5, 1.1, 0))


def capped_size(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """(height, width) ``size`` scaled down, keeping its aspect, to at most ``max_pixels``
    pixels (unchanged when it has no more)."""
    h, w = size
    if h * w <= max_pixels:
        return h, w
    return max(1, isqrt(max_pixels * h // w)), max(1, isqrt(max_pixels * w // h))


def capped(flow: FlowFn, max_pixels: int) -> FlowFn:
    """``flow`` run on images of at most ``max_pixels`` pixels: larger ones are scaled down
    (bilinear, antialiased), and the flow they give is scaled back up to their size, bilinear,
    its vectors multiplied by the scale (x by the widths' ratio, y by the heights'). Images of
    ``max_pixels`` or fewer go to ``flow`` as they are."""

    def flow_capped(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h, w = a.shape[-2:]
        small = capped_size((h, w), max_pixels)
        if small == (h, w):
            return flow(a, b)
        a2, b2 = (F.interpolate(x, size=small, mode="bilinear", align_corners=False, antialias=True) for x in (a, b))
        f = F.interpolate(flow(a2, b2), size=(h, w), mode="bilinear", align_corners=False)
        scale = torch.tensor([w / small[1], h / small[0]], device=f.device, dtype=f.dtype).view(1, 2, 1, 1)
        return f * scale

    return flow_capped


def raft(weights: str | Path, device: str | torch.device = "cpu", iterations: int = RAFT_ITERATIONS,
         max_pixels: int = D.RAFT_MAX_PIXELS) -> FlowFn:  # fmt: skip
    """torchvision's RAFT loaded from ``weights``: a local state-dict file of ``raft_large`` or
    ``raft_small`` (e.g. torchvision's ``Raft_Large_Weights.C_T_SKHT_V2`` file), run on ``device``.

    The architecture is picked by which one the file fits. A missing or unusable file is a
    one-line ``InputError``; nothing is ever downloaded. Images of more than ``max_pixels``
    are estimated at that many (:func:`capped`): RAFT's correlation volume holds
    (H/8 x W/8)^2 values per image pair, about 5.7 GB at 1920x1080 and 1.1 GB at 1280x720.
    """
    from torchvision.models.optical_flow import raft_large, raft_small

    path = Path(weights)
    expected = "expected a local weights file (state dict) of torchvision's raft_large or raft_small"
    if not path.is_file():
        raise InputError(f"{path}: RAFT weights not found; {expected} (dreamvid never downloads weights)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file: pickle, zip, EOF errors
        raise InputError(f"{path}: not a readable weights file ({first_line(err)[:120]}); {expected}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    model = None
    for build in (raft_large, raft_small):
        candidate = build(weights=None, progress=False)
        try:
            candidate.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError):
            continue
        model = candidate
        break
    if model is None:
        raise InputError(f"{path}: the weights fit neither raft_large nor raft_small; {expected}")
    model = model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)

    def flow(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h, w = a.shape[-2:]
        ph, pw = max(_RAFT_MIN_SIDE, -(-h // 8) * 8) - h, max(_RAFT_MIN_SIDE, -(-w // 8) * 8) - w
        pad = (0, pw, 0, ph)  # right and bottom, replicated: coordinates of (0, 0) unchanged
        dev = next(model.parameters()).device
        a2 = F.pad(a.to(dev) * 2 - 1, pad, mode="replicate")
        b2 = F.pad(b.to(dev) * 2 - 1, pad, mode="replicate")
        with torch.no_grad():
            f = model(a2, b2, num_flow_updates=iterations)[-1]
        return f[:, :, :h, :w].float().to(a.device)

    return capped(flow, max_pixels)


def flow_method(name: str, *, weights: str | Path | None = None, device: str | torch.device = "cpu") -> FlowFn | None:
    """The flow function for a schedule's ``flow:`` value; None for ``none`` (plain blend)."""
    if name == "none":
        return None
    if name == "dis":
        return dis()
    if name == "farneback":
        return farneback()
    if name == "raft":
        if weights is None:
            raise InputError("flow raft needs a weights file; expected the path of a local raft_large or "
                             "raft_small state-dict file")
        return raft(weights, device)
    raise InputError(f"unknown flow method {name!r}; expected one of {', '.join(METHODS)}")


# --- warping and occlusion --------------------------------------------------------


def _grid(flow: torch.Tensor) -> torch.Tensor:
    """grid_sample's grid (N, H, W, 2) in [-1, 1] for sampling at ``p + flow[p]``."""
    n, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    x = (xs + flow[:, 0]) * (2.0 / w) + (1.0 / w - 1.0)  # pixel centres, align_corners=False
    y = (ys + flow[:, 1]) * (2.0 / h) + (1.0 / h - 1.0)
    return torch.stack((x, y), dim=-1)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` (N, C, H, W) redrawn at ``p + flow[p]`` (bilinear; outside: nearest border pixel)."""
    flow = flow.to(image.device, image.dtype)
    return F.grid_sample(image, _grid(flow), mode="bilinear", padding_mode="border", align_corners=False)


def occlusion(backward: torch.Tensor, forward: torch.Tensor, alpha: float = OCCLUSION_ALPHA,
              beta: float = OCCLUSION_BETA) -> torch.Tensor:  # fmt: skip
    """(N, 1, H, W) bool, True where the previous frame cannot be trusted for a pixel of frame n.

    ``backward`` = flow(source[n], source[n-1]), ``forward`` = flow(source[n-1], source[n]).
    A pixel is occluded or newly visible when following it back and then forward does not
    return it home (the forward-backward check), or when it came from outside the frame.
    """
    fwd_at = warp(forward, backward)  # forward flow at p + backward[p]
    err = (backward + fwd_at).square().sum(1, keepdim=True)
    scale = backward.square().sum(1, keepdim=True) + fwd_at.square().sum(1, keepdim=True)
    inconsistent = err > alpha * scale + beta
    _, _, h, w = backward.shape
    xs = torch.arange(w, device=backward.device, dtype=backward.dtype).view(1, 1, 1, w) + backward[:, :1]
    ys = torch.arange(h, device=backward.device, dtype=backward.dtype).view(1, 1, h, 1) + backward[:, 1:]
    outside = (xs < -0.5) | (xs > w - 0.5) | (ys < -0.5) | (ys > h - 0.5)
    return inconsistent | outside


def flows(flow: FlowFn, source: torch.Tensor, prev_source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(backward, forward) flows between two source frames, in one call of ``flow`` (batch of 2)."""
    both = flow(torch.cat([source, prev_source]), torch.cat([prev_source, source]))
    return both[:1], both[1:]


# --- the start image of a video frame -------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Where dreaming frame n starts, and what the temporal term pulls toward."""

    image: torch.Tensor  # (1, 3, H, W): the blended start image
    target: torch.Tensor  # (1, 3, H, W): source[n] + warp(out[n-1] - source[n-1]), see start_image
    valid: torch.Tensor  # (1, 1, H, W) float: 1 where the previous frame is trusted, 0 where occluded


def start_image(source: torch.Tensor, prev_source: torch.Tensor, prev_out: torch.Tensor, flow_blend: float,
                flow: FlowFn | tuple[torch.Tensor, torch.Tensor] | None) -> Start:  # fmt: skip
    """``(1 - flow_blend) * source + flow_blend * warp(prev_out)``; occluded pixels take ``source``.

    A pixel counts as occluded when the forward-backward check says so (:func:`occlusion`) or
    when the previous *source* frame, warped the same way, does not match the source there
    (by more than :data:`MATCH_TOLERANCE`): so a scene cut starts afresh from the new source.
    ``flow``: a flow method, or the ``(backward, forward)`` pair :func:`flows` already computed
    (say in a thread while the previous frame was dreamed); None: no motion compensation and
    no occlusion, DeepDreamVideo's plain blend.
    All tensors (1, 3, H, W) in [0, 1] on the render's device; ``prev_source`` is the source
    frame ``prev_out`` was dreamed from.

    ``target`` (for :func:`pull_toward`) is the previous frame's *dream* carried along the flow
    onto this frame's source, ``source + warp(prev_out - prev_source)``: pulling toward it keeps
    the dream's patterns where they were, while changes of the clip that no motion explains
    (a fade, lighting, expressions) still come through from the source (docs/video.md).
    """
    if flow is None:
        moved_out, moved_source, valid = prev_out, prev_source, torch.ones_like(source[:, :1])
    else:
        backward, forward = flow if isinstance(flow, tuple) else flows(flow, source, prev_source)
        moved_out, moved_source = warp(torch.cat([prev_out, prev_source], 1), backward).split(3, 1)
        match = (moved_source - source).abs().mean(1, keepdim=True) <= MATCH_TOLERANCE
        valid = (match & ~occlusion(backward, forward)).to(source.dtype)
    b = float(flow_blend)
    image = source + (b * valid) * (moved_out - source)
    target = source + (moved_out - moved_source)
    return Start(image.clamp(0.0, 1.0), target.clamp(0.0, 1.0), valid)


def temporal_pull(x: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, strength: float) -> torch.Tensor:
    """Move ``x`` a fraction ``strength`` of the way toward ``target`` where ``valid``.

    Run after each gradient step of a video frame (with ``target`` and ``valid`` resized and
    rolled like ``x``), it keeps the new dream close to the previous one carried along the
    motion, which removes most of the remaining flicker (docs/video.md).
    """
    return x - (strength * valid) * (x - target)


def pull_toward(start: Start, strength: float) -> Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]:
    """The temporal term as ``dream(..., after_step=pull_toward(start, strength))``.

    After every gradient step, :func:`temporal_pull` the image ``strength`` of the way toward
    ``start.target`` on trusted pixels: the target and mask are resized to the
    octave's size and rolled with the jitter, like the image. ``strength`` 0: no change at all.
    """
    cache: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def after_step(x: torch.Tensor, roll: tuple[int, int]) -> torch.Tensor:
        if not strength:
            return x
        size = tuple(x.shape[-2:])
        if size not in cache:
            resize = (lambda t: t) if size == tuple(start.target.shape[-2:]) else (
                lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True))
            cache[size] = resize(start.target).to(x.dtype), resize(start.valid).to(x.dtype)
        target, valid = cache[size]
        if roll != (0, 0):
            target, valid = torch.roll(target, roll, (2, 3)), torch.roll(valid, roll, (2, 3))
        return temporal_pull(x, target, valid, strength)

    return after_step
