"""A guided still beside an unguided one, for docs/quality.md (docs/guide.png).

Dreams skimage's coffee at 256x144 with the schedule defaults (mixed3 + mixed4, square, 10
iterations, 3 octaves, seed 0), without a guide and with skimage's chelsea (a cat) as the
guide at guide_weight 1, 3 and 10, exactly as a segment with ``guide:`` does (the objective
of :func:`dreamvid.engine.objectives.guided` added to the layers'). Prints, per still, the mean
over the frame's mixed4 positions of the best cosine similarity to a guide feature vector.

    python3 bench/guide_still.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamvid.engine.ascent import DreamSettings, dream  # noqa: E402
from dreamvid.engine.model import shared_model  # noqa: E402
from dreamvid.engine.objectives import guide_features, guided, weighted  # noqa: E402
from dreamvid.pixels.images import fit, to_tensor, to_uint8  # noqa: E402

SIZE = (256, 144)
LAYERS = {"mixed3": 1.0, "mixed4": 1.0}


def best_cosine(net, x: torch.Tensor, features: torch.Tensor, layer: str) -> float:
    with torch.no_grad():
        a = net(x, [layer])[layer][0].flatten(1)
    return (F.normalize(a, dim=0).T @ F.normalize(features, dim=0)).max(1).values.mean().item()


def main() -> None:
    torch.set_num_threads(2)
    net = shared_model("inception_v3", device=torch.device("cpu"))
    image = to_tensor(fit(skimage.data.coffee().astype(np.float32) / 255.0, SIZE))
    guide = to_tensor(fit(skimage.data.chelsea().astype(np.float32) / 255.0, SIZE))
    features = guide_features(net, guide, list(LAYERS))
    tiles, labels = [to_uint8(image).numpy(), to_uint8(guide).numpy()], ["input", "guide"]
    print(f"input: best cosine to the guide at mixed4 {best_cosine(net, image, features['mixed4'], 'mixed4'):.3f}")
    for weight in (0, 1, 3, 10):
        objective = weighted(LAYERS)
        if weight:
            objective = objective + weight * guided(LAYERS, features)
        out = dream(net, image, objective, DreamSettings(), torch.Generator().manual_seed(0))
        print(f"guide_weight {weight}: best cosine to the guide at mixed4 "
              f"{best_cosine(net, out, features['mixed4'], 'mixed4'):.3f}")  # fmt: skip
        tiles.append(to_uint8(out).numpy())
        labels.append("unguided" if weight == 0 else f"guide_weight {weight}")
    for tile, label in zip(tiles, labels):
        cv2.putText(tile, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    row = np.concatenate([np.concatenate(tiles[:3], axis=1), np.concatenate(tiles[3:], axis=1)], axis=0)
    cv2.imwrite(str(ROOT / "docs" / "guide.png"), cv2.resize(row, None, fx=0.6, fy=0.6,
                interpolation=cv2.INTER_AREA)[..., ::-1])  # fmt: skip


if __name__ == "__main__":
    main()
