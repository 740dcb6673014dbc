"""Issue 6's memory goals, measured through dreamvid's own frame path (``dream_frame``).

    python bench/gpu_memory.py [--device cuda] [--out memory.json]

1. a 1920x1080 frame with 4 octaves (mixed3, 10 iterations) with ``tile: auto``: peak
   ``max_memory_allocated`` (goal: under 8 GiB) and whether auto tiling kicked in;
2. a 3840x2160 frame with ``tile: auto``: it must render (tiled if it does not fit);
3. the same 4K frame with a forced tile of 512 px, for the tiled step's cost.

Random weights (same compute, no weight file on the GPU host). On the CPU (``--device cpu
--scale 0.1``) it runs the same path at a tenth of the size, as a smoke test of the script.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from dreamvid.engine.ascent import DreamSettings, auto_tile, dream_frame, speed_setup
from dreamvid.engine.model import load_model
from dreamvid.engine.objectives import layer


def frame(net, amp, device, size, octaves, tile) -> dict:
    w, h = size
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    s = DreamSettings(iterations=10, step=0.01, octaves=octaves, octave_scale=1.4, jitter=32, amp_dtype=amp)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    out = dream_frame(net, x, layer("mixed3"), s, lambda: torch.Generator().manual_seed(1), tile)
    finite = bool(torch.isfinite(out).all())  # also waits for the device
    seconds = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"size": [w, h], "octaves": octaves, "tile": tile, "auto_tile": auto_tile((h, w), device, amp),
            "seconds": round(seconds, 3), "peak_gib": None if peak is None else round(peak / 2**30, 3),
            "finite": finite}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--scale", type=float, default=1.0, help="scale the sizes (CPU smoke test: 0.1)")
    ap.add_argument("--out")
    a = ap.parse_args()
    device = torch.device(a.device)
    net = load_model("inception_v3", random_init=True, device=device).to(memory_format=torch.channels_last)
    amp, step_net = speed_setup(net, device, compile=False)  # eager: memory, not speed
    size = lambda w, h: (round(w * a.scale / 2) * 2, round(h * a.scale / 2) * 2)  # noqa: E731
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": str(torch.__version__), "amp": str(amp), "runs": []}  # fmt: skip
    for dims, octaves, tile in [((1920, 1080), 4, "auto"), ((3840, 2160), 1, "auto"), ((3840, 2160), 1, 512)]:
        tile = tile if tile == "auto" else max(128, round(tile * a.scale))
        result["runs"].append(frame(step_net, amp, device, size(*dims), octaves, tile))
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
