"""The device check's measurements (``bash bench/device_check.sh``), most important first.

    python bench/device_measure.py --out DIR [--device cuda] [--rehearse]

One process, so the measurements share the network and its compiled graphs. Each writes
``DIR/NN-name.json`` as soon as it ends (``"error"`` when it failed or ran past its time), so a
step that fails or hangs leaves the others' results; ``DIR/summary.json`` lists them all.

1. ``default_720p``: the default path (colour control, 3 octaves, compile auto: CUDA graphs on
   CUDA) through FrameSource as a render runs it: frame 1 (the compile) and frames 2-4;
   graphs compiled, CUDA-graph skips, warnings.
2. ``speed_1080p``: steady ms per frame at 1920x1080 (1 octave) eager, compiled, compiled + CUDA graphs.
3. ``render_1080p``: ``dreamvid bench``'s dreamvid path (FrameSource and the encoder, its wait
   measured) at preset medium and veryfast, with the network of step 2.
4. ``sync_audit``: ``torch.cuda.set_sync_debug_mode("warn")`` over frames 2-3 of step 1's render.
5. ``memory``: peak memory at 1080p (4 octaves) and 4K with ``tile: auto``, and whether a forced
   out-of-memory with CUDA graphs on recovers in tiles.
6. ``determinism``: the same frame twice and a 5-frame chain twice on the default path.

``--rehearse``: the same steps on the CPU at tiny sizes; torch.compile runs with the
``aot_eager`` backend (dynamo and autograd traced, nothing compiled to C++), the forced
out-of-memory is simulated.
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch

from dreamvid.core.errors import first_line
from dreamvid.engine import ascent
from dreamvid.engine.model import load_model
from dreamvid.rendering.framesource import FrameSource
from dreamvid.rendering.step import Dreamer
from dreamvid.schedule.schedule import parse_schedule
from dreamvid.tools import bench


class Context:
    def __init__(self, device: torch.device, rehearse: bool, out: Path):
        self.device, self.rehearse, self.out = device, rehearse, out
        self.net = load_model("inception_v3", random_init=True, device=device)
        self.work = Path(tempfile.mkdtemp(prefix="device-check-"))
        self.default = None  # step 1's Dreamer and its frames, for steps 4 and 6

    def size(self, w: int, h: int) -> tuple[int, int]:
        """``(w, h)``, or a twelfth of it when rehearsing (at least 96 px a side)."""
        if not self.rehearse:
            return w, h
        return max(96, w // 12 // 2 * 2), max(96, h // 12 // 2 * 2)

    def schedule(self, size, **over):
        segment = {"frames": 12, "layers": {"mixed3": 1.0}, "zoom": 1.02, **over.pop("segment", {})}
        data = {"input": "noise", "output": str(self.work / "out.mp4"), "size": list(size), "fps": 30, "seed": 0,
                "device": str(self.device), "segments": [segment], **over}  # fmt: skip
        if self.rehearse:
            data.setdefault("compile", True)  # the compiled path, with the aot_eager backend
        return parse_schedule(data, source=self.work / "s.yaml")

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def counters() -> dict:
    """dynamo's and inductor's counters: graphs compiled, CUDA-graph skips and their reasons."""
    from torch._dynamo.utils import counters as c

    return {group: {str(k): int(v) for k, v in c[group].items()} for group in ("stats", "inductor") if group in c}


def frame_times(ctx: Context, dreamer: Dreamer, frames: int) -> tuple[list[float], torch.Tensor]:
    """Seconds each of frames 1..frames took through FrameSource, as a render gets them. With
    look-ahead (CUDA) ``get(n)`` dreams frame n+1 while frame n's copy runs, so frame k's time
    is that of ``get(k-1)`` (frame 1's includes frame 0, the noise input, which costs nothing)."""
    source, frame, times = FrameSource(dreamer, frames + 1), None, []
    for n in range(frames + 1):
        t = time.perf_counter()
        frame, _ = source.get(n, frame)
        ctx.sync()
        times.append(time.perf_counter() - t)
    return (times[:-1] if source.ahead else times[1:]), frame


def default_720p(ctx: Context) -> dict:
    from torch._dynamo.utils import counters as c

    c.clear()
    said = []
    dreamer = Dreamer(ctx.schedule(ctx.size(1280, 720)), ctx.net, on_warning=said.append)
    times, _ = frame_times(ctx, dreamer, 4)
    ctx.default = dreamer
    return {"size": list(dreamer.size), "compile": ascent.compile_mode(dreamer.step_net, dreamer.net),
            "precision": dreamer.precision, "frame1_s": round(times[0], 3),
            "frames_2_to_4_ms": [round(t * 1000, 1) for t in times[1:]], "counters": counters(),
            "warnings": said, "numerics": dreamer.numerics()}  # fmt: skip


def speed_1080p(ctx: Context) -> dict:
    schedule = ctx.schedule(ctx.size(1920, 1080), segment={"octaves": 1})
    result = {}
    for mode in ("eager", "compiled", "cuda graphs"):
        if mode == "cuda graphs" and ctx.device.type != "cuda":
            continue
        dreamer = Dreamer(schedule, ctx.net)
        dreamer.step_net = {"eager": ctx.net, "compiled": ascent.compiled(ctx.net),
                            "cuda graphs": ascent.compiled(ctx.net, cuda_graphs=True)}[mode]  # fmt: skip
        times, _ = frame_times(ctx, dreamer, 4)
        result[mode] = {"frame1_s": round(times[0], 3), "steady_ms": [round(t * 1000, 1) for t in times[1:]]}
    return result


def render_1080p(ctx: Context) -> dict:
    result = {}
    for preset in ("medium", "veryfast"):
        schedule = bench.bench_schedule(ctx.work, ctx.size(1920, 1080), "mixed3", 10, 4, 1, str(ctx.device),
                                        True, preset=preset)  # fmt: skip
        found, _, _ = bench.run_dreamvid(schedule, 4, net=ctx.net)
        result[preset] = {k: round(v, 2) if isinstance(v, float) else v for k, v in found.items()}
    return result


def sync_audit(ctx: Context) -> dict:
    dreamer = ctx.default or Dreamer(ctx.schedule(ctx.size(1280, 720)), ctx.net)
    source = FrameSource(dreamer, 4)
    frame, _ = source.get(0, None)
    frame, _ = source.get(1, frame)  # frame 2 dreamed ahead, before the audit
    ctx.sync()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if ctx.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            for n in (2, 3):
                frame, _ = source.get(n, frame)
            ctx.sync()
        finally:
            if ctx.device.type == "cuda":
                torch.cuda.set_sync_debug_mode(0)
    syncs: dict[str, int] = {}
    for w in caught:
        where = f"{Path(w.filename).name}:{w.lineno}: {first_line(str(w.message))[:120]}"
        syncs[where] = syncs.get(where, 0) + 1
    return {"audited": ctx.device.type == "cuda", "frames": [2, 3], "warnings": sum(syncs.values()), "where": syncs}


def memory(ctx: Context) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from gpu_memory import frame

    amp, step_net = ascent.speed_setup(ctx.net, ctx.device, compile=False)
    runs = [frame(step_net, amp, ctx.device, ctx.size(*dims), octaves, "auto")
            for dims, octaves in (((1920, 1080), 4), ((3840, 2160), 1))]  # fmt: skip
    return {"runs": runs, "forced_oom_with_cuda_graphs": forced_oom(ctx)}


def forced_oom(ctx: Context) -> dict:
    """A 1080p frame (1 octave) with CUDA graphs whose whole-frame try cannot fit (the process
    may use only a little more than it holds): does ``tile: auto`` recover, and in what tiles?"""
    size = (320, 256) if ctx.rehearse else (1920, 1080)  # rehearsing: tiles of half the side stay above MIN_TILE
    dreamer = Dreamer(ctx.schedule(size, segment={"octaves": 1}), ctx.net)
    tries = []
    real, real_auto_tile = ascent.dream, ascent.auto_tile
    ascent.forget_fitted_tiles()
    ascent.auto_tile = lambda *args, **kwargs: None  # as if the free memory had said: whole frames

    def dream(net, image, objective, settings, generator, **kw):
        tries.append(settings.tile)
        if ctx.device.type != "cuda" and settings.tile is None:  # rehearsal: simulated
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(net, image, objective, settings, generator, **kw)

    ascent.dream = dream
    limited = ctx.device.type == "cuda"
    try:
        if limited:
            torch.cuda.empty_cache()
            total = torch.cuda.get_device_properties(ctx.device).total_memory
            allowed = torch.cuda.memory_allocated(ctx.device) + (700 << 20)  # whole bf16 1080p needs ~1.2 GiB
            torch.cuda.set_per_process_memory_fraction(min(1.0, allowed / total), ctx.device)
        t = time.perf_counter()
        out = dreamer.next_frame(dreamer.first_frame(), 1)
        ctx.sync()
        return {"recovered": bool(torch.isfinite(out).all()), "tries": tries, "tile_kept": dreamer.tile.side,
                "seconds": round(time.perf_counter() - t, 3), "simulated": not limited,
                "compile": ascent.compile_mode(dreamer.step_net, dreamer.net)}  # fmt: skip
    except Exception as err:  # noqa: BLE001 - the result is whether it recovers
        return {"recovered": False, "tries": tries, "error": f"{type(err).__name__}: {first_line(err)[:300]}"}
    finally:
        ascent.dream, ascent.auto_tile = real, real_auto_tile
        if limited:
            torch.cuda.set_per_process_memory_fraction(1.0, ctx.device)
            torch.cuda.empty_cache()


def determinism(ctx: Context) -> dict:
    dreamer = ctx.default or Dreamer(ctx.schedule(ctx.size(1280, 720)), ctx.net)
    start = dreamer.first_frame()

    def chain(n: int) -> torch.Tensor:
        frame = start
        for k in range(1, n + 1):
            frame = dreamer.next_frame(frame, k)
        return frame

    def compare(a: torch.Tensor, b: torch.Tensor) -> dict:
        differ = ((a * 255).round() != (b * 255).round()).float().mean().item()
        return {"max_abs_diff": (a - b).abs().max().item(), "mean_abs_diff": (a - b).abs().mean().item(),
                "uint8_share_differing": differ}  # fmt: skip

    return {"compile": ascent.compile_mode(dreamer.step_net, dreamer.net), "precision": dreamer.precision,
            "same_frame_twice": compare(chain(1), chain(1)), "chain5_twice": compare(chain(5), chain(5))}  # fmt: skip


STEPS = [(default_720p, 240), (speed_1080p, 200), (render_1080p, 90), (sync_audit, 40), (memory, 90),
         (determinism, 60)]  # (measurement, seconds it may take)


class TimedOut(Exception):
    pass


def _alarm(signum, frame):
    raise TimedOut("ran past its time")


def run_step(ctx: Context, index: int, step, seconds: int) -> dict:
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds * (5 if ctx.rehearse else 1))  # the CPU at tiny sizes is still slower
    t = time.perf_counter()
    try:
        result = {"ok": True, **step(ctx)}
    except BaseException as err:  # recorded; the next measurement still runs
        if isinstance(err, KeyboardInterrupt):
            raise
        result = {"ok": False, "error": f"{type(err).__name__}: {first_line(err, '')[:500]}",
                  "traceback": traceback.format_exc()[-3000:]}  # fmt: skip
    finally:
        signal.alarm(0)
    result["seconds"] = round(time.perf_counter() - t, 1)
    path = ctx.out / f"{index:02d}-{step.__name__}.json"
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"device_measure: {step.__name__}: {'ok' if result['ok'] else result['error']} ({result['seconds']} s)",
          flush=True)  # fmt: skip
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--device", default=None, help="default: cuda, or cpu with --rehearse")
    ap.add_argument("--rehearse", action="store_true", help="CPU, tiny sizes, torch.compile with aot_eager")
    ap.add_argument("--only", nargs="*", help="run only these measurements")
    a = ap.parse_args()
    device = torch.device(a.device or ("cpu" if a.rehearse else "cuda"))
    if a.rehearse:
        real = torch.compile
        torch.compile = lambda fn, **kw: real(fn, dynamic=kw.get("dynamic"), backend="aot_eager")
        functools.update_wrapper(torch.compile, real)
    a.out.mkdir(parents=True, exist_ok=True)
    about = {"torch": str(torch.__version__), "python": sys.version.split()[0], "device": str(device),
             "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "rehearse": a.rehearse}
    (a.out / "00-about.json").write_text(json.dumps(about, indent=1) + "\n")
    ctx = Context(device, a.rehearse, a.out)
    summary = {}
    for index, (step, seconds) in enumerate(STEPS, 1):
        if a.only and step.__name__ not in a.only:
            continue
        result = run_step(ctx, index, step, seconds)
        summary[step.__name__] = {"ok": result["ok"], "seconds": result["seconds"], "error": result.get("error")}
    (a.out / "summary.json").write_text(json.dumps({**about, "steps": summary}, indent=1) + "\n")
    return 0 if all(s["ok"] for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
