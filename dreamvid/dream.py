"""Gradient ascent on an image: the DeepDream step, octaves and jitter.

``dream(net, image, objective, settings, generator)`` returns the dreamed image. Images are
float32 tensors (1, 3, H, W) with RGB in [0, 1], on the network's device.

The algorithm is the classic one of Google's DeepDream notebook:

- Octaves: the image is dreamed from coarse to fine. At each of ``octaves`` scales (each
  ``octave_scale`` times smaller than the next) we dream ``base + detail`` and carry the
  *detail* (what dreaming added) up to the next scale, so large structures form at coarse
  scales and fine texture at the finest.
- Jitter: before each step the image is rolled by a random offset in [-jitter, jitter],
  which hides the network's stride grid. We keep the image in rolled coordinates and roll
  only by the difference to the next offset (one roll per step, not two), and unroll once
  per octave: the same result as roll, step, unroll.
- Step: the gradient of the objective w.r.t. the image, divided by its mean absolute value
  (so ``step`` is in image units per iteration whatever the layer), then the image is
  clamped to [0, 1].

Randomness comes only from ``generator`` (a CPU ``torch.Generator``), never the global
RNG, so the same inputs give the same image on any device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import FeatureNet
from .objectives import Objective

MIN_OCTAVE_SIDE = 80  # smaller octaves are skipped: too small for the deep layers to see


@dataclass(frozen=True)
class DreamSettings:
    iterations: int = 10  # gradient steps per octave
    step: float = 0.01  # step size, in image units ([0, 1]) per iteration
    octaves: int = 3  # number of scales
    octave_scale: float = 1.4  # size ratio between consecutive octaves
    jitter: int = 32  # max random roll in pixels, per step
    amp_dtype: torch.dtype | None = None  # autocast dtype for the forward (CUDA), None = fp32


def octave_sizes(height: int, width: int, octaves: int, octave_scale: float) -> list[tuple[int, int]]:
    """Sizes from coarsest to finest (the last is the image's own)."""
    sizes = []
    for i in reversed(range(octaves)):
        h, w = round(height / octave_scale**i), round(width / octave_scale**i)
        if i == 0 or min(h, w) >= MIN_OCTAVE_SIDE:
            sizes.append((h, w))
    return sizes


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _autocast(x: torch.Tensor, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(x.device.type, dtype=dtype)


def gradient_step(net: FeatureNet, x: torch.Tensor, objective: Objective, step: float, amp_dtype=None) -> torch.Tensor:
    """One normalised gradient-ascent step on ``x`` (no jitter)."""
    x = x.detach().requires_grad_(True)
    with _autocast(x, amp_dtype):
        acts = net(x, objective.layers)
    loss = objective(acts)  # fp32 (objectives upcast)
    (g,) = torch.autograd.grad(loss, x)
    g = g / (g.abs().mean() + 1e-8)
    return (x.detach() + step * g).clamp_(0.0, 1.0)


def dream_octave(
    net: FeatureNet,
    x: torch.Tensor,
    objective: Objective,
    s: DreamSettings,
    generator: torch.Generator,
    step_fn: Callable = gradient_step,
) -> torch.Tensor:
    """``s.iterations`` jittered steps at one scale."""
    oy = ox = 0  # current roll of x
    for _ in range(s.iterations):
        if s.jitter > 0:
            ny, nx = torch.randint(-s.jitter, s.jitter + 1, (2,), generator=generator).tolist()
            x = torch.roll(x, (ny - oy, nx - ox), (2, 3))
            oy, ox = ny, nx
        x = step_fn(net, x, objective, s.step, s.amp_dtype)
    return torch.roll(x, (-oy, -ox), (2, 3)) if (oy or ox) else x


def dream(
    net: FeatureNet,
    image: torch.Tensor,
    objective: Objective,
    settings: DreamSettings,
    generator: torch.Generator,
    step_fn: Callable = gradient_step,
) -> torch.Tensor:
    """Dream ``image`` (1, 3, H, W) in [0, 1]; returns a new tensor of the same shape."""
    height, width = image.shape[-2:]
    sizes = octave_sizes(height, width, settings.octaves, settings.octave_scale)
    detail = None
    for size in sizes:
        base = _resize(image, size)
        x = base if detail is None else (base + _resize(detail, size)).clamp_(0.0, 1.0)
        x = dream_octave(net, x, objective, settings, generator, step_fn)
        detail = x - base
    return x
