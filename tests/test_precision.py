"""precision: auto | fp32 | bf16 — which precision each CPU gets, that bf16 keeps the look and
the fp32 image, and that checkpoints record the precision (a resume in another one warns).

The CPU is faked (its /proc/cpuinfo flags and the speed probe) so that every test runs the
same on AVX2-only, AVX512_BF16 and AMX machines; bf16 autocast itself runs on any CPU
(emulated where it is not native: slower, same numbers)."""

from dataclasses import replace

import pytest
import torch

from dreamvid.engine import precision
from dreamvid.engine.ascent import DreamSettings, dream
from dreamvid.engine.objectives import layer

from .conftest import run_here, write_schedule

CPU = torch.device("cpu")
AVX2 = ("fpu", "sse2", "avx", "avx2", "fma")
AVX512_BF16 = (*AVX2, "avx512f", "avx512_vnni", "avx512_bf16")


@pytest.fixture()
def fake_cpu(monkeypatch):
    """fake_cpu(flags, speedup): this CPU's flags and what the bf16 probe measures on it
    (None: the probe must not run)."""

    def fake(flags, speedup=None):
        monkeypatch.setattr(precision, "_cpuinfo", lambda: (frozenset(flags), "Fake CPU"))
        probed = []

        def probe(device):
            if speedup is None:
                raise AssertionError("the bf16 probe ran")
            probed.append(device)
            return speedup

        monkeypatch.setattr(precision, "probe_speedup", probe)
        precision._choose.cache_clear()
        return probed

    yield fake
    precision._choose.cache_clear()  # later tests see the real CPU again


def test_auto_is_fp32_on_a_cpu_without_bf16_instructions(fake_cpu):
    fake_cpu(AVX2)  # the probe is not even run
    choice = precision.choose("auto", CPU)
    assert choice.name == "fp32" and choice.amp_dtype is None and choice.warning is None
    assert precision.native_bf16(CPU) is False


@pytest.mark.parametrize("speedup, expected", [(1.9, "bf16"), (precision.MIN_SPEEDUP, "bf16"), (1.05, "fp32"),
                                               (0.55, "fp32")])  # fmt: skip
def test_auto_takes_bf16_where_native_and_measured_faster(fake_cpu, speedup, expected):
    """AVX512_BF16 is not enough: an Intel Xeon with it (no AMX) ran bf16 convolutions at half
    the fp32 speed (docs/performance.md), so auto follows the probe."""
    probed = fake_cpu(AVX512_BF16, speedup)
    choice = precision.choose("auto", CPU)
    assert choice.name == expected and f"{speedup:.2f}x" in choice.why
    precision.choose("auto", CPU)
    assert len(probed) == 1  # measured once per process


@pytest.mark.parametrize("flag", ["amx_bf16", "bf16"])  # AMX; Arm's BF16 (aarch64 "Features")
def test_other_bf16_instructions_count_as_native(fake_cpu, flag):
    fake_cpu(("sse2", flag), speedup=3.0)
    assert precision.native_bf16(CPU) and precision.choose("auto", CPU).name == "bf16"


def test_explicit_requests(fake_cpu):
    fake_cpu(AVX2)
    assert precision.choose("fp32", CPU).name == "fp32"
    no = precision.choose("bf16", CPU)
    assert no.name == "fp32" and "no bf16 arithmetic" in no.warning and "fp32" in no.warning
    fake_cpu(AVX512_BF16, speedup=0.5)  # native but slower: an explicit request is still honoured
    assert precision.choose("bf16", CPU) == precision.Choice("bf16", "requested")


def test_cpu_features_lists_what_the_bench_reports(fake_cpu):
    fake_cpu(AVX512_BF16)
    features = precision.cpu_features()
    assert features["flags"] == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]
    assert features["model"] == "Fake CPU" and features["capability"] == torch.backends.cpu.get_cpu_capability()


def test_the_real_probe_measures_a_ratio():
    speedup = precision.probe_speedup.__wrapped__(CPU, reps=1)  # uncached
    assert 0.05 < speedup < 50
    assert torch.get_num_threads() == 2  # conftest's count is restored after the one-thread probe


def test_dreamer_warns_when_bf16_is_not_native(fake_cpu, net, tmp_path):
    from dreamvid.rendering.step import Dreamer
    from dreamvid.schedule.schedule import load_schedule

    fake_cpu(AVX2)
    warnings = []
    d = Dreamer(load_schedule(write_schedule(tmp_path, precision="bf16")), net, on_warning=warnings.append)
    assert d.precision == "fp32" and d.amp_dtype is None
    assert len(warnings) == 1 and "no bf16 arithmetic" in warnings[0]


# bf16 autocast changes the network's rounding, not the algorithm. Dreamed from the same image
# with the same jitter (128x128, 3 steps of 0.02), bf16 pictures are nearer to fp32 than fp32
# is to itself with another jitter: mean |bf16 - fp32| / |fp32 - fp32 other jitter| was
# 0.47-0.67 over 4 skimage photos x 2 seeds; and bf16 raised the objective by 0.78-1.14x what
# fp32 did (fp32 alone varies 1.0-1.75x between jitters). Pixel for pixel they are not alike
# (the gradient's direction differs by a few degrees, and ascent amplifies it), which is why
# docs/performance.md compares the look of whole videos.
SEED_SHARE = 0.8
GAIN_SHARE = 0.6


def test_bf16_dreams_like_fp32_and_keeps_the_image_fp32(net, photo_tensor):
    x = photo_tensor.contiguous(memory_format=torch.channels_last)
    obj = layer("mixed3")
    s = DreamSettings(iterations=3, step=0.02, octaves=1, jitter=16)
    fp32 = dream(net, x, obj, s, torch.Generator().manual_seed(5))
    bf16 = dream(net, x, obj, replace(s, amp_dtype=torch.bfloat16), torch.Generator().manual_seed(5))
    other = dream(net, x, obj, s, torch.Generator().manual_seed(6))
    assert bf16.dtype == torch.float32 and net.blocks[0].conv.weight.dtype == torch.float32
    diff, jitter_diff = (fp32 - bf16).abs().mean().item(), (fp32 - other).abs().mean().item()
    assert 0 < diff < SEED_SHARE * jitter_diff  # bf16 did run, and stays nearer than another jitter
    with torch.no_grad():
        start, a, b = (obj(net(im, obj.layers)).item() for im in (x, fp32, bf16))
    assert a - start > 0.05 and b - start > GAIN_SHARE * (a - start)


def test_numerics_record_the_precision_and_a_resume_in_another_warns(fake_cpu, tmp_path):
    from dreamvid.engine.precision import choose as choose_precision
    from dreamvid.rendering.checkpoint import numerics
    from dreamvid.rendering.checkpoint import numerics_warning as _numerics_warning

    fake_cpu(AVX512_BF16, speedup=2.0)
    now = numerics(CPU, choose_precision("auto", CPU).name)
    assert now["precision"] == "bf16" and numerics(CPU, "fp32")["precision"] == "fp32"
    saved = {**now, "precision": "fp32"}
    warning = _numerics_warning(saved, now)
    assert "precision fp32 -> bf16" in warning and "precision: fp32 in the schedule" in warning
    # checkpoints written before the key existed: the CPU dreamed in fp32 then
    old = {k: v for k, v in now.items() if k != "precision"}
    assert _numerics_warning(old, {**now, "precision": "fp32"}) is None
    assert "precision fp32 -> bf16" in _numerics_warning(old, now)


def test_cli_precision_overrides_the_schedule_and_lands_in_the_checkpoint(tmp_path):
    """--precision bf16 on render: the checkpoint says what the frames were dreamed in (bf16
    where this CPU has it, else fp32 after a warning)."""
    from dreamvid.rendering import checkpoint as ckpt
    from dreamvid.rendering.workdir import list_checkpoints

    path = write_schedule(tmp_path, segments=[{"frames": 4, "layers": {"mixed0": 1.0}}], precision="fp32")
    r = run_here("render", path, "--frames", "4", "--keep-parts", "--quiet", "--precision", "bf16", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    saved = ckpt.load(list_checkpoints(tmp_path / "out" / "video.mp4.parts")[0])
    native = precision.native_bf16(CPU)
    assert saved.precision == ("bf16" if native else "fp32")
    assert ("no bf16 arithmetic" in r.stderr) == (not native)
    r = run_here("preview", path, "--frame", "1", "--precision", "fp16")
    assert r.returncode == 2 and "--precision" in r.stderr and "Traceback" not in r.stderr


def test_a_resume_keeps_the_precision_auto_chose_when_the_render_began(fake_cpu, tmp_path, net):
    """auto times a probe on a CPU with bf16 instructions; a later run could tip the other
    way, so a resume follows the checkpoint's precision (an explicit one is kept as asked)."""
    from dreamvid.rendering.checkpoint import Checkpoint
    from dreamvid.rendering.step import Dreamer
    from dreamvid.schedule.schedule import load_schedule

    saved_in_bf16 = Checkpoint(3, torch.zeros(1, 3, 8, 8), (), (), {}, [], {"device": "cpu", "precision": "bf16"})
    fake_cpu(AVX512_BF16, speedup=0.5)  # this run, auto would choose fp32
    s = load_schedule(write_schedule(tmp_path, precision="auto"))
    dreamer = Dreamer(s, net)
    assert dreamer.precision == "fp32"
    dreamer.continue_from(saved_in_bf16)
    assert dreamer.precision == "bf16" and dreamer.amp_dtype == torch.bfloat16
    fixed = Dreamer(replace(s, precision="fp32"), net)
    fixed.continue_from(saved_in_bf16)
    assert fixed.precision == "fp32" and fixed.amp_dtype is None
