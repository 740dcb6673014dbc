"""Does a long zoom keep its colours? Render a CPU-sized logo zoom with and without colour control.

Derives a 300-frame schedule from schedules/logo-1080p.yaml (same layers, zooms, rotation
and transitions, with segment frames and keyframes scaled from 150 to 60 per segment, a
smaller frame and fewer steps), renders it once per variant (the variant's keys override
``defaults``) and measures each video with ``dreamvid.stats``. Writes, per variant,
``out/quality/<name>.mp4`` and ``<name>.json``, then a markdown table on stdout and the
plots ``docs/quality-options.png``, ``docs/quality-defaults.png`` and the frame strip
``docs/quality-frames.png`` (results: docs/quality.md).

    python3 bench/quality.py                      # every variant (1-3 min each on 2 cores)
    python3 bench/quality.py plain default        # some of them
    python3 bench/quality.py --table              # only the table and plots from saved JSON
    python3 bench/quality.py --size 160x90 --iterations 3 plain default   # a check at another size
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamvid import stats as S  # noqa: E402
from dreamvid.encode import iter_frames  # noqa: E402
from dreamvid.renderer import render  # noqa: E402
from dreamvid.schedule import parse_schedule  # noqa: E402

OUT = ROOT / "out" / "quality"
SIZE, FRAMES_PER_SEGMENT = (128, 72), 60  # CPU-sized (one octave: below dream.MIN_OCTAVE_SIDE)
ITERATIONS = 2  # per frame
NEUTRAL = {"colour": "none", "colour_strength": 0.0, "input_blend": 0.0, "smoothing": 0.0, "clip_guard": 0.0}

VARIANTS = {  # name -> keys over NEUTRAL ("default": the schedule defaults as shipped), in run order
    "plain": {},
    "lab-1.0": {"colour": "lab", "colour_strength": 1.0},
    "lab-0.5+guard-0.02": {"colour": "lab", "colour_strength": 0.5, "clip_guard": 0.02},
    "guard-0.02": {"clip_guard": 0.02},
    "lab-0.5": {"colour": "lab", "colour_strength": 0.5},
    "histogram-1.0": {"colour": "histogram", "colour_strength": 1.0},
    "input_blend-0.05": {"input_blend": 0.05},
    "smoothing-0.3": {"smoothing": 0.3},
    "lab-1.0+guard-0.02": {"colour": "lab", "colour_strength": 1.0, "clip_guard": 0.02},
    "lab-0.25+guard-0.02": {"colour": "lab", "colour_strength": 0.25, "clip_guard": 0.02},
    "histogram-0.5": {"colour": "histogram", "colour_strength": 0.5},
    "histogram-0.75": {"colour": "histogram", "colour_strength": 0.75},
    "histogram-0.25": {"colour": "histogram", "colour_strength": 0.25},
    "histogram-0.5+smoothing-0.2": {"colour": "histogram", "colour_strength": 0.5, "smoothing": 0.2},
    "default": None,
}


def schedule_data(variant: dict | None) -> dict:
    """The logo schedule scaled to SIZE and 60 frames per segment, with ``variant`` in defaults."""
    data = yaml.safe_load((ROOT / "schedules" / "logo-1080p.yaml").read_text())
    scale = FRAMES_PER_SEGMENT / 150
    data = copy.deepcopy(data)
    data["input"] = str(ROOT / "schedules" / data["input"])
    data["size"] = list(SIZE)
    data["checkpoint_every"] = 50
    data["defaults"].update(iterations=ITERATIONS, octaves=1, step=0.015, jitter=6)
    if variant is not None:
        data["defaults"].update({**NEUTRAL, **variant})
    for seg in data["segments"]:
        seg["frames"] = FRAMES_PER_SEGMENT
        if seg.get("transition"):
            seg["transition"] = round(seg["transition"] * scale)
        for key, value in seg.items():
            if isinstance(value, dict) and key != "layers":  # keyframes: rescale the frame numbers
                seg[key] = {min(round(f * scale), FRAMES_PER_SEGMENT - 1): v for f, v in value.items()}
    return data


def run(name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    data = schedule_data(VARIANTS[name])
    data["output"] = str(OUT / f"{name}.mp4")
    (OUT / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    schedule = parse_schedule(data, source=OUT / f"{name}.yaml")
    t0 = time.time()

    def progress(p):
        if p.event == "checkpoint":
            print(f"  {name}: frame {p.frame} at {time.time() - t0:.0f} s", flush=True)

    video = render(schedule, fresh=True, callback=progress)
    seconds = time.time() - t0
    stats = S.video_stats(iter_frames(video))
    S.write_json(OUT / f"{name}.json", stats)
    d = S.drift(stats)
    print(f"{name}: {seconds:.0f} s; {fmt(d)}", flush=True)
    return video


def fmt(d: dict) -> str:
    return (f"luminance {100 * d['luminance']:.1f} %, saturation {100 * d['saturation']:.1f} %, "
            f"clipped {100 * d['clipped']:+.2f} pt (max {100 * d['clipped_max']:.2f} %), "
            f"change {d['change_mean']:.4f}")


def table() -> None:
    runs = {}
    print("| variant | luminance drift | saturation drift | clipped rise (max) | mean change | targets |")
    print("|---|---|---|---|---|---|")
    for name in VARIANTS:
        path = OUT / f"{name}.json"
        if not path.is_file():
            continue
        stats = json.loads(path.read_text())["metrics"]
        runs[name] = stats
        d = S.drift(stats)
        ok = d["luminance"] <= 0.10 and d["saturation"] <= 0.10 and d["clipped"] <= 0.02
        print(f"| {name} | {100 * d['luminance']:.1f} % | {100 * d['saturation']:.1f} % | "
              f"{100 * d['clipped']:+.2f} pt ({100 * d['clipped_max']:.2f} %) | {d['change_mean']:.4f} | "
              f"{'met' if ok else 'missed'} |")
    title = f"logo zoom, {SIZE[0]}x{SIZE[1]}, 300 frames"
    if OUT != ROOT / "out" / "quality":
        return
    shown = ("plain", "lab-1.0", "histogram-1.0", "histogram-0.75", "guard-0.02", "input_blend-0.05", "smoothing-0.3")
    singles = {k: runs[k] for k in shown if k in runs}
    if singles:
        S.plot(ROOT / "docs" / "quality-options.png", singles, title + ": one option at a time", size=(10, 7))
    pair = {k: runs[k] for k in ("plain", "default") if k in runs}
    if pair:
        S.plot(ROOT / "docs" / "quality-defaults.png", pair, title + ": without and with the defaults")
    if len(pair) == 2:
        frames_strip(ROOT / "docs" / "quality-frames.png")


def frames_strip(path: Path, names=("plain", "default"), picks=(0, 75, 150, 225, 299), scale=2) -> None:
    """One row of frames per variant (``picks``), each enlarged ``scale`` times, into a PNG."""
    import cv2
    import numpy as np

    from dreamvid.images import write_png

    rows = []
    for name in names:
        frames = {n: f.copy() for n, f in enumerate(iter_frames(OUT / f"{name}.mp4")) if n in picks}
        row = [cv2.resize(frames[n], None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) for n in picks]
        rows.append(np.concatenate([np.pad(f, ((2, 2), (2, 2), (0, 0)), constant_values=255) for f in row], axis=1))
    write_png(path, np.concatenate(rows, axis=0))


def main() -> None:
    global OUT, SIZE, ITERATIONS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", help="variants to render (default: all)")
    parser.add_argument("--table", action="store_true", help="only print the table and draw the plots")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--size", help="WxH: a check at another size (results in out/quality/WxH-N/, no plots)")
    parser.add_argument("--iterations", type=int, default=ITERATIONS, help="with --size: iterations per frame")
    args = parser.parse_args()
    if args.size:
        SIZE, ITERATIONS = tuple(int(v) for v in args.size.split("x")), args.iterations
        OUT = OUT / f"{args.size}-{ITERATIONS}"
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not args.table:
        for name in args.variants or VARIANTS:
            run(name)
    table()


if __name__ == "__main__":
    main()
