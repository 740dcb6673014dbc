"""The arithmetic precision of the dream step: fp32, or bf16 autocast where it is faster.

Under bf16 autocast the network's convolutions run in bf16; the image, its update and the
loss stay fp32 (:func:`dreamvid.engine.ascent.gradient`). ``precision`` in a schedule (and
``--precision``) is ``auto``, ``fp32`` or ``bf16``:

- ``auto`` on CUDA: bf16 where the card has bf16 arithmetic (compute capability 8 and later);
- ``auto`` on a CPU: bf16 where the CPU has bf16 instructions (AVX512_BF16, AMX-BF16, or
  Arm's BF16) *and* a short probe (one convolution of the network, forward and input
  gradient, a few times each way) finds bf16 at least :data:`MIN_SPEEDUP` times faster.
  Having the instructions is not enough: an Intel Xeon with AVX512_BF16 but no AMX ran
  this convolution at half its fp32 speed, where an AMD EPYC with AVX512_BF16 ran the step
  1.5-2x faster (docs/performance.md). Elsewhere (AVX2-only CPUs) auto is fp32, unprobed.
- ``bf16`` where the hardware has no bf16 arithmetic: a warning, and fp32 (emulated bf16
  runs slower than fp32 and a schedule should render on any machine of a batch);
- ``fp32``: always fp32.

The choice is made once per process and device (the probe's result is cached), so a
render, its checkpoints and a batch worker's later videos agree on it.
"""

from __future__ import annotations

import functools
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dreamvid.core.defaults import PRECISIONS

MIN_SPEEDUP = 1.15  # the probe's fp32/bf16 time ratio from which auto picks bf16 on a CPU
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # /proc/cpuinfo: x86 AVX-512 and AMX, Arm (aarch64)
SHOWN_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
               "asimd", "sve", "bf16")  # what `dreamvid bench` reports


@dataclass(frozen=True)
class Choice:
    name: str  # "fp32" or "bf16": what the step runs in
    why: str  # one phrase: how auto decided, for the bench and the docs
    warning: str | None = None  # for a request the hardware cannot honour

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype of the forward (None: fp32, no autocast)."""
        return torch.bfloat16 if self.name == "bf16" else None


def cpu_features() -> dict:
    """What this CPU offers: torch's kernel level, the relevant /proc/cpuinfo flags, its name."""
    flags, model = _cpuinfo()
    return {"capability": torch.backends.cpu.get_cpu_capability(), "model": model or platform.processor(),
            "flags": [f for f in SHOWN_FLAGS if f in flags]}  # fmt: skip


@functools.cache
def _cpuinfo() -> tuple[frozenset[str], str]:
    """(flags, model name) of the first CPU in /proc/cpuinfo (Linux; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset(), ""
    flags, model = set(), ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("flags", "Features") and not flags:  # x86, aarch64
            flags = set(value.split())
        elif key == "model name" and not model:
            model = value.strip()
    return frozenset(flags), model


def native_bf16(device: torch.device) -> bool:
    """bf16 arithmetic in hardware. CUDA: compute capability 8 (Ampere) and later; older
    cards only emulate it, slower than fp32 (``torch.cuda.is_bf16_supported()`` counts
    emulation too). CPU: the bf16 instructions :data:`BF16_FLAGS` (oneDNN's own check,
    ``torch.ops.mkldnn._is_mkldnn_bf16_supported``, is true on any AVX-512 CPU, emulating)."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        flags, _ = _cpuinfo()
        return any(f in flags for f in BF16_FLAGS)
    return False


def choose(requested: str, device: torch.device) -> Choice:
    """The precision to dream in on ``device`` for ``requested`` (auto, fp32 or bf16)."""
    return _choose(requested, torch.device(device))


@functools.cache
def _choose(requested: str, device: torch.device) -> Choice:
    if requested not in PRECISIONS:
        raise ValueError(f"precision {requested!r}; expected one of {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return Choice("fp32", "requested")
    native = native_bf16(device)
    if requested == "bf16":
        if native:
            return Choice("bf16", "requested")
        what = "this GPU has" if device.type == "cuda" else "this CPU has"
        return Choice("fp32", "bf16 requested, not native", f"precision bf16: {what} no bf16 arithmetic "
                      "(it would only be emulated, slower than fp32); dreaming in fp32")  # fmt: skip
    if not native:
        return Choice("fp32", "auto: no bf16 arithmetic")
    if device.type == "cuda":
        return Choice("bf16", "auto: native bf16")
    speedup = probe_speedup(device)
    verdict = "bf16" if speedup >= MIN_SPEEDUP else "fp32"
    return Choice(verdict, f"auto: bf16 probe {speedup:.2f}x fp32")


@functools.cache
def probe_speedup(device: torch.device, reps: int = 3) -> float:
    """fp32 time / bf16 time of one of the network's convolutions, forward and input gradient
    (the step's work), as the dream step runs it: channels_last, under autocast. The best of
    ``reps`` runs each way, interleaved, after a warm-up, on one thread (the ratio per core;
    with all threads, on a busy machine every op would wait for a descheduled thread): about
    0.1 s on a CPU core."""
    conv = torch.nn.Conv2d(80, 192, 3).to(device, memory_format=torch.channels_last).requires_grad_(False)
    x = torch.rand(1, 80, 62, 62, device=device).contiguous(memory_format=torch.channels_last)

    def step(dtype) -> None:
        xi = x.detach().requires_grad_(True)
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            y = conv(xi)
        torch.autograd.grad(y.float().square().mean(), xi)

    best = {None: float("inf"), torch.bfloat16: float("inf")}
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        for dtype in best:
            step(dtype)  # warm-up: oneDNN picks and JITs its kernels
        for _ in range(reps):
            for dtype in best:
                t = time.perf_counter()
                step(dtype)
                best[dtype] = min(best[dtype], time.perf_counter() - t)
    finally:
        torch.set_num_threads(threads)
    return best[None] / best[torch.bfloat16]
