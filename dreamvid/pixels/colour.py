"""Colour control for long zooms: keep a render's colours, brightness and contrast near the input.

A DeepDream zoom is a feedback loop: each frame is dreamed from the last, and every
dream pushes saturation and contrast up a little, so after a few hundred frames the
colours wash out to mud, brightness creeps and pixels pile up at 0 and 255. These small
pure functions pull each frame back; :func:`control` applies them in the order the
renderer uses. All work on (1, 3, H, W) float tensors, RGB in [0, 1], on any device,
without leaving it.

- :func:`match_lab`: match each LAB channel's mean and std to a reference (Deforum's
  "colour coherence"); ``strength`` moves the statistics part of the way.
- :func:`match_histogram`: map each RGB channel's histogram onto the reference's (the
  cumulative-distribution matching of ``skimage.exposure.match_histograms``, the frame's
  values counted on 2^14 levels instead of sorted).
- :func:`match_saturation`: map each pixel's HSV saturation ``(max - min) / max`` (as the
  8-bit video shows it) onto the reference's saturation distribution (the same quantile
  mapping, ties kept in their proportions), at constant luma, never making a clipped value.
  Per-channel histograms alone do not hold saturation: the dream decorrelates the channels,
  so each channel keeps its distribution while pixels grow more colourful.
- :func:`blend`: ``(1 - amount) * image + amount * other``; with the input image it is
  ``input_blend``, with the camera-moved previous frame it is temporal ``smoothing``
  (an exponential average along the camera's motion, which damps flicker).
- :func:`clip_guard`: map the frame's range (its 0.5th..99.5th percentile) linearly into
  ``[margin, 1 - margin]`` when it reaches beyond, so nothing sits at 0 or 255 and the next
  dream has headroom.

The LAB conversion is sRGB (D65, 2 degree observer), the same as ``skimage.color.rgb2lab``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from dreamvid.core import defaults as D
from dreamvid.core.stages import stage
from dreamvid.pixels.images import to_device

_XYZ_FROM_RGB = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_WHITE = (0.95047, 1.0, 1.08883)  # D65, 2 degrees
_EPS = 1e-6


@functools.lru_cache(maxsize=64)
def _constant(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``values`` as a tensor on ``device``, made once: an upload per frame would make the host
    wait for the device (:func:`.images.to_device`). Never changed in place."""
    return to_device(torch.tensor(values, dtype=dtype), device)


@functools.lru_cache(maxsize=1)
def _rgb_from_xyz() -> tuple:
    return tuple(map(tuple, torch.linalg.inv(torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64)).tolist()))


def _matrix(x: torch.Tensor, m) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", _constant(m, x.device, x.dtype), x)


def _per_channel(values: tuple, like: torch.Tensor) -> torch.Tensor:
    """``values`` shaped (C, 1, 1), on ``like``'s device and dtype."""
    return _constant(values, like.device, like.dtype)[:, None, None]


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] -> CIE LAB (L in [0, 100], a and b roughly [-128, 127])."""
    linear = torch.where(rgb > 0.04045, ((rgb.clamp(min=0) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _matrix(linear, _XYZ_FROM_RGB) / _per_channel(_WHITE, rgb)
    f = torch.where(xyz > 0.008856, xyz.clamp(min=0.008856) ** (1 / 3), 7.787 * xyz + 16 / 116)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE LAB -> sRGB, clamped to [0, 1] (out-of-gamut colours are clipped)."""
    L, a, b = lab.unbind(1)
    fy = (L + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], dim=1)
    xyz = torch.where(f > 0.2068966, f.clamp(min=0.2068966) ** 3, (f - 16 / 116) / 7.787)
    xyz = (xyz * _per_channel(_WHITE, lab)).clamp(min=0)
    linear = _matrix(xyz, _rgb_from_xyz()).clamp(min=0)
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp(min=0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear)
    return rgb.clamp(0.0, 1.0)


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std, each shaped (1, C, 1, 1)."""
    return x.mean(dim=(2, 3), keepdim=True), x.std(dim=(2, 3), keepdim=True, unbiased=False)


def match_lab(image: torch.Tensor, reference_stats, strength: float = 1.0) -> torch.Tensor:
    """Move each LAB channel's mean and std ``strength`` of the way to ``reference_stats``.

    ``reference_stats`` = :func:`channel_stats` of the reference in LAB. With strength s the
    target mean is ``m + s (m_ref - m)`` and the target std ``d + s (d_ref - d)``.
    """
    if strength == 0:
        return image
    lab = rgb_to_lab(image)
    mean, std = channel_stats(lab)
    ref_mean, ref_std = reference_stats
    target_mean = mean + strength * (ref_mean - mean)
    target_std = std + strength * (ref_std - std)
    return lab_to_rgb((lab - mean) / (std + _EPS) * target_std + target_mean)


@dataclass(frozen=True)
class Histogram:
    """A reference channel distribution: distinct values and their cumulative quantiles."""

    values: tuple[torch.Tensor, ...]  # per channel, increasing
    quantiles: tuple[torch.Tensor, ...]  # per channel, cumulative share in (0, 1]
    midpoint: bool = False  # quantiles of tied values at the middle of their run, not its top


def _quantiles(counts: torch.Tensor, n: int, dtype, midpoint: bool) -> torch.Tensor:
    """Each distinct value's cumulative share (along the last dimension of ``counts``, the
    values in increasing order): the top of its run of ties (as skimage), or its middle."""
    top = counts.cumsum(-1).to(dtype)
    return (top - counts.to(dtype) / 2 if midpoint else top) / n


def histogram(reference: torch.Tensor, midpoint: bool = False) -> Histogram:
    """Each channel's distribution. Without ``midpoint`` a distinct value sits at the top of its
    run of ties (as skimage). With ``midpoint`` the knots are the sorted values themselves, the
    ``j``-th of ``n`` at share ``(j + 1/2) / n``, so a run of ties is a flat stretch of the
    mapping and a frame's quantiles land on the reference's values in their proportions (a
    reference that is 85 % exact grey keeps 85 % exact grey); stored as each run's two ends."""
    values, quantiles = [], []
    for channel in reference[0]:
        v, counts = torch.unique(channel.reshape(-1), return_counts=True)
        if not midpoint:
            values.append(v)
            quantiles.append(_quantiles(counts, channel.numel(), reference.dtype, midpoint))
            continue
        top = counts.cumsum(0).to(reference.dtype)
        ends = torch.stack([top - counts.to(reference.dtype) + 0.5, top - 0.5], 1) / channel.numel()
        keep = torch.stack([torch.ones_like(counts, dtype=torch.bool), counts > 1], 1)
        values.append(torch.stack([v, v], 1)[keep])
        quantiles.append(ends[keep])
    return Histogram(tuple(values), tuple(quantiles), midpoint)


def counted_histogram(reference: torch.Tensor) -> Histogram:
    """:func:`histogram` of a reference that changes every frame (a clip's frame n), in linear
    time and with shapes known in advance (``torch.unique`` makes a GPU's host wait): each
    channel counted on :data:`~dreamvid.core.defaults.HISTOGRAM_LEVELS` levels
    (:func:`_level_keys`), which stand for its values (at most 1/32766 off)."""
    levels = D.HISTOGRAM_LEVELS
    keys = _level_keys(reference, levels).reshape(reference.shape[1], -1)
    values = torch.arange(levels, dtype=reference.dtype, device=reference.device) / (levels - 1)
    return _knots(_counts(keys, levels), values, reference.dtype, midpoint=False)


def counted_saturation(reference: torch.Tensor) -> Histogram:
    """``histogram(saturation(as_shown(reference)), midpoint=True)`` as :func:`counted_histogram`
    makes it, and exact: the shown saturations are counted per value (:func:`_shown_saturations`)."""
    which, values = _shown_saturations(reference.device, reference.dtype)
    return _knots(_counts(which[_shown_pairs(reference)], values.numel()), values, reference.dtype, midpoint=True)


def _knots(counts: torch.Tensor, values: torch.Tensor, dtype, midpoint: bool) -> Histogram:
    """A :class:`Histogram` with a knot (two with ``midpoint``) for every one of ``values``,
    counted ``counts`` (rows, K) times. A value that no pixel has repeats the knot of the
    value below it (the first one's, below the first value counted), which :func:`_interp`
    reads as no knot at all: the same map as :func:`histogram`'s knots of the counted values."""
    n = counts.shape[-1]
    index = torch.arange(n, device=counts.device).expand_as(counts)
    present = counts > 0
    below = torch.where(present, index, -1).cummax(-1).values  # the nearest counted value at or below
    above = torch.where(present, index, n).flip(-1).cummin(-1).values.flip(-1)  # ... at or above
    held = values.expand_as(counts).gather(-1, torch.where(below >= 0, below, above))
    total = counts.sum(-1, keepdim=True).to(dtype)
    top = counts.cumsum(-1).to(dtype)
    if not midpoint:
        return Histogram(tuple(held), tuple(top / total))
    upper = (top - 0.5) / total
    lower = torch.where(present, (top - counts.to(dtype) + 0.5) / total, upper)
    both = lambda a, b: torch.stack([a, b], -1).flatten(-2)  # noqa: E731
    return Histogram(tuple(both(held, held)), tuple(both(lower, upper)), midpoint=True)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """numpy.interp on tensors (xp non-decreasing; clamps outside it). Where knots repeat an
    ``xp``, the first of them counts (:func:`counted_histogram` repeats knots)."""
    if xp.numel() == 1:
        return fp.expand_as(x).clone()
    i = torch.searchsorted(xp, x).clamp(1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    t = torch.where(x1 > x0, (x - x0) / (x1 - x0), 0.0).clamp(0, 1)  # x1 = x0 only below the first knot
    return f0 + t * (f1 - f0)


def match_histogram(image: torch.Tensor, reference: Histogram, strength: float = 1.0) -> torch.Tensor:
    """Map each channel's cumulative distribution onto the reference's, then blend by ``strength``.

    A source value at cumulative share q becomes the reference value at share q
    (interpolated), as ``skimage.exposure.match_histograms`` does. The frame's values are
    ranked on :data:`~dreamvid.core.defaults.HISTOGRAM_LEVELS` levels (:func:`_level_keys`):
    a count per level, not a sort, so the shares cost linear time and no host sync, and they
    equal skimage's wherever no two distinct values share a level.
    """
    if strength == 0:
        return image
    channels = image.shape[1]
    keys = _level_keys(image, D.HISTOGRAM_LEVELS).reshape(channels, -1)
    shares = _key_shares(keys, D.HISTOGRAM_LEVELS, image.dtype, reference.midpoint)
    mapped = torch.stack([_interp(shares[c], reference.quantiles[c], reference.values[c]) for c in range(channels)])
    out = mapped.gather(1, keys).reshape(image.shape)
    return blend(image, out, strength)


def _level_keys(image: torch.Tensor, levels: int) -> torch.Tensor:
    """Each value's level, ``round(x (levels - 1))`` of ``x`` clamped to [0, 1], as int64
    (a NaN, which the dream's finite check reports, lands on a valid level too)."""
    return torch.round(image.clamp(0, 1) * (levels - 1)).long().clamp_(0, levels - 1)


def _key_shares(keys: torch.Tensor, count: int, dtype, midpoint: bool) -> torch.Tensor:
    """(rows, ``count``): each key's cumulative share among its row of ``keys`` (rows, N) (keys
    in [0, count), in the order of the values they stand for), as :func:`_quantiles` gives it
    for a distinct value. A count per key (``scatter_add_``: ``bincount`` makes CUDA's host wait)."""
    return _quantiles(_counts(keys, count), keys.shape[1], dtype, midpoint)


def _counts(keys: torch.Tensor, count: int) -> torch.Tensor:
    """(rows, ``count``): how often each key is in its row of ``keys``."""
    counts = torch.zeros(keys.shape[0], count, dtype=torch.long, device=keys.device)
    return counts.scatter_add_(1, keys, torch.ones_like(keys))


_LUMA = (0.2126, 0.7152, 0.0722)  # Rec.709 weights on the gamma-encoded values, as dreamvid stats measures
_MARGIN = 1 / 255  # the saturation match stops a channel this far from 0 and 1: it never makes a clipped value


def as_shown(image: torch.Tensor) -> torch.Tensor:
    """The image on the 8-bit grid the video stores (``round(255 x) / 255``)."""
    return torch.round(image.clamp(0, 1) * 255) / 255


def saturation(image: torch.Tensor) -> torch.Tensor:
    """HSV saturation ``(max - min) / max`` per pixel, (1, 1, H, W); 0 where max is 0."""
    top = image.amax(1, keepdim=True)
    return (top - image.amin(1, keepdim=True)) / top.clamp(min=_EPS) * (top > 0)


def match_saturation(image: torch.Tensor, reference: Histogram, strength: float = 1.0) -> torch.Tensor:
    """Move each pixel's HSV saturation ``strength`` of the way to the reference's saturation
    distribution, keeping its luma ``y`` and hue. ``reference`` is :func:`histogram` (with
    ``midpoint``) of :func:`saturation` of the reference :func:`as_shown`.

    Pixels are ranked by their saturation as the 8-bit video shows it: a near-black pixel
    with a trace of colour has saturation 1 in floats but shows as black (0), so it ranks
    with the reference's blacks and stays dark grey, instead of taking a top rank whose
    saturation rounding then erases.

    The pixel becomes ``y + k (x - y)`` (its colour scaled about its grey), where ``k`` gives
    the target saturation ``t``: with chroma ``c = max - min`` and ``m = max - y``,
    ``k = t y / (c - t m)``. A ``k`` above 1 is capped where a channel would come closer than
    1/255 to 0 or 1, so the match never makes a value that shows as 0 or 255 (a clipped
    channel); greys (``c = 0``) stay grey.
    """
    if strength == 0:
        return image
    target = _matched_saturation(image, reference, strength)
    luma = (image * _per_channel(_LUMA, image)).sum(1, keepdim=True)
    top, bottom = image.amax(1, keepdim=True), image.amin(1, keepdim=True)
    chroma, above = top - bottom, top - luma
    k = target * luma / (chroma - target * above).clamp(min=_EPS)
    room = torch.minimum((1 - _MARGIN - luma) / above.clamp(min=_EPS), (luma - _MARGIN) / (luma - bottom).clamp(min=_EPS))
    k = torch.minimum(k, room.clamp(min=1))  # a pixel already that close to 0 or 1 may lose colour, not gain it
    return torch.where(chroma > _EPS, (luma + k * (image - luma)).clamp(0, 1), image)


def _matched_saturation(image: torch.Tensor, reference: Histogram, strength: float) -> torch.Tensor:
    """``match_histogram(saturation(as_shown(image)), reference, strength)`` as a sort of the
    pixels would rank them, bit for bit, in linear time: a shown pixel's saturation is one of
    the 21 000 or so values an 8-bit (max, min) pair can make (:func:`_shown_saturations`), so
    the pixels are counted per value, and the reference's map is evaluated once per value."""
    which, values = _shown_saturations(image.device, image.dtype)
    keys = which[_shown_pairs(image)]
    shares = _key_shares(keys, values.numel(), image.dtype, reference.midpoint)[0]
    target = blend(values, _interp(shares, reference.quantiles[0], reference.values[0]), strength)
    return target[keys].reshape(1, 1, *image.shape[2:])


def _shown_pairs(image: torch.Tensor) -> torch.Tensor:
    """(1, H W): each pixel's shown (:func:`as_shown`) max and min as ``max * 256 + min``."""
    shown = torch.round(image.clamp(0, 1) * 255)  # as_shown's 0..255
    return (shown.amax(1) * 256 + shown.amin(1)).long().clamp_(0, 256 * 256 - 1).reshape(1, -1)


@functools.lru_cache(maxsize=8)
def _shown_saturations(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Every saturation an 8-bit pixel can show, as :func:`saturation` of :func:`as_shown`
    computes it in ``dtype``: (for each pair ``max * 256 + min``, the index of its value;
    the distinct values, increasing). Made once per device and dtype; never changed in place."""
    top = torch.arange(256, dtype=dtype).repeat_interleave(256)
    bottom = torch.arange(256, dtype=dtype).repeat(256)
    pixels = torch.stack([top, bottom, bottom])[None, :, None, :] / 255  # as as_shown divides
    valid = bottom <= top
    values, index = torch.unique(saturation(pixels).reshape(-1)[valid], return_inverse=True)
    which = torch.zeros(256 * 256, dtype=torch.long)
    which[valid] = index
    return to_device(which, device), to_device(values, device)


def blend(image: torch.Tensor, other: torch.Tensor, amount: float) -> torch.Tensor:
    """``(1 - amount) * image + amount * other``; ``image`` itself when amount is 0."""
    if amount == 0:
        return image
    return torch.lerp(image, other, amount)


def clip_guard(image: torch.Tensor, margin: float, tail: float = D.CLIP_GUARD_TAIL) -> torch.Tensor:
    """Map the frame's range linearly into ``[margin, 1 - margin]`` (a "levels" contrast guard).

    The range is robust: ``lo`` and ``hi`` are the ``tail`` and ``1 - tail`` quantiles of all
    the frame's values (every channel together), so a few hot or dead pixels do not decide
    it. With ``lo = min(lo, margin)`` and ``hi = max(hi, 1 - margin)`` the result is
    ``margin + (image - lo) (1 - 2 margin) / (hi - lo)``, clamped to ``[margin, 1 - margin]``
    (where the outlying ``tail`` ends up): a frame already inside the range is left alone,
    one that reaches 0 or 1 is squeezed just enough. The same map on every channel keeps
    greys grey. It removes blown-out pixels and leaves the next dream room to add detail
    instead of piling values up at 0 and 255.
    """
    if margin == 0:
        return image
    lo, hi = _tails(image, tail)  # tensors, not floats: the device never waits
    lo, hi = lo.clamp(max=margin), hi.clamp(min=1 - margin)
    return (margin + (image - lo) * ((1 - 2 * margin) / (hi - lo))).clamp(margin, 1 - margin)


def _tails(image: torch.Tensor, tail: float, by_sort: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``tail`` and ``1 - tail`` quantiles of all values (nearest rank; exact for any
    size, where ``torch.quantile`` stops at 16 M values). Two ``kthvalue`` on the CPU; one sort
    on a GPU (``by_sort``, default: on CUDA), where ``kthvalue`` over one slice of millions of
    values runs on few threads. Both pick the same two values exactly."""
    flat = image.reshape(-1)
    skip = round(tail * (flat.numel() - 1))
    if skip == 0:
        return flat.min(), flat.max()
    if by_sort if by_sort is not None else flat.device.type == "cuda":
        ordered = torch.sort(flat).values
        return ordered[skip], ordered[flat.numel() - 1 - skip]
    return flat.kthvalue(1 + skip).values, flat.kthvalue(flat.numel() - skip).values


class Reference:
    """The colour reference of a render and its statistics, computed once and cached.

    ``counted``: a reference that changes every frame (a clip's frame n): its histograms are
    counted (:func:`counted_histogram`, :func:`counted_saturation`) in linear time, without
    making a GPU's host wait."""

    def __init__(self, image: torch.Tensor, counted: bool = False):
        self.image = image
        self.counted = counted
        self._lab: tuple[torch.Tensor, torch.Tensor] | None = None
        self._histogram: Histogram | None = None
        self._saturation: Histogram | None = None

    @property
    def lab_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._lab is None:
            self._lab = channel_stats(rgb_to_lab(self.image))
        return self._lab

    @property
    def histogram(self) -> Histogram:
        if self._histogram is None:
            self._histogram = counted_histogram(self.image) if self.counted else histogram(self.image)
        return self._histogram

    @property
    def saturation(self) -> Histogram:
        if self._saturation is None:
            self._saturation = (counted_saturation(self.image) if self.counted
                                else histogram(saturation(as_shown(self.image)), midpoint=True))
        return self._saturation


def control(dreamed: torch.Tensor, moved: torch.Tensor, input_image: torch.Tensor, reference: Reference | None,
            p) -> torch.Tensor:  # fmt: skip
    """One frame's colour control, in order: colour match, saturation match, ``input_blend``,
    ``smoothing``, ``clip_guard``.

    ``dreamed`` is the dream's output, ``moved`` the camera-moved previous frame (the dream's
    input), ``input_image`` frame 0; ``p`` holds the frame's parameters (``colour``,
    ``colour_strength``, ``saturation_match``, ``input_blend``, ``smoothing``, ``clip_guard``). Everything it needs
    is a function of the previous frame and the schedule, so a resumed render repeats it.
    """
    out = dreamed
    if p.colour != "none" and reference is not None:
        with stage("colour_match"):
            if p.colour == "lab":
                out = match_lab(out, reference.lab_stats, p.colour_strength)
            else:
                out = match_histogram(out, reference.histogram, p.colour_strength)
        with stage("saturation_match"):
            out = match_saturation(out, reference.saturation, p.saturation_match)
    with stage("blend"):
        out = blend(blend(out, input_image, p.input_blend), moved, p.smoothing)
    with stage("clip_guard"):
        return clip_guard(out, p.clip_guard)
