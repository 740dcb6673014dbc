"""`dreamvid bench` runs and reports, and its baseline is the same algorithm as dreamvid's path.

No timing is asserted here (speed goals live in the benchmark, docs/performance.md).
"""

import json

import pytest
import torch

from dreamvid.engine.ascent import DreamSettings, dream
from dreamvid.engine.model import load_model
from dreamvid.pixels.camera import move
from dreamvid.tools import baseline as _baseline

from .conftest import run_cli


def test_bench_cli_json(tmp_path):
    r = run_cli("bench", "--device", "cpu", "--size", "96x96", "--iterations", "1", "--frames", "2", "--json",
                cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["settings"]["size"] == [96, 96] and out["settings"]["compile"] is False
    for name in ("baseline", "dreamvid"):
        path = out[name]
        assert path["frame_shape"] == [1, 3, 96, 96]
        assert path["ms_per_frame"] > 0 and path["peak_memory_bytes"] > 0
        assert 0 <= path["encoder_share"] <= 1
    # the baseline runs the whole network, dreamvid stops at mixed3: fewer FLOPs per step
    assert 0 < out["dreamvid"]["flops_per_step"] < out["baseline"]["flops_per_step"]
    assert out["speedup"] == pytest.approx(out["baseline"]["ms_per_frame"] / out["dreamvid"]["ms_per_frame"])
    fp32 = out["peaks"]["fp32"]
    assert fp32["gemm"] > 0 and fp32["conv"] > 0 and fp32["peak"] == max(fp32["gemm"], fp32["conv"])
    precision = out["settings"]["precision"]  # auto: what this CPU gets (docs/performance.md)
    assert precision in ("fp32", "bf16") and out["peak_gflops_per_s"] == out["peaks"][precision]["peak"]
    assert out["cpu"]["capability"] and isinstance(out["cpu"]["flags"], list)
    # the ceiling idealises only dreamvid's dream step, so it bounds the measured speedup from above
    assert out["ceiling"] > out["speedup"]
    assert list(tmp_path.iterdir()) == []  # videos went to a temp folder, now removed


def test_bench_bf16_reports_the_bf16_peak_and_its_ceiling(tmp_path):
    """--precision bf16: dreamvid's step runs in bf16 (where the CPU has it; else fp32, said so),
    its fraction of peak and ceiling use the peak of that precision, the baseline's stay fp32."""
    r = run_cli("bench", "--device", "cpu", "--size", "96x96", "--iterations", "1", "--frames", "1", "--json",
                "--precision", "bf16", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    s = out["settings"]
    assert s["precision_requested"] == "bf16" and s["precision"] in ("bf16", "fp32")
    peak = out["peaks"][s["precision"]]["peak"]
    assert out["peak_gflops_per_s"] == peak > 0
    assert out["dreamvid"]["fraction_of_peak"] == pytest.approx(out["dreamvid"]["gflops_per_s"] / peak)
    assert out["baseline"]["fraction_of_peak"] == pytest.approx(out["baseline"]["gflops_per_s"] / out["peaks"]["fp32"]["peak"])
    assert out["ceiling"] > out["speedup"]


def test_bench_rejects_tiny_size():
    r = run_cli("bench", "--size", "64x64")
    assert r.returncode == 2 and "--size 64x64" in r.stderr and "Traceback" not in r.stderr


# Same input, same jitter: the dream of the plain loop (NCHW, full network, two rolls per
# step) and dreamvid's (channels_last, truncated, one roll per step) differ only by float
# rounding in the convolutions. Measured at 128x128, 3 steps of 0.02: mean |diff| 4e-5
# against a mean change of 0.034; the largest pixel differs by 0.009 (a ReLU that flips on
# a rounding difference moves a few pixels by up to a step), hence the looser max bound.
DREAM_MEAN_TOL, DREAM_MAX_TOL = 1e-3, 0.05
# Zoom: cv2.warpAffine (float32) and grid_sample agree to 1.2e-5 on these moves (measured).
ZOOM_TOL = 1e-4


def test_baseline_dreams_like_dreamvid(net, photo_tensor):
    s = DreamSettings(iterations=3, step=0.02, octaves=1, jitter=16)
    a = _baseline.dream(net, photo_tensor, _objective(), s, torch.Generator().manual_seed(5))
    fast = load_model().to(memory_format=torch.channels_last)
    x = photo_tensor.contiguous(memory_format=torch.channels_last)
    b = dream(fast, x, _objective(), s, torch.Generator().manual_seed(5))
    change = (b - photo_tensor).abs().mean().item()
    assert change > 0.01  # both dreamed
    assert (a - b).abs().mean().item() < min(DREAM_MEAN_TOL, 0.05 * change)
    assert (a - b).abs().max().item() < DREAM_MAX_TOL


@pytest.mark.parametrize("zoom, rotate, translate", [(1.02, 0, (0, 0)), (1.05, 3, (2.5, -1)), (0.97, -2, (0, 0))])
def test_baseline_zoom_matches_camera(photo_tensor, zoom, rotate, translate):
    a = _baseline.zoom(photo_tensor, zoom, rotate, translate)
    b = move(photo_tensor, zoom, rotate, translate)
    assert (b - photo_tensor).abs().mean() > 1e-3  # it moved
    assert (a - b).abs().max().item() < ZOOM_TOL


def _objective():
    from dreamvid.engine.objectives import layer

    return layer("mixed3")


@pytest.mark.parametrize("cin, cout, size, pad", [(8, 16, 23, 0), (5, 7, 30, 1), (16, 4, 9, 1)])
def test_winograd_in_bench_is_the_same_convolution(cin, cout, size, pad):
    """bench/convs.py times Winograd F(4x4, 3x3) against oneDNN's convolution (docs/performance.md):
    it must compute the same thing, including sizes that are not a multiple of the 4x4 tile."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("convs", Path(__file__).parents[1] / "bench" / "convs.py")
    convs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convs)
    g = torch.Generator().manual_seed(cin)
    x = torch.randn(1, cin, size, size + 3, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(cout, cin, 3, 3, generator=g)
    ref = torch.nn.functional.conv2d(x, w, padding=pad)
    out = convs.winograd_conv(x, convs.winograd_filter(w), pad)
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() < 1e-4 * ref.abs().max().item()


def test_bench_measures_dreamvid_through_the_renders_frame_source(tmp_path, monkeypatch):
    """``dreamvid bench`` renders with render() itself, which gets its frames through
    FrameSource (on CUDA the host copy overlaps the next dream), so it measures that overlap."""
    from dreamvid.rendering.framesource import FrameSource
    from dreamvid.tools import bench

    asked, real = [], FrameSource.get
    monkeypatch.setattr(FrameSource, "get", lambda self, n, previous: asked.append(n) or real(self, n, previous))
    schedule = bench.bench_schedule(tmp_path, (96, 96), "mixed3", 1, 2, 1, "cpu", False)
    result, _, _ = bench.run_dreamvid(schedule, 2, random_weights=True)
    assert asked == [0, 1, 2, 3] and result["frame_shape"] == [1, 3, 96, 96]


# Stages every default frame of an image or noise input goes through (a mask, a clip's flow and the
# blends are off by default; the peek is written at most every 2 s)
FRAME_STAGES = {"camera", "dream", "colour_match", "saturation_match", "blend", "clip_guard", "to_uint8", "encoder",
                "frame_file", "checkpoint", "finish"}  # fmt: skip


def test_bench_stages_add_up_to_the_frame(tmp_path):
    """The frame by stage, with the schedule's default colour control: every stage of a default
    frame is there, and together they are the frame's time within 10 %."""
    from dreamvid.tools import bench

    schedule = bench.bench_schedule(tmp_path, (96, 96), "mixed3", 1, 3, 1, "cpu", False)
    assert schedule.params(1).colour == "histogram" and schedule.params(1).saturation_match > 0  # the defaults
    result, _, _ = bench.run_dreamvid(schedule, 3, random_weights=True)
    stages = result["stages_ms_per_frame"]
    assert FRAME_STAGES <= set(stages) and all(ms >= 0 for ms in stages.values())
    assert stages["dream"] > 0 and stages["colour_match"] > 0
    total = result["ms_per_frame"]
    assert sum(stages.values()) == pytest.approx(total, rel=0.10)
    assert result["unaccounted_ms_per_frame"] == pytest.approx(total - sum(stages.values()))
    assert result["dream_ms_per_frame"] == stages["dream"]
    cpu = result["stages_cpu_ms_per_frame"]  # this process's CPU time per stage, the same stages
    assert set(cpu) == set(stages) and cpu["dream"] > 0
    assert 0 < result["rest_share"] < 1 and 0 < result["rest_cpu_share"] < 1


def test_stages_are_timed_only_inside_a_timer():
    """Without a timer a stage is a no-op (it never calls a device's sync); with one, each stage
    name sums its time and syncs at its start and end; a timer covers its own thread only."""
    import threading

    from dreamvid.core.stages import StageTimer, stage, timing

    syncs, ticks = [], iter(range(100))
    timer = StageTimer(sync=lambda: syncs.append(1), clock=lambda: float(next(ticks)))
    with stage("dream"):
        pass
    assert syncs == [] and timer.seconds == {}
    with timing(timer):
        for _ in range(2):
            with stage("dream"):
                pass
        other = threading.Thread(target=lambda: stage("camera").__enter__())
        other.start()
        other.join()
    with stage("dream"):
        pass
    assert timer.seconds == {"dream": 2.0} and set(timer.cpu_seconds) == {"dream"} and len(syncs) == 4
    with timing(timer):  # clock 4: a reference dreamed again inside its stage counts as dream
        with stage("colour_reference"):  # 4 .. 9
            with stage("dream"):  # 5 .. 8
                next(ticks), next(ticks)
    assert timer.seconds == {"dream": 5.0, "colour_reference": 2.0}
