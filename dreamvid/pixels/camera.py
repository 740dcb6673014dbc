"""The camera move between frames: zoom, rotate and translate about a centre, on the device.

One affine grid per frame and ``grid_sample``: the image never leaves the device, and the
frame's 2x3 matrix goes to it without the host waiting (:func:`.images.to_device`).
``zoom`` > 1 moves in (the centre grows), ``rotate`` is in degrees (counter-clockwise as
seen), ``translate`` = (x, y) in pixels per frame moves the picture right/down, ``center`` =
(x, y) in fractions of the frame is the point zoom and rotation turn around (the fixed point
of the move when ``translate`` is 0; (0.5, 0.5) is the middle). The output has the input's size; borders revealed by zooming out or moving are filled by reflection.

``camera="deforum"`` composes the same numbers as Deforum's 2D warp does (``cv2.getRotationMatrix2D``
about pixel ``(W*x, H*y)`` times the translation, in ``cv2.warpPerspective``): the picture is
translated first, then turned and zoomed about the centre, so the translation turns and scales with
it; and OpenCV's pixel ``(W/2, H/2)`` lies half a pixel right of and below the frame's middle.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dreamvid.core.defaults import CAMERAS
from dreamvid.pixels.images import to_device

CENTER = (0.5, 0.5)


def affine_theta(size: tuple[int, int], zoom: float, rotate: float, translate: tuple[float, float],
                 center: tuple[float, float] = CENTER, camera: str = "dreamvid") -> torch.Tensor:  # fmt: skip
    """The 2x3 matrix that maps output to input coordinates, in grid_sample's [-1, 1] units.

    Built in pixel units (so rotation keeps its shape on non-square frames) and then
    converted: theta = N A N^-1 with N = diag(2/W, 2/H). About a centre d (pixels from the
    frame's middle) the map is p -> d + A (p - t - d), whose fixed point (t = 0) is d.
    Deforum's (``camera="deforum"``): an input point q goes to d + A^-1 (q + t - d), so the map
    is p -> d + A (p - d) - t, with d half a pixel further right and down.
    """
    w, h = size
    a = math.radians(rotate)
    c, s = math.cos(a) / zoom, math.sin(a) / zoom
    # out pixel p (from the centre, y down) shows input pixel A (p - t), A = R / zoom with R
    # the inverse of a counter-clockwise turn on screen
    ax = [[c, -s], [s, c]]
    tx, ty = translate
    if camera == "deforum":
        dx, dy = (center[0] - 0.5) * w + 0.5, (center[1] - 0.5) * h + 0.5
        bx = -tx + dx - (ax[0][0] * dx + ax[0][1] * dy)
        by = -ty + dy - (ax[1][0] * dx + ax[1][1] * dy)
        return _theta(ax, bx, by, w, h)
    if camera != "dreamvid":
        raise ValueError(f"unknown camera {camera!r}; expected one of {CAMERAS}")
    bx = -(ax[0][0] * tx + ax[0][1] * ty)
    by = -(ax[1][0] * tx + ax[1][1] * ty)
    if tuple(center) != CENTER:  # the middle adds nothing (and changes no bit of the default)
        dx, dy = (center[0] - 0.5) * w, (center[1] - 0.5) * h
        bx += dx - (ax[0][0] * dx + ax[0][1] * dy)
        by += dy - (ax[1][0] * dx + ax[1][1] * dy)
    return _theta(ax, bx, by, w, h)


def _theta(ax: list[list[float]], bx: float, by: float, w: int, h: int) -> torch.Tensor:
    """The pixel-unit map p -> ax p + b in grid_sample's [-1, 1] units."""
    return torch.tensor(
        [
            [ax[0][0], ax[0][1] * h / w, bx * 2 / w],
            [ax[1][0] * w / h, ax[1][1], by * 2 / h],
        ],
        dtype=torch.float32,
    )


def move(image: torch.Tensor, zoom: float, rotate: float = 0.0, translate=(0.0, 0.0), center=CENTER,
         camera: str = "dreamvid") -> torch.Tensor:
    """Apply one frame's camera move to ``image`` (1, 3, H, W)."""
    if zoom == 1 and rotate == 0 and translate[0] == 0 and translate[1] == 0:
        return image
    h, w = image.shape[-2:]
    theta = to_device(affine_theta((w, h), zoom, rotate, translate, center, camera)[None], image.device)
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.clamp_(0.0, 1.0)


def homogeneous(theta: torch.Tensor) -> torch.Tensor:
    """A 2x3 move (:func:`affine_theta`) as a 3x3 float64 matrix: moves compose by product, the
    output-to-input map of frame a carried to frame n being ``T[a+1] @ ... @ T[n]``."""
    return torch.cat([theta.double(), torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])


def warp(image: torch.Tensor, matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` (1, C, H, W) moved by the 3x3 output-to-input ``matrix`` (several frames' moves
    composed: one resampling, not one per frame), and where the move reads inside the image
    (1, 1, H, W; 0 where the reflection fills a border)."""
    if torch.equal(matrix, torch.eye(3, dtype=matrix.dtype)):
        return image, torch.ones_like(image[:, :1])
    theta = to_device(matrix[:2].float()[None], image.device)
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    inside = (grid.abs() <= 1.0).all(dim=-1)[:, None].to(image.dtype)
    return out.clamp_(0.0, 1.0), inside
