"""Creative controls (issue 19): Laplacian gradient normalisation, guide images, masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamvid.ascent import DreamSettings, dream, laplacian_merge, laplacian_normalize, laplacian_split
from dreamvid.objectives import weighted

OBJ = weighted({"mixed3": 1.0})


def _high_share(x: torch.Tensor) -> float:
    """Share of the energy of a (1, 3, H, W) image above half Nyquist."""
    y = x[0].mean(0).double()
    power = torch.fft.fft2(y - y.mean()).abs().square()
    fy = torch.fft.fftfreq(y.shape[0], dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(y.shape[1], dtype=torch.float64)[None, :]
    return (power[torch.hypot(fx, fy) > 0.25].sum() / power.sum()).item()


@pytest.mark.parametrize("shape", [(64, 96), (63, 97), (17, 33)])
def test_laplacian_pyramid_splits_and_merges_exactly(shape):
    x = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(0))
    bands = laplacian_split(x, 4)
    assert len(bands) == 4 and bands[1].shape[-2:] == ((shape[0] + 1) // 2, (shape[1] + 1) // 2)
    assert (laplacian_merge(bands) - x).abs().max() < 1e-5
    normalised = laplacian_split(laplacian_normalize(x), 4)
    # the bands come back with unit RMS (up to the pyramid's small overlap between bands)
    assert all(0.5 < b.square().mean().sqrt().item() < 2.0 for b in normalised)


def test_laplacian_norm_dreams_less_high_frequency_than_mean(net, photo_tensor):
    settings = DreamSettings(iterations=4, step=0.02, octaves=1, jitter=8)
    mean = dream(net, photo_tensor, OBJ, settings, torch.Generator().manual_seed(0))
    again = dream(net, photo_tensor, OBJ, DreamSettings(4, 0.02, 1, 1.4, 8, gradient_norm="mean"),
                  torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.equal(mean, again)  # the default is today's step, bit for bit
    lap = dream(net, photo_tensor, OBJ, DreamSettings(4, 0.02, 1, 1.4, 8, gradient_norm="laplacian"),
                torch.Generator().manual_seed(0))  # fmt: skip
    assert _high_share(lap - photo_tensor) < 0.7 * _high_share(mean - photo_tensor)
    assert (lap - photo_tensor).abs().mean() > 0.01  # it still dreams
