"""GPU checks for docs/: run-to-run determinism of a dream step and a plain timing.

    python bench/gpu_check.py [--size 1920x1080] [--out results.json]

Uses the embedded architecture with random weights (--random-weights semantics: same
compute, no weight file needed on the GPU host). Prints one JSON object.
"""

import argparse
import json
import time

import torch

from dreamvid.engine.ascent import DreamSettings, dream
from dreamvid.engine.model import load_model
from dreamvid.engine.objectives import layer
from dreamvid.pixels.camera import move


def run(net, x, settings, seed):
    return dream(net, x, layer("mixed3"), settings, torch.Generator().manual_seed(seed))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out")
    a = ap.parse_args()
    w, h = map(int, a.size.split("x"))
    dev = torch.device(a.device)
    res = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "torch": torch.__version__,
           "size": [w, h]}  # fmt: skip
    net = load_model(random_init=True, device=dev).to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(dev)
    x = move(x, 1.02).contiguous(memory_format=torch.channels_last)
    s = DreamSettings(iterations=10, step=0.01, octaves=1, jitter=32)

    # determinism: the same frame dreamed twice, then a short chain of 5 frames twice
    a1, a2 = run(net, x, s, 1), run(net, x, s, 1)
    res["same_input_max_abs_diff"] = (a1 - a2).abs().max().item()
    res["same_input_uint8_pixels_differing"] = ((a1 * 255).round() != (a2 * 255).round()).float().mean().item()

    def chain(n=5):
        f = x
        for k in range(n):
            f = run(net, move(f, 1.02).contiguous(memory_format=torch.channels_last), s, k)
        return f

    c1, c2 = chain(), chain()
    res["chain5_max_abs_diff"] = (c1 - c2).abs().max().item()
    res["chain5_mean_abs_diff"] = (c1 - c2).abs().mean().item()
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    d1, d2 = run(net, x, s, 1), run(net, x, s, 1)
    res["deterministic_mode_max_abs_diff"] = (d1 - d2).abs().max().item()
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False

    # timing: ms per frame (10 steps, 1 octave), fp32 and bf16 autocast, channels_last
    def timed(settings, reps=3):
        run(net, x, settings, 0)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(reps):
            run(net, x, settings, 0)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t) / reps * 1000

    res["ms_per_frame_fp32"] = timed(s)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        res["ms_per_frame_fp32_cudnn_benchmark"] = timed(s)
        res["ms_per_frame_bf16_cudnn_benchmark"] = timed(DreamSettings(10, 0.01, 1, 1.4, 32, torch.bfloat16))
        torch.cuda.reset_peak_memory_stats()
        run(net, x, DreamSettings(iterations=2, octaves=4), 0)
        res["peak_gib_1080p_4_octaves_fp32"] = torch.cuda.max_memory_allocated() / 2**30
    print(json.dumps(res, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
