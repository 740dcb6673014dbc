"""RAFT's memory with and without the pixel cap, and what the cap costs a flow's accuracy.

``memory``: peak resident memory of one ``flow.flows`` call of torchvision's ``raft_small``
(random weights: the memory does not depend on them; nothing is downloaded) on the CPU, each
size in a fresh process, next to the correlation volume the formula gives: (H/8 x W/8)^2
float32 values per image pair, pooled into 4 levels (1 + 1/4 + 1/16 + 1/64 of it), and the
first level twice while it is divided by sqrt(C). ``accuracy``: a real photo (skimage) under a
known pan or zoom at 1920x1080; the mean end-point error of DIS medium at full size and capped
to ``RAFT_MAX_PIXELS`` (:func:`dreamvid.pixels.flow.capped`, the same wrapper RAFT runs in) against
the true flow. (RAFT's own accuracy needs trained weights, which this project never downloads.)

    python3 bench/flow_cap.py memory [--sizes 960x540 1280x720 1920x1080]
    python3 bench/flow_cap.py accuracy
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import skimage.data
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamvid.core import defaults as D  # noqa: E402
from dreamvid.pixels import flow as FL  # noqa: E402
from dreamvid.pixels.images import fit, to_tensor  # noqa: E402


def volume_bytes(h: int, w: int, pairs: int = 2) -> dict:
    """The correlation pyramid's bytes (and its peak, level 0 held twice) for ``pairs`` image pairs."""
    cells = (-(-max(h, 128) // 8) * -(-max(w, 128) // 8)) ** 2 * 4 * pairs
    pyramid = cells * (1 + 1 / 4 + 1 / 16 + 1 / 64)
    return {"pyramid_gb": pyramid / 1e9, "peak_gb": (2 * cells + (pyramid - cells)) / 1e9}


def one_run(size: str, max_pixels: int, weights: str) -> dict:
    """In this process: peak RSS before and after one flows() call at ``size``."""
    w, h = (int(v) for v in size.split("x"))
    torch.manual_seed(0)
    fn = FL.raft(weights, "cpu", iterations=2, max_pixels=max_pixels)
    a, b = torch.rand(1, 3, h, w), torch.rand(1, 3, h, w)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB
    FL.flows(fn, a, b)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    rh, rw = FL.capped_size((h, w), max_pixels)
    return {"size": size, "max_pixels": max_pixels, "raft_input": f"{rw}x{rh}", "rss_before_gb": round(before, 2),
            "rss_peak_gb": round(peak, 2), "added_gb": round(peak - before, 2),
            **{k: round(v, 2) for k, v in volume_bytes(rh, rw).items()}}


def memory(sizes: list[str]) -> None:
    from torchvision.models.optical_flow import raft_small

    with tempfile.TemporaryDirectory() as tmp:
        weights = str(Path(tmp) / "raft_small.pth")
        torch.save(raft_small(weights=None, progress=False).state_dict(), weights)
        for size in sizes:
            w, h = (int(v) for v in size.split("x"))
            for cap in sorted({w * h, D.RAFT_MAX_PIXELS}, reverse=True):
                if w * h > 1280 * 720 and cap == w * h:  # uncapped above 720p: the formula only
                    print(json.dumps({"size": size, "max_pixels": cap, "measured": False,
                                      **{k: round(v, 2) for k, v in volume_bytes(h, w).items()}}), flush=True)
                    continue
                r = subprocess.run([sys.executable, __file__, "one", size, str(cap), weights], capture_output=True,
                                   text=True, check=True)
                print(r.stdout.strip(), flush=True)


def scene(photo: str, size: tuple[int, int], zoom: float, pan: tuple[float, float]):
    """(previous, current, true backward flow) at ``size``: current[p] = previous[p + flow[p]],
    the previous frame zoomed by ``zoom`` about its centre and its content moved by ``pan``."""
    w, h = size
    prev = to_tensor(fit(getattr(skimage.data, photo)().astype(np.float32) / 255, size))
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    cx, cy = (w - 1) / 2, (h - 1) / 2
    bx = (xs - cx) * (1 / zoom - 1) - pan[0]
    by = (ys - cy) * (1 / zoom - 1) - pan[1]
    true = torch.stack([bx, by])[None]
    return prev, FL.warp(prev, true), true


def accuracy() -> None:
    size = (1920, 1080)
    motions = {"pan 6,3 px": (1.0, (6.0, 3.0)), "zoom 1.02 + pan 4,0 px": (1.02, (4.0, 0.0))}
    methods = {"DIS medium, full size": FL.dis(),
               f"DIS medium, capped to {D.RAFT_MAX_PIXELS} px": FL.capped(FL.dis(), D.RAFT_MAX_PIXELS)}
    inner = (slice(None), slice(None), slice(32, -32), slice(32, -32))
    for photo in ("astronaut", "coffee", "retina"):
        for motion, (zoom, pan) in motions.items():
            prev, cur, true = scene(photo, size, zoom, pan)
            for name, fn in methods.items():
                backward = fn(cur, prev)
                epe = (backward - true).norm(dim=1, keepdim=True)
                print(json.dumps({"photo": photo, "motion": motion, "method": name,
                                  "epe_mean_px": round(epe[inner].mean().item(), 3),
                                  "epe_all_px": round(epe.mean().item(), 3)}), flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "one":
        torch.set_num_threads(2)
        print(json.dumps(one_run(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["memory", "accuracy"])
    ap.add_argument("--sizes", nargs="+", default=["960x540", "1280x720", "1920x1080"])
    args = ap.parse_args()
    torch.set_num_threads(2)
    memory(args.sizes) if args.what == "memory" else accuracy()


if __name__ == "__main__":
    main()
