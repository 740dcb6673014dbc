"""The plain DeepDream zoom loop that ``dreamvid bench`` measures dreamvid against.

The same algorithm as :mod:`dreamvid.dream` and :class:`dreamvid.rendering.step.Dreamer` (octaves,
jitter, normalised gradient step, the zoom between frames), written the way a first
version usually is, not slowed on purpose:

- fp32, eager, contiguous NCHW tensors;
- the full network runs on every step, and the objective reads its layer from the result;
- the camera move goes through the CPU: tensor -> numpy -> ``cv2.warpAffine`` -> tensor;
- each frame is written to ffmpeg's stdin in the loop (no writer thread);
- one ``.item()`` per step (the loss, as a loop that logs it would read it).

It lives in the package (not in ``bench/``) so that ``dreamvid bench`` works from an
installed dreamvid, wherever it is run from.
"""

from __future__ import annotations

import math
import subprocess

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dreamvid.engine.ascent import DreamSettings, octave_sizes
from dreamvid.engine.objectives import Objective
from dreamvid.media import ffmpeg
from dreamvid.media.colourspace import encode_filter, for_writing, tag_args


def step(net, x: torch.Tensor, objective: Objective, step_size: float) -> tuple[torch.Tensor, float]:
    """One gradient-ascent step on the full network; returns the new image and the loss."""
    x = x.detach().requires_grad_(True)
    acts = net(x, net.layer_names)  # every layer, not only the objective's
    loss = objective(acts)
    loss.backward()
    g = x.grad / (x.grad.abs().mean() + 1e-8)
    return (x.detach() + step_size * g).clamp(0.0, 1.0), loss.item()


def dream(net, image: torch.Tensor, objective: Objective, s: DreamSettings, generator: torch.Generator) -> torch.Tensor:
    """Octaves from coarse to fine; at each, ``s.iterations`` steps, each rolled by a random jitter."""
    height, width = image.shape[-2:]
    detail = None
    for size in octave_sizes(height, width, s.octaves, s.octave_scale):
        base = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
        if detail is None:
            x = base
        else:
            detail = F.interpolate(detail, size=size, mode="bilinear", align_corners=False, antialias=True)
            x = (base + detail).clamp(0.0, 1.0)
        for _ in range(s.iterations):
            dy, dx = torch.randint(-s.jitter, s.jitter + 1, (2,), generator=generator).tolist()
            x = torch.roll(x, (dy, dx), (2, 3))
            x, _loss = step(net, x, objective, s.step)
            x = torch.roll(x, (-dy, -dx), (2, 3))
        detail = x - base
    return x


def zoom(image: torch.Tensor, zoom: float, rotate: float = 0.0, translate=(0.0, 0.0)) -> torch.Tensor:
    """The camera move with OpenCV: to the CPU as HxWx3 float32, warpAffine, back to the device."""
    rgb = image[0].permute(1, 2, 0).cpu().numpy()
    h, w = rgb.shape[:2]
    a = math.radians(rotate)
    c, s = math.cos(a) / zoom, math.sin(a) / zoom
    cx, cy = (w - 1) / 2, (h - 1) / 2
    tx, ty = translate
    # output pixel p shows input pixel A (p - centre - t) + centre, A = [[c, -s], [s, c]]
    m = np.array([[c, -s, cx - c * (cx + tx) + s * (cy + ty)], [s, c, cy - s * (cx + tx) - c * (cy + ty)]])
    out = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    return torch.from_numpy(out).permute(2, 0, 1)[None].clamp(0.0, 1.0).to(image.device)


def encoder(path, size: tuple[int, int], fps: float, crf: int, preset: str) -> subprocess.Popen:
    """ffmpeg reading raw RGB frames on stdin (libx264 and the colour conversion and tags, as the
    bench's dreamvid path uses); end it with :func:`dreamvid.media.ffmpeg.stop`."""
    w, h = size
    colour = for_writing(size, "yuv420p")
    args = ["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps),
            "-i", "pipe:0", "-vf", encode_filter(colour, "yuv420p"), "-c:v", "libx264", "-crf", str(crf),
            "-preset", preset, "-pix_fmt", "yuv420p", *tag_args(colour), str(path)]  # fmt: skip
    return ffmpeg.start(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        what=f"for {path}")


def to_rgb8(image: torch.Tensor) -> np.ndarray:
    return (image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
