"""One lever at a time: ms per dream step (or per zoom) on this machine, as a markdown table.

    python bench/levers.py [--size 256x256] [--reps 5] [--compile] [--threads N]

For docs/performance.md. Each row changes one thing against the row it names; the
median of ``--reps`` runs after one warm-up. ``--compile`` adds torch.compile rows (minutes
of compiling on a 2-core CPU).
"""

import argparse
import statistics
import time

import torch

from dreamvid.engine.ascent import gradient_step
from dreamvid.engine.model import load_model
from dreamvid.engine.objectives import layer
from dreamvid.pixels.camera import move
from dreamvid.pixels.images import to_uint8
from dreamvid.tools import baseline as _baseline


def timed(fn, reps):
    """Median wall ms and median CPU ms (process time / threads: steadier on a busy machine)."""
    fn()
    wall, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000 / torch.get_num_threads())
    return statistics.median(wall), statistics.median(cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    w, h = map(int, a.size.split("x"))
    obj = layer("mixed3")
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    nchw = load_model()
    cl = load_model().to(memory_format=torch.channels_last)
    xc = x.contiguous(memory_format=torch.channels_last)
    rows = [
        ("step: fp32 NCHW, full network (baseline)", lambda: _baseline.step(nchw, x, obj, 0.01)),
        ("step: NCHW, truncated at mixed3", lambda: gradient_step(nchw, x, obj, 0.01)),
        ("step: channels_last, full network", lambda: _baseline.step(cl, xc, obj, 0.01)),
        ("step: channels_last, truncated (dreamvid)", lambda: gradient_step(cl, xc, obj, 0.01)),
        ("step: dreamvid under bf16 autocast", lambda: gradient_step(cl, xc, obj, 0.01, torch.bfloat16)),
    ]
    threads = torch.get_num_threads()
    results = [(name, timed(fn, a.reps)) for name, fn in rows]
    torch.set_num_threads(1)
    results.append(("step: dreamvid, 1 thread instead of %d" % threads, timed(rows[3][1], a.reps)))
    torch.set_num_threads(threads)
    results.append(("zoom: cv2.warpAffine round trip (baseline)", timed(lambda: _baseline.zoom(x, 1.02), 20)))
    results.append(("zoom: affine_grid + grid_sample (dreamvid)", timed(lambda: move(xc, 1.02), 20)))
    with torch.inference_mode():
        results.append(("zoom: grid_sample under inference_mode", timed(lambda: move(xc, 1.02), 20)))
    results.append(("to uint8 + host: baseline", timed(lambda: _baseline.to_rgb8(x), 20)))
    results.append(("to uint8 + host: dreamvid", timed(lambda: to_uint8(xc).cpu().numpy(), 20)))
    if a.compile:
        compiled = torch.compile(cl, dynamic=False)
        t = time.perf_counter()
        gradient_step(compiled, xc, obj, 0.01)
        results.append(("torch.compile: first step (compiling)", ((time.perf_counter() - t) * 1000, float("nan"))))
        results.append(("step: dreamvid + torch.compile", timed(lambda: gradient_step(compiled, xc, obj, 0.01), a.reps)))
    print(f"| lever ({w}x{h}, {threads} threads, torch {torch.__version__}) | wall ms | CPU ms / thread |\n|---|---|---|")
    for name, (ms, cpu) in results:
        print(f"| {name} | {ms:.1f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
