"""What a video input adds to a frame's time, through the renderer: the flow and the start image.

For each size, a panned-photo clip is made and dreamed with the renderer's Dreamer (the demo's
dream settings: 4 iterations, 2 octaves, mixed3; flow dis, the defaults otherwise). Per frame it
times the whole frame (``Dreamer.next_frame``), the start image (``VideoStart.start``: reading
the source frame, the flow both ways, occlusion and match checks, warp, blend) and, within it,
the flow calls alone. Wall and CPU seconds of this process (on a shared machine the wall time
measures the other processes too).

    nice python3 bench/video_cost.py [--frames 4] [--sizes 256x144 1280x720]

``--ahead REPS``: instead, the whole frame with the flow computed in line and one frame ahead
in a thread (:class:`dreamvid.rendering.video_input.FlowAhead`, on by default on CUDA only),
alternating REPS times per size, and how long the frame waited in the start image each way.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamvid.core import defaults as D  # noqa: E402
from dreamvid.rendering import step as R  # noqa: E402
from dreamvid.rendering.loop import load_network  # noqa: E402
from dreamvid.schedule.schedule import parse_schedule  # noqa: E402
from tests.conftest import pan_clip  # noqa: E402


class Clock:
    def __init__(self):
        self.wall = self.cpu = 0.0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            t, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall += time.perf_counter() - t
                self.cpu += time.process_time() - c

        return timed


def measure(size: tuple[int, int], frames: int, net, folder: Path, ahead: bool | None = None) -> dict:
    clip = folder / f"pan{size[0]}.mp4"
    if not clip.exists():
        pan_clip(clip, frames=frames + 1, size=size, speed=max(1, size[0] // 64))
    if ahead is not None:  # else the device's default
        D.FLOW_AHEAD_DEVICES = ("cpu", "cuda") if ahead else ()
    s = parse_schedule({"input": clip.name, "size": list(size), "precision": "fp32",
                        "defaults": {"iterations": 4, "step": 0.008, "octaves": 2, "jitter": 16},
                        "segments": [{"frames": frames + 1, "layers": {"mixed3": 1.0}}]}, source=folder / "s.yaml")
    d = R.Dreamer(s, net)
    frame = d.first_frame()
    start, flow = Clock(), Clock()
    d.video.start = start.wrap(d.video.start)
    d.video._flow("dis")
    d.video._flows["dis"] = flow.wrap(d.video._flows["dis"])
    t, c = time.perf_counter(), time.process_time()
    for n in range(1, frames + 1):
        frame = d.next_frame(frame, n)
    total = {"wall": (time.perf_counter() - t) / frames, "cpu": (time.process_time() - c) / frames}
    d.close()
    return {"frame": total, "start": {"wall": start.wall / frames, "cpu": start.cpu / frames},
            "flow": {"wall": flow.wall / frames, "cpu": flow.cpu / frames}}


def compare_ahead(size: tuple[int, int], frames: int, reps: int, net, folder: Path) -> None:
    """In line and ahead, alternating: per-frame wall and CPU seconds, and the wait in the start image."""
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for rep in range(reps):
        for ahead in (False, True) if rep % 2 == 0 else (True, False):
            r = measure(size, frames, net, folder, ahead)
            runs[ahead].append(r)
            print(f"{size[0]}x{size[1]} {'ahead ' if ahead else 'inline'}: frame {r['frame']['wall']:.3f} s wall, "
                  f"{r['frame']['cpu']:.3f} s CPU, start image {r['start']['wall'] * 1e3:.0f} ms wall, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    mean = {a: {k: sum(r["frame"][k] for r in rs) / len(rs) for k in ("wall", "cpu")} for a, rs in runs.items()}
    wait = {a: sum(r["start"]["wall"] for r in rs) / len(rs) for a, rs in runs.items()}
    print(f"{size[0]}x{size[1]}: ahead / inline per frame: wall {mean[True]['wall'] / mean[False]['wall']:.3f}, "
          f"CPU {mean[True]['cpu'] / mean[False]['cpu']:.3f}; start-image wait {wait[False] * 1e3:.0f} ms inline, "
          f"{wait[True] * 1e3:.0f} ms ahead", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--sizes", nargs="+", default=["256x144", "1280x720"])
    ap.add_argument("--ahead", type=int, metavar="REPS", help="compare the flow in line and ahead, REPS times each")
    args = ap.parse_args()
    torch.set_num_threads(2)
    net = load_network(parse_schedule({"input": "noise", "segments": [{"frames": 1, "layers": {"mixed3": 1}}]},
                                        source="s.yaml"), "cpu")
    print(f"threads {torch.get_num_threads()}, load {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for text in args.sizes:
            size = tuple(int(v) for v in text.split("x"))
            if args.ahead:
                compare_ahead(size, args.frames, args.ahead, net, Path(tmp))
                continue
            r = measure(size, args.frames, net, Path(tmp))
            f, st, fl = r["frame"], r["start"], r["flow"]
            print(f"{text}: frame {f['wall']:.3f} s wall, {f['cpu']:.3f} s CPU; start image {st['wall'] * 1e3:.0f} ms "
                  f"wall, {st['cpu'] * 1e3:.0f} ms CPU ({st['cpu'] / f['cpu']:.1%} of the frame's CPU); flow (DIS, both "
                  f"ways) {fl['wall'] * 1e3:.0f} ms wall, {fl['cpu'] * 1e3:.0f} ms CPU ({fl['cpu'] / f['cpu']:.1%})",
                  flush=True)
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
