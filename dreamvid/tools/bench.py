"""``dreamvid bench``: dreamvid's render path against a plain loop, in one process.

Both paths start from the same frame (the schedule's noise input) with the same
settings and the same random jitter, render ``frames`` frames after one warm-up frame,
and encode with libx264 (crf 18, preset medium as a schedule's default encoder, or ``preset``):

- ``baseline``: :mod:`dreamvid.tools.baseline`, fp32 NCHW eager, the full network each step,
  zoom through OpenCV on the CPU, encoding in the loop, one ``.item()`` per step;
- ``dreamvid``: :func:`dreamvid.rendering.loop.render` itself (on CUDA frame n's host copy
  overlaps frame n+1's dream), with the schedule's default colour control (the baseline has
  none; ``colour``: another mode), in the precision ``precision`` resolves to
  (:mod:`dreamvid.engine.precision`); its frame timed by stage (:mod:`dreamvid.core.stages`).

Reported per path: ms per frame (the loop's wall time, the encoder's flush at the end
included; for dreamvid also the join of its parts and a checkpoint after the last frame),
dreamvid's frame by stage (wall and CPU time) and everything but the dream per frame
(:func:`rest_of_frame`), the dream step's FLOPs (forward + input gradient, counted with
``torch.utils.flop_counter.FlopCounterMode``) and achieved GFLOP/s, peak memory (CUDA:
``max_memory_allocated``; CPU: peak RSS, reset before each path through
``/proc/self/clear_refs``), the encoder's share (ffmpeg's CPU time and the time the loop
waited on it) and this process's CPU time; the CPU's features; the machine's practical
peak (:func:`practical_peak`) in fp32 and, when dreamvid runs in bf16, in bf16; and the
*ceiling*: the speedup dreamvid would reach if its dream step ran all its FLOPs at the peak
of its precision and the rest of its frame took what it takes now (an upper bound on what a
faster implementation of the same arithmetic could give on this machine).
The library never prints: :func:`run` returns a dict, the CLI formats it.
"""

from __future__ import annotations

import contextlib
import resource
import tempfile
import time
from pathlib import Path

import torch

from dreamvid.core.progress import Progress
from dreamvid.core.stages import STAGES, StageTimer, timing
from dreamvid.engine.ascent import DreamSettings, octave_sizes
from dreamvid.engine.model import load_model, pick_device
from dreamvid.engine.objectives import weighted
from dreamvid.engine.precision import choose as choose_precision
from dreamvid.engine.precision import cpu_features
from dreamvid.media import ffmpeg
from dreamvid.schedule.schedule import parse_schedule
from dreamvid.tools import baseline as _baseline

ENCODER = {"codec": "libx264", "crf": 18, "preset": "medium", "pix_fmt": "yuv420p"}


def bench_schedule(work: Path, size, layers: str, iterations: int, frames: int, octaves: int, device: str,
                   compile, tile=None, preset: str = "medium", precision: str = "auto", colour: str | None = None):  # fmt: skip
    """The schedule both paths render: noise input, zoom 1.02, jitter 32, step 0.01; dreamvid's
    colour control as a schedule's default (``colour``: another ``colour`` value, e.g. none)."""
    segment = {"frames": frames + 2, "layers": {layers: 1.0}, "iterations": iterations, "octaves": octaves,
               "zoom": 1.02, "jitter": 32, "step": 0.01}  # fmt: skip
    data = {"input": "noise", "output": str(work / "dreamvid.mp4"), "size": list(size), "fps": 30, "seed": 0,
            "device": device, "compile": compile, "tile": tile, "precision": precision,
            "encoder": {**ENCODER, "preset": preset},
            "segments": [segment], "defaults": {} if colour is None else {"colour": colour}}  # fmt: skip
    return parse_schedule(data, source=work / "bench.yaml")


# ------------------------------------------------------------------------------ measuring


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: "5" resets the peak RSS (VmHWM) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # since the process started


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)  # ffmpeg processes that have been waited for
    return r.ru_utime + r.ru_stime


def step_flops(step_fn, shapes, device) -> int:
    """FLOPs of one call of ``step_fn(x)`` per shape, summed (forward + input gradient)."""
    from torch.utils.flop_counter import FlopCounterMode

    total = 0
    for h, w in shapes:
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)
        with FlopCounterMode(display=False) as counter:
            step_fn(x)
        total += counter.get_total_flops()
    return total


def _truncated_step(dreamer, x: torch.Tensor, objective) -> None:
    """What :func:`dreamvid.engine.ascent.gradient` computes, with ``backward()`` instead of
    ``autograd.grad`` (which FlopCounterMode's module tracker does not support)."""
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    with torch.autocast(x.device.type, dtype=dreamer.amp_dtype, enabled=dreamer.amp_dtype is not None):
        acts = dreamer.net(x, objective.layers)
    objective(acts).backward()


def gemm_peak(device: torch.device, dtype: torch.dtype = torch.float32) -> float:
    """Achieved GFLOP/s of a large matrix product in ``dtype``."""
    n = 8192 if device.type == "cuda" else 2048
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 proper
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / _best_s(lambda: torch.mm(a, b), device) / 1e9


def conv_peak(device: torch.device, dtype: torch.dtype = torch.float32) -> float:
    """Achieved GFLOP/s of the network's biggest convolution alone in ``dtype`` (conv2d_4 at
    256x256: 3x3, 80 -> 192 channels, 60x60 out, channels_last, as dreamvid runs it)."""
    x = torch.randn(1, 80, 62, 62, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(192, 80, 3, 3, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    return 2 * 60 * 60 * 192 * 80 * 9 / _best_s(lambda: torch.nn.functional.conv2d(x, w), device) / 1e9


def practical_peak(device: torch.device, dtype: torch.dtype = torch.float32) -> dict:
    """The machine's practical peak in ``dtype``: the faster of a large matrix product and, on
    the CPU, the network's biggest convolution. On the 2-core AMD dev machine oneDNN's fp32
    convolution kernels reach 199-202 GFLOP/s where the BLAS sgemm reaches 145-149, so the
    matrix product alone would overstate how close to the machine's limit the dream step
    runs. (On CUDA, fp32 convolutions may use TF32; there the sgemm with TF32 off is the fp32 peak.)"""
    gemm = gemm_peak(device, dtype)
    conv = conv_peak(device, dtype) if device.type == "cpu" else 0.0
    return {"gemm": gemm, "conv": conv, "peak": max(gemm, conv), "source": "conv" if conv > gemm else "gemm"}


def _best_s(fn, device: torch.device, reps: int = 5) -> float:
    fn()  # warm-up (oneDNN and cuBLAS pick their kernels on the first call)
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best


# ------------------------------------------------------------------------------ the paths


def _time_loop(frames: int, device, render_one, finish) -> dict:
    """Warm-up frame 1, then frames 2..frames+1 timed; ``finish()`` (closing the encoder) is timed too."""
    t = time.perf_counter()
    render_one(1)
    _sync(device)
    warmup = time.perf_counter() - t
    _reset_peak(device)
    cpu0, own0 = _children_cpu_s(), time.process_time()
    t0 = time.perf_counter()
    dream_s = encode_wait_s = 0.0
    for n in range(2, frames + 2):
        d, e = render_one(n)
        dream_s, encode_wait_s = dream_s + d, encode_wait_s + e
    t = time.perf_counter()
    finish()
    encode_wait_s += time.perf_counter() - t
    total = time.perf_counter() - t0
    own = time.process_time() - own0  # this process's CPU time: steadier than wall time on a busy machine
    return {"ms_per_frame": total / frames * 1000, "dream_ms_per_frame": dream_s / frames * 1000,
            "encode_wait_ms_per_frame": encode_wait_s / frames * 1000, "warmup_s": warmup,
            "process_cpu_ms_per_frame": own / frames * 1000,
            "encoder_cpu_ms_per_frame": (_children_cpu_s() - cpu0) / (frames + 1) * 1000,
            "peak_memory_bytes": _peak_bytes(device)}  # fmt: skip


def run_dreamvid(schedule, frames: int, random_weights: bool = False, net=None) -> tuple[dict, torch.Tensor, object]:
    """dreamvid's path: :func:`dreamvid.rendering.loop.render` itself, with the frame's stages
    timed (:mod:`dreamvid.core.stages`); ``net``: a network already loaded (and compiled) in
    this process. On CUDA the stages are timed in a second render, as their synchronisation
    would hide the overlap (frame n's copy during frame n+1's dream) that the first measures."""
    from dreamvid.rendering.step import Dreamer

    if net is None:
        net = load_model(schedule.model, random_init=random_weights, device=pick_device(schedule.device))
    dreamer = Dreamer(schedule, net)  # the same start, precision and FLOPs as the render's own Dreamer
    first = dreamer.first_frame()
    device = dreamer.device
    if device.type == "cuda":
        result = _time_render(schedule, net, frames, None)
        result["stages_with_sync"] = _time_render(schedule, net, frames, StageTimer(lambda: _sync(device)))
        result.update({k: result["stages_with_sync"][k] for k in ("stages_ms_per_frame", "stages_cpu_ms_per_frame",
                                                                    "unaccounted_ms_per_frame")})
    else:
        result = _time_render(schedule, net, frames, StageTimer())
    stages = result["stages_ms_per_frame"]
    result["dream_ms_per_frame"] = stages.get("dream", 0.0)
    result["encode_wait_ms_per_frame"] = stages.get("encoder", 0.0) + stages.get("finish", 0.0)
    result.update(rest_of_frame(result))
    return result, first, dreamer


PER_RENDER = ("finish", "checkpoint")  # once per render (or per part of checkpoint_every frames), not per frame


def rest_of_frame(result: dict) -> dict:
    """Everything but the dream in a frame of a long render: the frame without the dream and
    without what the bench's few frames pay once (:data:`PER_RENDER`), in ms and as a share."""
    timed = result.get("stages_with_sync", result)
    out = {}
    for key, total, stages in (("", timed["ms_per_frame"], result["stages_ms_per_frame"]),
                               ("cpu_", timed["process_cpu_ms_per_frame"], result["stages_cpu_ms_per_frame"])):  # fmt: skip
        frame = total - sum(stages.get(name, 0.0) for name in PER_RENDER)
        rest = frame - stages.get("dream", 0.0)
        out.update({f"rest_{key}ms_per_frame": rest, f"rest_{key}share": rest / frame})
    return out


def _time_render(schedule, net, frames: int, timer: StageTimer | None) -> dict:
    """A render of frames 0..frames+1: frame 1 is the warm-up, frames 2..frames+1 and the end
    (the encoder's flush, the join) are timed, as :func:`_time_loop` times the baseline."""
    from dreamvid.rendering.loop import render

    device = next(net.parameters()).device
    marks: dict = {}

    def callback(p: Progress) -> None:
        if p.event == "frame" and p.frame == 2:  # frame 1, the warm-up, is done
            _sync(device)
            marks["warm"] = time.perf_counter()
            _reset_peak(device)
            marks["cpu"], marks["own"] = _children_cpu_s(), time.process_time()
            if timer is not None:
                timer.reset()
        elif p.event == "frame" and p.frame == frames + 2:
            marks["last"], marks["last_cpu"] = time.perf_counter(), time.process_time()

    t = time.perf_counter()
    with timing(timer) if timer is not None else contextlib.nullcontext():
        render(schedule, model=net, frames=frames + 2, fresh=True, callback=callback)
    end = time.perf_counter()
    own = time.process_time() - marks["own"]
    ms = {name: s / frames * 1000 for name, s in (timer.seconds if timer is not None else {}).items()}
    cpu_ms = {name: s / frames * 1000 for name, s in (timer.cpu_seconds if timer is not None else {}).items()}
    if ms:
        ms["finish"] = (end - marks["last"]) / frames * 1000  # the encoder's flush and the join, spread
        cpu_ms["finish"] = (time.process_time() - marks["last_cpu"]) / frames * 1000
    total = (end - marks["warm"]) / frames * 1000
    return {"ms_per_frame": total, "warmup_s": marks["warm"] - t,
            "process_cpu_ms_per_frame": own / frames * 1000,
            "encoder_cpu_ms_per_frame": (_children_cpu_s() - marks["cpu"]) / (frames + 2) * 1000,  # its frames 0..frames+1
            "peak_memory_bytes": _peak_bytes(device), "frame_shape": [1, 3, schedule.size[1], schedule.size[0]],
            "stages_ms_per_frame": {name: ms[name] for name in (*STAGES, "finish") if name in ms},
            "stages_cpu_ms_per_frame": {name: cpu_ms[name] for name in (*STAGES, "finish") if name in cpu_ms},
            "unaccounted_ms_per_frame": total - sum(ms.values()) if ms else None}  # fmt: skip


def run_baseline(schedule, first: torch.Tensor, frames: int, device: torch.device, random_weights: bool) -> dict:
    from dreamvid.rendering.step import frame_rng

    net = load_model(schedule.model, random_init=random_weights, device=device)  # fp32, NCHW
    torch.backends.cudnn.benchmark = False  # the Dreamer turned it on; the plain loop does not know it
    w, h = schedule.size
    out = schedule.output_path.with_name("baseline.mp4")
    proc = _baseline.encoder(out, (w, h), schedule.fps, schedule.encoder.crf, schedule.encoder.preset)
    state = {"frame": first.to(device).contiguous()}

    def render_one(n):
        p = schedule.params(n)
        t = time.perf_counter()
        x = _baseline.zoom(state["frame"], p.zoom, p.rotate, p.translate)
        s = DreamSettings(p.iterations, p.step, p.octaves, p.octave_scale, p.jitter)
        state["frame"] = _baseline.dream(net, x, weighted(p.layers, p.objective), s, frame_rng(schedule.seed, n))
        rgb = _baseline.to_rgb8(state["frame"])
        t1 = time.perf_counter()
        proc.stdin.write(rgb.tobytes())  # synchronous: ffmpeg must take it before we go on
        return t1 - t, time.perf_counter() - t1

    def finish():
        proc.stdin.close()
        proc.wait()

    try:
        result = _time_loop(frames, device, render_one, finish)
    finally:
        ffmpeg.stop(proc)  # waited for already after finish(); ended (terminate, then kill) if the loop failed
    result["frame_shape"] = list(state["frame"].shape)
    p = schedule.params(1)
    shapes = octave_sizes(h, w, p.octaves, p.octave_scale)
    result["flops_per_step"] = step_flops(lambda x: _baseline.step(net, x, weighted(p.layers), p.step), shapes, device)
    return result


def run(*, device: str = "auto", size=(256, 256), layers: str = "mixed3", iterations: int = 10, frames: int = 5,
        octaves: int = 1, compile="auto", random_weights: bool = False, tile=None, preset: str = "medium",
        precision: str = "auto", colour: str | None = None) -> dict:  # fmt: skip
    """Run both paths; returns the measurements (see the module docstring)."""
    dev = pick_device(device)
    choice = choose_precision(precision, dev)  # what the Dreamer will use
    with tempfile.TemporaryDirectory(prefix="dreamvid-bench-") as tmp:
        work = Path(tmp)
        schedule = bench_schedule(work, size, layers, iterations, frames, octaves, str(dev), compile, tile, preset,
                                  precision, colour)  # fmt: skip
        ours, first, dreamer = run_dreamvid(schedule, frames, random_weights)
        objective = weighted(schedule.params(1).layers)
        shapes = octave_sizes(size[1], size[0], octaves, 1.4)  # FLOPs per step, summed over octaves
        ours["flops_per_step"] = step_flops(lambda x: _truncated_step(dreamer, x, objective), shapes, dev)
        dreamer.close()  # a clip input's stream and flow worker end here
        dreamer = None  # free its network before the baseline loads its own
        base = run_baseline(schedule, first, frames, dev, random_weights)
    peaks = {"fp32": practical_peak(dev)}
    if choice.name == "bf16":
        peaks["bf16"] = practical_peak(dev, torch.bfloat16)
    for r, peak in ((ours, peaks[choice.name]["peak"]), (base, peaks["fp32"]["peak"])):  # the baseline is fp32
        r["gflops_per_s"] = r["flops_per_step"] * iterations / (r["dream_ms_per_frame"] / 1000) / 1e9
        r["fraction_of_peak"] = r["gflops_per_s"] / peak
        r["encoder_share"] = r["encode_wait_ms_per_frame"] / r["ms_per_frame"]
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "cpu": cpu_features(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "settings": {"size": list(size), "layers": layers, "iterations": iterations, "frames": frames,
                     "octaves": octaves, "compile": dreamvid_compiled(schedule.compile, dev),
                     "precision": choice.name, "precision_requested": precision, "precision_why": choice.why,
                     "encoder": schedule.encoder.model_dump(), "colour": _colour_settings(schedule)},  # fmt: skip
        "peaks": peaks,  # GFLOP/s per precision: {"gemm", "conv", "peak", "source"}
        "peak_gflops_per_s": peaks[choice.name]["peak"],  # of dreamvid's precision
        "baseline": base,
        "dreamvid": ours,
        "speedup": base["ms_per_frame"] / ours["ms_per_frame"],
        "ceiling": base["ms_per_frame"] / ceiling_ms_per_frame(ours, iterations, peaks[choice.name]["peak"]),
    }


def _colour_settings(schedule) -> dict:
    """The colour control frame 1 renders with (the schedule's defaults unless ``--colour``)."""
    p = schedule.params(1)
    return {k: getattr(p, k) for k in ("colour", "colour_strength", "saturation_match", "input_blend", "smoothing",
                                       "clip_guard")}  # fmt: skip


def ceiling_ms_per_frame(ours: dict, iterations: int, peak_gflops: float) -> float:
    """dreamvid's frame with its dream step at the peak: the rest of the frame as measured,
    plus ``iterations`` steps of its FLOPs at ``peak_gflops``."""
    rest = ours["ms_per_frame"] - ours["dream_ms_per_frame"]
    return rest + iterations * ours["flops_per_step"] / (peak_gflops * 1e9) * 1000


def dreamvid_compiled(compile, device: torch.device) -> bool:
    return device.type == "cuda" if compile == "auto" else bool(compile)


def format_report(r: dict) -> str:
    """A few lines for the terminal."""
    s, cpu = r["settings"], r["cpu"]
    lines = [f"dreamvid bench: {r['device']} ({r['threads']} thread{'s' if r['threads'] != 1 else ''}), torch {r['torch']}, "
             f"{s['size'][0]}x{s['size'][1]}, {s['layers']}, {s['iterations']} iterations x {s['octaves']} octave(s), {s['frames']} frames, "
             f"{s['precision']} ({s['precision_why']}), compile {'on' if s['compile'] else 'off'}",
             f"CPU: {cpu['model']}, kernels {cpu['capability']}, flags {' '.join(cpu['flags']) or '-'}",
             f"{'':10} {'ms/frame':>9} {'dream ms':>9} {'GFLOP/step':>10} {'GFLOP/s':>8} {'of peak':>8} "
             f"{'peak mem':>9} {'enc wait':>8} {'enc CPU':>8} {'CPU ms':>8} {'warm-up':>8}"]  # fmt: skip
    for name in ("baseline", "dreamvid"):
        p = r[name]
        lines.append(f"{name:10} {p['ms_per_frame']:9.1f} {p['dream_ms_per_frame']:9.1f} "
                     f"{p['flops_per_step'] / 1e9:10.2f} {p['gflops_per_s']:8.1f} {p['fraction_of_peak']:8.0%} "
                     f"{p['peak_memory_bytes'] / 2**30:8.2f}G {p['encoder_share']:8.1%} "
                     f"{p['encoder_cpu_ms_per_frame']:6.0f}ms {p['process_cpu_ms_per_frame']:8.0f} "
                     f"{p['warmup_s']:7.1f}s")  # fmt: skip
    lines += _stage_lines(r["dreamvid"])
    peaks = "; ".join(f"{name} {p['peak']:.0f} GFLOP/s (gemm {p['gemm']:.0f}" + (f", conv {p['conv']:.0f})" if p["conv"] else ")")
                      for name, p in r["peaks"].items())  # fmt: skip
    lines.append(f"speedup: {r['speedup']:.2f}x per frame; ceiling {r['ceiling']:.2f}x with every dream FLOP at "
                 f"the practical {s['precision']} peak (peaks: {peaks})")
    return "\n".join(lines)


def _stage_lines(p: dict) -> list[str]:
    """dreamvid's frame by stage: ms per frame and share of the frame, largest first."""
    stages, total = p["stages_ms_per_frame"], p.get("stages_with_sync", p)["ms_per_frame"]
    cells = [f"{name} {ms:.1f} ({ms / total:.1%})" for name, ms in sorted(stages.items(), key=lambda kv: -kv[1])]
    cells.append(f"unaccounted {p['unaccounted_ms_per_frame']:.1f} ({p['unaccounted_ms_per_frame'] / total:.1%})")
    sync = " (a second render, synchronised at each stage)" if "stages_with_sync" in p else ""
    return [f"dreamvid's frame by stage{sync}, ms: " + ", ".join(cells),
            f"everything but the dream, per frame (without {' and '.join(PER_RENDER)}, paid once per render or part): "
            f"{p['rest_ms_per_frame']:.1f} ms, {p['rest_share']:.1%} of the frame (CPU time: "
            f"{p['rest_cpu_ms_per_frame']:.1f} ms, {p['rest_cpu_share']:.1%})"]
