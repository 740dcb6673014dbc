"""The layer gallery: one image dreamed at every layer, as a labelled contact sheet.

Choosing ``layers`` for a schedule by name alone is guesswork (``mixed3`` is "circles and
eyes" only once you have seen it). ``dreamvid gallery`` dreams the same picture once per
pickable layer of the model (:func:`~dreamvid.engine.model.layer_catalogue`) plus a few single
channels, with the same settings and the same random stream, and lays the results out in
a grid. Each tile is labelled with its key exactly as a schedule writes it
(``mixed4``, ``mixed4:97``), so a tile can be copied straight into ``layers:``.

The channels shown are those the picture already excites most (largest mean activation
on the fitted input): they are the ones that grow visible motifs within a few iterations,
whereas a channel picked at random is often silent on a given image.

With a guide image (``dreamvid gallery --guide IMG``) every tile is dreamed with its layer
and the guide's objective on that layer (:func:`~dreamvid.engine.objectives.guided`, as a
schedule's ``guide:`` does), and the guide is shown after the input: which layers take
the guide's motifs, and how strongly, at a glance.

The library reports progress through ``callback(Progress)`` (the renderer's record, one
"frame" event per tile); it never prints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import torch

from dreamvid.core.errors import InputError, is_out_of_memory
from dreamvid.core.progress import Callback, Progress, ignore
from dreamvid.engine.ascent import DreamSettings, dream
from dreamvid.engine.catalogue import split_layer_key
from dreamvid.engine.model import FeatureNet
from dreamvid.engine.objectives import guide_features, guided, weighted
from dreamvid.pixels.images import to_tensor, to_uint8

PAD = 4  # pixels between tiles and around the sheet
LABEL_HEIGHT = 18  # pixels of the caption strip under each tile
INPUT_LABEL = "input"  # the first tile: the picture before dreaming
GUIDE_LABEL = "guide"  # the second tile when there is a guide
CHANNEL_LAYERS = ("mixed3", "mixed4")  # layers whose single channels the gallery shows


def strongest_channels(net: FeatureNet, image: torch.Tensor, layer: str, count: int) -> list[int]:
    """The ``count`` channels of ``layer`` with the largest mean activation on ``image``, ascending."""
    if count <= 0:
        return []
    with torch.no_grad():
        acts = net(image, [layer])[layer][0].float()
    top = acts.mean(dim=(1, 2)).topk(min(count, acts.shape[0])).indices
    return sorted(top.tolist())


def gallery_keys(
    net: FeatureNet,
    image: torch.Tensor,
    catalogue: Mapping[str, int],
    channels: int = 3,
    channel_layers: Sequence[str] = CHANNEL_LAYERS,
) -> list[str]:
    """Every layer of ``catalogue``, then ``channels`` channels of each of ``channel_layers``."""
    keys = list(catalogue)
    for layer in channel_layers:
        if layer in catalogue:
            keys += [f"{layer}:{c}" for c in strongest_channels(net, image, layer, channels)]
    return keys


def check_size(net: FeatureNet, keys: Sequence[str], width: int, height: int) -> None:
    """Raise InputError when a tile of this size is too small for the deepest layer in ``keys``.

    Each block shrinks the picture (strided convolutions, pools); below about 75 pixels the
    deepest InceptionV3 layers have nothing left to convolve. Cheaper to find out with one
    forward on zeros than halfway through the gallery.
    """
    layers = {split_layer_key(key)[0] for key in keys}
    device = next(net.parameters()).device

    def fits(w: int, h: int) -> bool:
        try:
            with torch.no_grad():
                net(torch.zeros(1, 3, h, w, device=device), layers)
            return True
        except RuntimeError as err:  # "Output size is too small", "Kernel size can't be greater than ..."
            if is_out_of_memory(err):
                raise
            return False

    if fits(width, height):
        return
    deepest = max(layers, key=net.block_names.index)
    need = _smallest(min(width, height), 1024, lambda side: fits(side, side))
    hint = f"; expected a tile size of at least {need} pixels (--size {need})" if need else ""
    raise InputError(f"a {width}x{height} tile is too small for layer {deepest}{hint}")


def _smallest(low: int, high: int, ok) -> int | None:
    """The smallest side in (low, high] that is ``ok`` (monotonic: bigger pictures only fit better).

    Doubles from ``low`` first, so that only small pictures go through the network."""
    top = max(low, 1)
    while True:
        top = min(top * 2, high)
        if ok(top):
            break
        if top == high:
            return None
        low = top
    while top - low > 1:
        mid = (low + top) // 2
        low, top = (low, mid) if ok(mid) else (mid, top)
    return top


def dream_tiles(
    net: FeatureNet,
    image: torch.Tensor,
    keys: Sequence[str],
    settings: DreamSettings,
    *,
    seed: int = 0,
    objective: str = "square",
    guide: Mapping[str, torch.Tensor] | None = None,
    guide_weight: float = 1.0,
    callback: Callback = ignore,
) -> list[np.ndarray]:
    """``image`` (1, 3, H, W) dreamed once per key, each with the same random stream; HxWx3 uint8.
    ``guide``: a guide's features per layer (:func:`~dreamvid.engine.objectives.guide_features`),
    added to each key's objective with ``guide_weight``."""
    tiles = []
    callback(Progress("start", total=len(keys)))
    for i, key in enumerate(keys):
        obj = weighted({key: 1.0}, objective)
        if guide is not None:
            obj = obj + guide_weight * guided({key: 1.0}, guide)
        out = dream(net, image, obj, settings, torch.Generator().manual_seed(seed))
        tiles.append(to_uint8(out).cpu().numpy())
        callback(Progress("frame", frame=i + 1, total=len(keys), message=key))
    return tiles


def _font_scale(labels: Sequence[str], width: int) -> float:
    """One font scale for every caption: 0.45, or smaller when the longest would not fit."""
    widest = max(cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)[0][0] for text in labels)
    return min(0.45, (width - 4) / widest)


def sheet_shape(count: int, tile: tuple[int, int], columns: int) -> tuple[int, int]:
    """(height, width) in pixels of a contact sheet of ``count`` tiles of ``tile`` = (width, height)."""
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    w, h = tile
    return rows * (h + LABEL_HEIGHT + PAD) + PAD, columns * (w + PAD) + PAD


def contact_sheet(tiles: Sequence[np.ndarray], labels: Sequence[str], columns: int = 6) -> np.ndarray:
    """Tiles (equal HxWx3 uint8) in a grid on black, each captioned in white below; HxWx3 uint8."""
    if not tiles or len(tiles) != len(labels):
        raise ValueError("contact_sheet needs one label per tile, and at least one tile")
    h, w = tiles[0].shape[:2]
    columns = min(columns, len(tiles))
    sheet = np.zeros((*sheet_shape(len(tiles), (w, h), columns), 3), np.uint8)
    scale = _font_scale(labels, w)
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        y = PAD + (i // columns) * (h + LABEL_HEIGHT + PAD)
        x = PAD + (i % columns) * (w + PAD)
        sheet[y : y + h, x : x + w] = tile
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        origin = (x + (w - tw) // 2, y + h + (LABEL_HEIGHT + th) // 2)
        cv2.putText(sheet, label, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return sheet


def make_gallery(
    net: FeatureNet,
    picture: np.ndarray,
    catalogue: Mapping[str, int],
    settings: DreamSettings,
    *,
    keys: Sequence[str] | None = None,
    channels: int = 3,
    columns: int = 6,
    seed: int = 0,
    objective: str = "square",
    guide: np.ndarray | None = None,
    guide_weight: float = 1.0,
    callback: Callback = ignore,
) -> np.ndarray:
    """The contact sheet (HxWx3 uint8) of ``picture`` (HxWx3 float RGB, already tile-sized).

    ``keys`` restricts the tiles to those layer keys (checked against ``catalogue``);
    by default every layer plus ``channels`` channels of mixed3 and mixed4. The first tile
    is the picture itself. ``guide`` (HxWx3 float RGB, tile-sized): every tile is also
    pulled toward it with ``guide_weight``, and it is the second tile.
    """
    device = next(net.parameters()).device
    image = to_tensor(picture, device)
    if keys is None:
        keys = gallery_keys(net, image, catalogue, channels)
    else:
        weighted({key: 1.0 for key in keys}, objective, catalogue)  # names and channels, before any work
    if not keys:
        raise InputError("no layers to dream; expected at least one layer key")
    check_size(net, keys, picture.shape[1], picture.shape[0])
    features, shown, labels = None, [to_uint8(image).cpu().numpy()], [INPUT_LABEL]
    if guide is not None:
        guide_image = to_tensor(guide, device)
        features = guide_features(net, guide_image, sorted({split_layer_key(key)[0] for key in keys}))
        shown, labels = [*shown, to_uint8(guide_image).cpu().numpy()], [*labels, GUIDE_LABEL]
    tiles = dream_tiles(net, image, keys, settings, seed=seed, objective=objective, guide=features,
                        guide_weight=guide_weight, callback=callback)  # fmt: skip
    return contact_sheet([*shown, *tiles], [*labels, *keys], columns)
