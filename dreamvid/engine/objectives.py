"""What to maximise, as small objects that add and scale (after lucent's objectives).

An :class:`Objective` maps the activations a :class:`~dreamvid.engine.model.FeatureNet` returns to
a scalar, and knows which layers it reads, so the forward pass can stop at the deepest::

    obj = layer("mixed3") + 0.5 * channel("mixed4", 97)
    loss = obj(net(image, obj.layers))

Reductions (``mode``):
- ``square`` (default): mean of the squared activations, the L2 objective of Google's
  original DeepDream notebook. Its gradient is the activation itself, which lets strongly
  firing features win, giving the crisp, saturated DeepDream look.
- ``mean``: mean activation (the TensorFlow DeepDream tutorial's choice); softer.

A guide image (:func:`guide`, :func:`guided`) adds "controlling dreams" from Google's
notebook: each position of the frame's activations is pulled toward the guide's feature
vector that matches it best (largest dot product)::

    feats = guide_features(net, guide_image, ["mixed3"])
    obj = weighted({"mixed3": 1.0}) + 0.5 * guided({"mixed3": 1.0}, feats)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dreamvid.core import defaults as D
from dreamvid.core.errors import InputError
from dreamvid.engine.catalogue import check_layer_key, split_layer_key

Activations = Mapping[str, torch.Tensor]
MODES = ("square", "mean")


@dataclass(frozen=True)
class Objective:
    fn: Callable[[Activations], torch.Tensor]
    layers: frozenset[str]
    name: str

    def __call__(self, acts: Activations) -> torch.Tensor:
        return self.fn(acts)

    def __add__(self, other: Objective) -> Objective:
        if isinstance(other, (int, float)) and other == 0:  # so that sum() works
            return self
        return Objective(lambda a: self(a) + other(a), self.layers | other.layers, f"{self.name} + {other.name}")

    __radd__ = __add__

    def __mul__(self, k: float) -> Objective:
        k = float(k)
        return Objective(lambda a: k * self(a), self.layers, f"{k:g} * {self.name}")

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return -1.0 * self

    def __sub__(self, other: Objective) -> Objective:
        return self + (-other)


def _reduce(x: torch.Tensor, mode: str) -> torch.Tensor:
    x = x.float()  # the loss is always computed in fp32, also under autocast
    if mode == "square":
        return x.square().mean()
    if mode == "mean":
        return x.mean()
    raise InputError(f"unknown objective mode {mode!r}; expected one of {', '.join(MODES)}")


def layer(name: str, mode: str = "square") -> Objective:
    """All channels of layer ``name``."""
    return Objective(lambda a: _reduce(a[name], mode), frozenset([name]), name)


def channel(name: str, channels: int | Sequence[int], mode: str = "square") -> Objective:
    """One channel (``channel("mixed4", 97)``) or several (summed) of layer ``name``."""
    idx = [channels] if isinstance(channels, int) else list(channels)
    label = f"{name}:{','.join(map(str, idx))}"
    if len(idx) == 1:
        c = idx[0]
        return Objective(lambda a: _reduce(a[name][:, c], mode), frozenset([name]), label)
    return Objective(lambda a: _reduce(a[name][:, idx], mode) * len(idx), frozenset([name]), label)


def parse(spec: str, mode: str = "square", catalogue: Mapping[str, int] | None = None) -> Objective:
    """A layer key (:mod:`.catalogue`): ``"mixed3"`` -> layer, ``"mixed4:97"`` or
    ``"mixed4:97,12"`` -> channels. With ``catalogue`` (layer -> channel count) the key is checked."""
    problem = check_layer_key(spec, catalogue) if catalogue is not None else None
    if problem:
        raise InputError(f"{spec}: {problem}")
    try:
        name, channels = split_layer_key(spec)
    except ValueError as err:
        raise InputError(str(err)) from None
    return layer(name, mode) if channels is None else channel(name, channels, mode)


def weighted(weights: Mapping[str, float], mode: str = "square", catalogue=None) -> Objective:
    """The sum of ``weight * parse(spec)``: the schedule's ``layers: {mixed3: 1.0, "mixed4:97": 0.5}``."""
    if not weights:
        raise InputError("an objective needs at least one layer")
    return sum(w * parse(spec, mode, catalogue) for spec, w in weights.items())


# ------------------------------------------------------------------------- guide images


def guide(name: str, features: torch.Tensor) -> Objective:
    """The mean over positions of the best dot product with the guide's feature vectors, over
    the channel count (``square``'s scale): ``features`` (C, M) are the guide's activations
    at layer ``name`` (:func:`guide_features`). Its gradient at each position is the best
    matching guide vector (Google's notebook sets exactly that as the layer's gradient)."""
    def fn(a: Activations) -> torch.Tensor:
        x = a[name].float().flatten(2)  # (B, C, N), fp32 also under autocast
        dots = torch.einsum("bcn,cm->bnm", x, features.to(x.device))
        return dots.max(dim=2).values.mean() / x.shape[1]

    return Objective(fn, frozenset([name]), f"guide({name})")


def guided(weights: Mapping[str, float], features: Mapping[str, torch.Tensor]) -> Objective:
    """:func:`guide` on each layer the layer keys of ``weights`` read, weighted by the sum of
    their absolute weights (``"mixed4:97"`` guides all of mixed4)."""
    per_layer: dict[str, float] = {}
    for spec, w in weights.items():
        name = split_layer_key(spec)[0]
        per_layer[name] = per_layer.get(name, 0.0) + abs(w)
    return sum(w * guide(name, features[name]) for name, w in per_layer.items())


def guide_features(net, image: torch.Tensor, layers, max_vectors: int = D.MAX_GUIDE_VECTORS) -> dict[str, torch.Tensor]:
    """The guide ``image``'s activations per layer as (C, M) fp32 feature vectors, average-pooled
    to at most ``max_vectors`` positions (keeping the aspect)."""
    with torch.no_grad():
        acts = net(image, set(layers))
    out = {}
    for name in layers:
        a = acts[name].float()
        h, w = a.shape[-2:]
        if h * w > max_vectors:
            k = (h * w / max_vectors) ** 0.5
            a = F.adaptive_avg_pool2d(a, (max(1, int(h / k)), max(1, int(w / k))))
        out[name] = a[0].flatten(1).contiguous()
    return out
