"""The warp error of a rendered video under its schedule's camera (``dreamvid stats --schedule``).

Temporal consistency as Lai et al. (2018, "Learning Blind Video Temporal Consistency") measure it:
for each frame n >= 1, the previous output frame n-1 moved *forward* by frame n's camera move
(exactly as the render moves it: :func:`.camera.affine_theta` with the schedule's per-frame zoom,
rotate, translate, centre and camera) against frame n, over the valid pixels only, the mean squared
difference of [0, 1] RGB. A pixel is valid when the point it samples in frame n-1 lies within the
frame's outermost pixel centres, so bilinear sampling reads real pixels only (what the render fills
by reflection at the borders is left out). Frame 0 has no previous frame: its value is 0 and it is
left out of the mean.

With a source clip instead (``dreamvid stats --source CLIP``, as Lai et al.: the motion is the
input's, not the output's): the clip's frame n (fitted to the video's size as a render fits it)
gives the backward flow to its frame n-1 (DIS, :mod:`dreamvid.pixels.flow`), the previous output
frame is warped along it onto frame n, and the valid pixels are those the forward-backward check
does not mark as occluded or come from outside the frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from dreamvid.core.errors import InputError
from dreamvid.media.read import ClipReader, probe_clip
from dreamvid.pixels import flow as flows
from dreamvid.pixels.camera import affine_theta
from dreamvid.pixels.images import fit
from dreamvid.schedule.schedule import Schedule


def schedule_thetas(schedule: Schedule, size: tuple[int, int]) -> Iterator[torch.Tensor]:
    """Frame n's camera move (2x3, output to input, grid units) for n = 1, 2, ... at a video of
    ``size`` (W, H): translation in pixels scales with the width, as a render's ``scale`` does."""
    k = size[0] / schedule.size[0]
    for n in range(1, schedule.total_frames):
        p = schedule.params(n)
        yield affine_theta(size, p.zoom, p.rotate, (p.translate[0] * k, p.translate[1] * k), p.center, p.camera)


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    """(1, 3, H, W) float64 in [0, 1] of an HxWx3 uint8 frame."""
    return torch.tensor(rgb).permute(2, 0, 1)[None].double() / 255.0


def _masked_mse(moved: torch.Tensor, current: torch.Tensor, valid: torch.Tensor) -> float:
    """Mean over the ``valid`` pixels (bool, (1, H, W)) of the squared difference averaged over RGB;
    NaN when none is valid."""
    if not bool(valid.any()):
        return float("nan")
    return float(((moved - current) ** 2).mean(dim=1)[valid].mean())


def pair_error(previous: np.ndarray, current: np.ndarray, theta: torch.Tensor) -> float:
    """The mean squared difference of ``current`` and ``previous`` moved by ``theta`` (uint8 HxWx3
    frames), over the pixels whose sampled point lies within the frame's pixel centres."""
    h, w = current.shape[:2]
    grid = F.affine_grid(theta.double()[None], [1, 3, h, w], align_corners=False)
    moved = F.grid_sample(_tensor(previous), grid, mode="bilinear", padding_mode="border", align_corners=False)
    valid = (grid[..., 0].abs() <= 1 - 1 / w) & (grid[..., 1].abs() <= 1 - 1 / h)  # (1, H, W)
    return _masked_mse(moved, _tensor(current), valid)


def warp_errors(frames: Iterable[np.ndarray], schedule: Schedule, video: str = "the video") -> list[float]:
    """Per-frame warp error of ``frames`` (frame 0: 0.0) under ``schedule``'s camera."""
    if schedule.clip is not None:
        raise InputError(f"{schedule.source}: input: a video clip, whose motion is not the camera alone; expected "
                         "a schedule with an image or noise input for stats --schedule")  # fmt: skip
    out: list[float] = []
    thetas: Iterator[torch.Tensor] | None = None
    previous = None
    for n, rgb in enumerate(frames):
        if previous is None:
            thetas = schedule_thetas(schedule, (rgb.shape[1], rgb.shape[0]))
            out.append(0.0)
        else:
            theta = next(thetas, None)
            if theta is None:
                raise InputError(f"{video}: more frames than the schedule {schedule.source} has "
                                 f"({schedule.total_frames}); expected the video that schedule renders")  # fmt: skip
            out.append(pair_error(previous, rgb, theta))
        previous = rgb
    return out


def flow_pair_error(previous: np.ndarray, current: np.ndarray, prev_source: np.ndarray, source: np.ndarray,
                    flow: flows.FlowFn) -> float:  # fmt: skip
    """The mean squared difference of ``current`` and ``previous`` warped along the source's backward
    flow (source -> prev_source), over the pixels the forward-backward check keeps (uint8 frames)."""
    src, prev_src = (_tensor(x).float() for x in (source, prev_source))
    backward, forward = flows.flows(flow, src, prev_src)
    moved = flows.warp(_tensor(previous), backward.double())
    valid = ~flows.occlusion(backward, forward)[:, 0]
    return _masked_mse(moved, _tensor(current), valid)


def clip_frames(path) -> Iterator[np.ndarray]:
    """A source clip's frames as a render reads them (HxWx3 uint8): a variable-rate clip
    resampled to its average rate, so frame n is the video's frame n's source."""
    with ClipReader(probe_clip(path)) as reader:
        for frame in reader:
            yield (frame * 255.0).round().astype(np.uint8)


def source_warp_errors(frames: Iterable[np.ndarray], source: Iterable[np.ndarray], video: str = "the video",
                       clip: str = "the clip") -> list[float]:  # fmt: skip
    """Per-frame warp error of ``frames`` (frame 0: 0.0) under the optical flow (DIS) of the source
    clip's frames, frame n of the clip with frame n of the video, each fitted to the video's size."""
    flow = flows.dis()
    out: list[float] = []
    source = iter(source)
    previous = prev_src = None
    for rgb in frames:
        raw = next(source, None)
        if raw is None:
            raise InputError(f"{clip}: fewer frames than {video} ({len(out)}); expected the clip the video was "
                             "rendered from")  # fmt: skip
        h, w = rgb.shape[:2]
        src = (fit(raw.astype(np.float32) / 255.0, (w, h)) * 255.0).round().astype(np.uint8)
        out.append(0.0 if previous is None else flow_pair_error(previous, rgb, prev_src, src, flow))
        previous, prev_src = rgb, src
    return out
