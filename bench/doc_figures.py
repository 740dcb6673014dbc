"""The time figures that README.md quotes, measured by running the README's own commands.

Each command runs as a user runs it (a fresh ``dreamvid`` process: Python start, torch import,
network load and the work itself), from the repository root, with its output in a temp folder.
It prints, per command, the wall seconds and the CPU seconds (user + system of the process and
its children, ffmpeg included), the best and the median of ``--repeat`` runs, then the CPU model,
the flags that matter to dreamvid (avx2, avx512_bf16, amx_bf16), the core count and the load
average (on a shared machine the wall time measures the other jobs too).

    nice python3 bench/doc_figures.py [--repeat 3] [--only demo gallery] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ("avx2", "avx512_bf16", "amx_bf16")

# name -> the README's command (the output redirected into the temp folder OUT)
COMMANDS = {
    "demo": "dreamvid render schedules/demo.yaml -o {out}/demo.mp4 --fresh --quiet",
    "gallery": "dreamvid gallery --image schedules/logo.png -o {out}/gallery.png",
}


def cpu_description() -> str:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    have = [f for f in FLAGS if f in flags] or ["none of " + ", ".join(FLAGS)]
    return f"{model}, {os.cpu_count()} cores, flags: {' '.join(have)}"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(command: str, threads: int | None) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``command`` (a shell line) from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    with tempfile.TemporaryDirectory() as out:
        cpu, wall = children_cpu(), time.perf_counter()
        subprocess.run(command.format(out=out), shell=True, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        return time.perf_counter() - wall, children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=sorted(COMMANDS), default=sorted(COMMANDS))
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the command: on a loaded machine, "
                        "--threads 1 keeps idle threads from spinning, so the CPU seconds measure the work")
    args = parser.parse_args()
    print(cpu_description(), flush=True)
    for name in args.only:
        load = os.getloadavg()[0]
        runs = [run_once(COMMANDS[name], args.threads) for _ in range(args.repeat)]
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"{name}: wall {min(walls):.1f} s best, {statistics.median(walls):.1f} s median; "
              f"CPU {min(cpus):.1f} s best, {statistics.median(cpus):.1f} s median ({args.repeat} runs; "
              f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after; "
              f"threads: {args.threads or 'torch default'})")
        print(f"  {COMMANDS[name].format(out='OUT')}", flush=True)


if __name__ == "__main__":
    main()
