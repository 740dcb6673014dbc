"""Mean against Laplacian gradient normalisation: how much high-frequency energy do dreamed stills get?

Dreams five stills (three skimage photos, the flat logo schedules/logo.png and grey noise)
at 256x144 with the schedule defaults (mixed3, square, 10 iterations, 3 octaves of which 2
are above 80 px, step 0.01, jitter 32, seed 0), once per ``gradient_norm``, and measures

- ``hf``: the share of the spectral energy above half the Nyquist frequency (radial
  frequency > 0.25 cycles/pixel) of the still's luma (mean removed, Hann window);
- ``hf_detail``: the same share of what the dream added (still minus input), which
  isolates the dream from the input's own texture;
- ``fine``: the finest Laplacian band's share of the added detail's energy.

Prints a markdown table (docs/quality.md) and writes docs/gradient-norm.jpg (input, mean,
laplacian per row).

    python3 bench/gradient_norm.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamvid.engine.ascent import DreamSettings, dream, laplacian_split  # noqa: E402
from dreamvid.engine.model import shared_model  # noqa: E402
from dreamvid.engine.objectives import weighted  # noqa: E402
from dreamvid.pixels.images import fit, noise_image, read_image, to_tensor, to_uint8  # noqa: E402

SIZE = (256, 144)
NORMS = ("mean", "laplacian")


def inputs() -> dict[str, np.ndarray]:
    def photo(a):
        return fit(a.astype(np.float32) / 255.0, SIZE)

    return {
        "astronaut": photo(skimage.data.astronaut()),
        "coffee": photo(skimage.data.coffee()),
        "chelsea": photo(skimage.data.chelsea()),
        "logo": fit(read_image(ROOT / "schedules" / "logo.png"), SIZE),
        "noise": noise_image(SIZE, torch.Generator().manual_seed(0)),
    }


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float64)


def high_share(image: np.ndarray) -> float:
    """Share of the spectral energy above half Nyquist (radial frequency > 0.25 cycles/px)."""
    y = luma(image.astype(np.float64))
    y = y - y.mean()
    h, w = y.shape
    y = y * np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2(y)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    return float(power[np.hypot(fx, fy) > 0.25].sum() / power.sum())


def finest_share(detail: np.ndarray) -> float:
    """The finest of 4 Laplacian bands' share of the energy of ``detail`` (HxWx3)."""
    bands = laplacian_split(torch.from_numpy(detail.astype(np.float32)).permute(2, 0, 1)[None], 4)
    energy = [float(b.square().sum()) for b in bands[:-1]]  # the low-pass residual is left out
    return energy[0] / sum(energy)


def main() -> None:
    torch.set_num_threads(2)
    net = shared_model("inception_v3", device=torch.device("cpu"))
    objective = weighted({"mixed3": 1.0}, "square")
    rows, strip = [], []
    for name, picture in inputs().items():
        image = to_tensor(picture, torch.device("cpu"))
        row = [to_uint8(image).numpy()]
        for norm in NORMS:
            start = time.perf_counter()
            out = dream(net, image, objective, DreamSettings(gradient_norm=norm), torch.Generator().manual_seed(0))
            seconds = time.perf_counter() - start
            still = out[0].permute(1, 2, 0).numpy()
            detail = still - picture
            rows.append((name, norm, high_share(still), high_share(detail), finest_share(detail), seconds))
            row.append(to_uint8(out).numpy())
        strip.append(np.concatenate(row, axis=1))
    print("| input | gradient_norm | hf of the still | hf of the added detail | finest band of the detail | s |")
    print("|---|---|---|---|---|---|")
    for name, norm, hf, hf_detail, fine, seconds in rows:
        print(f"| {name} | {norm} | {hf:.3f} | {hf_detail:.3f} | {fine:.3f} | {seconds:.1f} |")
    sheet = np.concatenate(strip, axis=0)
    cv2.imwrite(str(ROOT / "docs" / "gradient-norm.jpg"), cv2.resize(sheet, None, fx=0.75, fy=0.75,
                interpolation=cv2.INTER_AREA)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])  # fmt: skip


if __name__ == "__main__":
    main()
