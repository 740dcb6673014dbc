"""What ``cadence: k`` costs and how it looks (docs/performance.md#cadence, docs/quality.md#cadence).

speed: the demo schedule (schedules/demo.yaml: 256x144, 4 iterations, 2 octaves, mixed0 ->
mixed3 -> mixed4 with transitions), its segments shortened to ``--frames`` frames each
(transitions scaled alike), rendered whole (``dreamvid.render``: dream, crossfades, encoding) at
each k in one process, in the order given (``--order 1 2 3 4 1`` repeats k = 1 at the end to see
the machine's drift). CPU seconds (this process's threads and its ffmpeg children) and wall
seconds per video frame, and their ratio to k = 1: on a shared machine the CPU seconds are the
steadier figure.

look: the demo's dream settings (mixed3, 4 iterations, 2 octaves, zoom 1.03) on a photo
(skimage's astronaut), the flat logo (schedules/logo.png) and noise, ``--look-frames`` frames at
``--look-size``, at each k. Per k: the warp error of the frames (``dreamvid stats --schedule``'s,
:func:`dreamvid.tools.warp_error.warp_errors`, on the uint8 frames before encoding) and the dream
strength: over the dreamed frames b > 0, the mean |frame b - its start| in 8-bit levels, the
start being the dreamed frame before it carried by the camera to b (what the dream and its colour
control added). With ``--sheet DIR`` a contact sheet per input (frames 0, 5, 10, ... at each k).

    nice python3 bench/cadence.py speed [--frames 12] [--order 1 2 3 4 1]
    nice python3 bench/cadence.py look [--look-frames 24] [--look-size 160x96] [--sheet out/]
    python3 bench/cadence.py warps
    nice python3 bench/cadence.py keep [--look-frames 16] [--look-size 128x80]

warps: one composed warp against k successive ones, on the photo at 256x256 under the demo's
camera (zoom 1.03, rotate 0.5 degrees a frame): the sharpness of each (the variance of the
Laplacian of the grey image: higher is sharper) and each one's mean squared difference to the
same move sampled from the photo at 4x the size and averaged down (the reference).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dreamvid  # noqa: E402
from dreamvid.engine.model import load_model  # noqa: E402
from dreamvid.pixels.images import to_uint8  # noqa: E402
from dreamvid.rendering.cadence import Cadenced  # noqa: E402
from dreamvid.rendering.step import Dreamer  # noqa: E402
from dreamvid.schedule.cadence import dreamed_frames  # noqa: E402
from dreamvid.schedule.schedule import parse_schedule  # noqa: E402
from dreamvid.tools.warp_error import warp_errors  # noqa: E402

DEMO = ROOT / "schedules" / "demo.yaml"


def demo_data(frames: int, k: int, output: Path) -> dict:
    """The demo schedule with segments of ``frames`` frames (transitions scaled) at cadence ``k``."""
    data = yaml.safe_load(DEMO.read_text())
    data["input"], data["output"] = str(DEMO.parent / data["input"]), str(output)
    data["device"], data["precision"] = "cpu", "fp32"
    data["defaults"]["cadence"] = k
    for seg in data["segments"]:
        seg["transition"] = round(seg.get("transition", 0) * frames / seg["frames"])
        if isinstance(seg.get("rotate"), dict):  # its last keyframe at the segment's new end
            seg["rotate"] = {0: seg["rotate"][0], frames - 1: seg["rotate"][29]}
        seg["frames"] = frames
    return data


def speed(args, net) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.order:
            data = demo_data(args.frames, k, Path(tmp) / f"k{k}.mp4")
            s = parse_schedule(data, source=DEMO)
            t, c = time.perf_counter(), cpu_seconds()
            dreamvid.render(s, model=net, fresh=True, progress=False)
            wall, cpu = time.perf_counter() - t, cpu_seconds() - c
            rows.append((k, s.total_frames, len(dreamed_frames(s)) - 1, wall, cpu))
            print(f"k={k}: {s.total_frames} frames, {rows[-1][2]} dreamed, {wall:.1f} s wall, {cpu:.1f} s CPU",
                  flush=True)  # fmt: skip
    wall1 = np.mean([row[3] for row in rows if row[0] == 1])
    cpu1 = np.mean([row[4] for row in rows if row[0] == 1])
    print("\n| cadence | frames | dreamed | CPU s per frame | ratio to k=1 (CPU) | wall s per frame | ratio to k=1 "
          "(wall) |\n|---|---|---|---|---|---|---|")
    for k, total, dreams, wall, cpu in rows:
        print(f"| {k} | {total} | {dreams} | {cpu / total:.2f} | {cpu / cpu1:.2f} | {wall / total:.2f} | "
              f"{wall / wall1:.2f} |")


def cpu_seconds() -> float:
    """CPU seconds of this process (all its threads) and of its waited-for children (ffmpeg)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def inputs(size: tuple[int, int], folder: Path) -> dict[str, str]:
    import cv2
    import skimage.data

    photo = folder / "photo.png"
    cv2.imwrite(str(photo), skimage.data.astronaut()[:, :, ::-1])
    return {"photo": str(photo), "logo": str(DEMO.parent / "logo.png"), "noise": "noise"}


def look_data(source: str, frames: int, size: tuple[int, int], k: int, iterations: int = 4) -> dict:
    return {"input": source, "size": list(size), "fps": 15, "seed": 0, "precision": "fp32", "device": "cpu",
            "defaults": {"iterations": iterations, "step": 0.008, "octaves": 2, "jitter": 16, "zoom": 1.03,
                         "cadence": k},
            "segments": [{"frames": frames, "layers": {"mixed3": 1.0}}]}  # fmt: skip


def strength_and_frames(s, net) -> tuple[float, list[np.ndarray]]:
    """The dream strength (module doc) and the uint8 frames."""
    dreamer = Dreamer(s, net)
    made, state, frames, strengths = Cadenced(dreamer), None, [], []
    try:
        for n in range(s.total_frames):
            before = state
            state = made.make(n, state)
            frames.append(to_uint8(state.frame).numpy())
            if n > 0 and state.dreamed == n:
                start = dreamer.motion.carried(before.dream, before.dreamed, n) if before.dreamed < n - 1 \
                    else dreamer.motion.start(before.dream, n, s.params(n))[0]
                strengths.append(float((state.frame - start).abs().mean()) * 255)
    finally:
        dreamer.close()
    return float(np.mean(strengths)), frames


def look(args, net) -> None:
    size = tuple(int(v) for v in args.look_size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        sources = inputs(size, Path(tmp))
        print("| input | cadence | warp error (x1e-3) | dream strength (levels) |\n|---|---|---|---|")
        for name, source in sources.items():
            sheet = []
            for k in args.ks:
                s = parse_schedule(look_data(source, args.look_frames, size, k), source=Path(tmp) / "s.yaml")
                strength, frames = strength_and_frames(s, net)
                error = float(np.mean(warp_errors(frames, s)[1:]))
                print(f"| {name} | {k} | {error * 1e3:.2f} | {strength:.1f} |", flush=True)
                sheet.append(np.concatenate(frames[::5], axis=1))
            if args.sheet:
                import cv2

                Path(args.sheet).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(Path(args.sheet) / f"cadence-{name}.jpg"), np.concatenate(sheet, axis=0)[:, :, ::-1],
                            [cv2.IMWRITE_JPEG_QUALITY, 88])  # fmt: skip


def warps(args, net) -> None:
    import cv2
    import skimage.data

    from dreamvid.pixels.camera import affine_theta, homogeneous, move, warp

    big = skimage.data.astronaut().astype(np.float32) / 255.0
    small = cv2.resize(big, (256, 256), interpolation=cv2.INTER_AREA)
    image = torch.from_numpy(small).permute(2, 0, 1)[None].contiguous()
    large = torch.from_numpy(cv2.resize(big, (1024, 1024), interpolation=cv2.INTER_CUBIC)).permute(2, 0, 1)[None]

    def sharpness(x: torch.Tensor) -> float:
        grey = x[0].mean(0).numpy().astype(np.float64)
        return float(cv2.Laplacian(grey, cv2.CV_64F).var())

    print("| frames moved | successive: sharpness | one warp: sharpness | successive: MSE to reference | "
          "one warp: MSE to reference |\n|---|---|---|---|---|")
    for k in (1, 2, 3, 4):
        successive = image
        for _ in range(k):
            successive = move(successive, 1.03, 0.5)
        matrix = torch.eye(3, dtype=torch.float64)
        for _ in range(k):
            matrix = matrix @ homogeneous(affine_theta((256, 256), 1.03, 0.5, (0.0, 0.0)))
        once = warp(image, matrix)[0]
        reference = torch.nn.functional.avg_pool2d(warp(large, matrix)[0], 4)
        mse = [float(((x - reference) ** 2).mean()) for x in (successive, once)]
        print(f"| {k} | {sharpness(successive):.4f} | {sharpness(once):.4f} | {mse[0]:.2e} | {mse[1]:.2e} |")


def keep(args, net) -> None:
    """The photo at k = 1 with 4 iterations against k = 3 with 4, 8 and 12: warp error, dream
    strength per dreamed frame, and per video frame (times the share of frames dreamed)."""
    size = tuple(int(v) for v in args.look_size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        photo = inputs(size, Path(tmp))["photo"]
        print("| cadence | iterations | warp error (x1e-3) | strength per dreamed frame | per video frame |\n"
              "|---|---|---|---|---|")
        for k, iterations in ((1, 4), (3, 4), (3, 8), (3, 12)):
            s = parse_schedule(look_data(photo, args.look_frames, size, k, iterations), source=Path(tmp) / "s.yaml")
            strength, frames = strength_and_frames(s, net)
            error = float(np.mean(warp_errors(frames, s)[1:]))
            share = (len(dreamed_frames(s)) - 1) / (s.total_frames - 1)
            print(f"| {k} | {iterations} | {error * 1e3:.2f} | {strength:.1f} | {strength * share:.1f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["speed", "look", "warps", "keep"])
    p.add_argument("--frames", type=int, default=12, help="frames per demo segment (speed)")
    p.add_argument("--order", type=int, nargs="+", default=[1, 2, 3, 4, 1], help="cadences, in this order (speed)")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 4], help="cadences (look)")
    p.add_argument("--look-frames", type=int, default=24)
    p.add_argument("--look-size", default="160x96")
    p.add_argument("--sheet", default=None, help="folder for the contact sheets (look)")
    args = p.parse_args()
    torch.manual_seed(0)
    net = load_model("inception_v3")
    print(f"torch threads {torch.get_num_threads()}", flush=True)
    {"speed": speed, "look": look, "warps": warps, "keep": keep}[args.what](args, net)


if __name__ == "__main__":
    main()
