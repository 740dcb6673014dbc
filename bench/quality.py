"""Does a long zoom keep its colours? Render a CPU-sized logo zoom with and without colour control.

Derives a 300-frame schedule from schedules/logo-1080p.yaml (same layers, zooms, rotation
and transitions, with segment frames and keyframes scaled from 150 to 60 per segment, a
smaller frame and fewer steps), renders it once per variant (the variant's keys override
``defaults``) and measures each video with ``dreamvid.media.stats``. Writes, per variant,
``out/quality/<name>.mp4`` and ``<name>.json``, then a markdown table on stdout and the
plots ``docs/quality-options.png``, ``docs/quality-defaults.png`` and the frame strip
``docs/quality-frames.png`` (results: docs/quality.md).

    python3 bench/quality.py                      # every variant (1-3 min each on 2 cores)
    python3 bench/quality.py plain default        # some of them
    python3 bench/quality.py --table              # only the table and plots from saved JSON
    python3 bench/quality.py --size 160x90 --iterations 3 plain default   # a check at another size

The input set (``--set``): the default-settings zoom (one segment of ``mixed3`` at zoom 1.02,
every dream and colour key at its default, 96x96, fp32 on the CPU) on 11 inputs: skimage photos,
flat logos (schedules/logo.png, skimage's logo, two drawn here), a dark and a bright picture and
noise. One 1000-frame render per input and colour setting, cached in ``.dev/quality-set/``,
measured on the frames before encoding and on the encoded video as decoded (``--size WxH``:
another frame size, cached apart); the drift at 120 frames is that of the first 120 frames of the same video (a frame depends only
on the schedule, the seed and its index, so they are the frames a 120-frame render makes).

    nice python3 bench/quality.py --set --config old default --jobs 2   # render what is not cached
    python3 bench/quality.py --set --table --config old default         # the markdown table
    python3 bench/quality.py --set --sheet docs/quality-set.jpg --config old default --frames 120   # contact sheet
    python3 bench/quality.py --set --encoders astronaut dark-hubble noise   # the same frames, encoded several ways
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamvid.core import defaults as D  # noqa: E402
from dreamvid.media import stats as S  # noqa: E402
from dreamvid.media.read import iter_frames  # noqa: E402
from dreamvid.rendering.loop import render  # noqa: E402
from dreamvid.schedule.schedule import parse_schedule  # noqa: E402

OUT = ROOT / "out" / "quality"
SIZE, FRAMES_PER_SEGMENT = (128, 72), 60  # CPU-sized (one octave: below dream.MIN_OCTAVE_SIDE)
ITERATIONS = 2  # per frame
NEUTRAL = {"colour": "none", "colour_strength": 0.0, "saturation_match": 0.0, "input_blend": 0.0, "smoothing": 0.0,
           "clip_guard": 0.0}

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

    from dreamvid.pixels.images import write_png

    rows = []
    for name in names:
        frames = {n: f.copy() for n, f in enumerate(iter_frames(OUT / f"{name}.mp4")) if n in picks}
        row = [cv2.resize(frames[n], None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) for n in picks]
        rows.append(np.concatenate([np.pad(f, ((2, 2), (2, 2), (0, 0)), constant_values=255) for f in row], axis=1))
    write_png(path, np.concatenate(rows, axis=0))


# -- the input set: default-settings zooms on varied pictures ---------------------------------

SET_OUT = ROOT / ".dev" / "quality-set"
SET_SIZE, SET_FRAMES, SET_SHORT = (96, 96), 1000, 120
GOAL_SATURATION, GOAL_CLIPPED = 0.10, 0.02  # worst saturation drift, worst rise of clipped channels
COLOUR_KEYS = ("colour", "colour_strength", "saturation_match", "clip_guard", "input_blend", "smoothing")
CONFIGS = {  # name -> colour keys (None: the defaults as this checkout ships them)
    "old": {**NEUTRAL, "colour": "histogram", "colour_strength": 0.75},  # the defaults before issue 17
    "default": None,
    "none": NEUTRAL,
}
for _s in (0.5, 0.75, 1.0):  # candidates: histogram strength x saturation match x clip guard
    for _m in (0.0, 0.5, 0.75, 1.0):
        for _g in (0.0, 0.01, 0.02):
            CONFIGS[f"histogram-{_s}" + (f"+saturation-{_m}" if _m else "") + (f"+guard-{_g}" if _g else "")] = {
                **NEUTRAL, "colour": "histogram", "colour_strength": _s, "saturation_match": _m, "clip_guard": _g}
INPUTS = ("astronaut", "coffee", "chelsea", "rocket", "logo", "skimage-logo", "text-on-white", "dark-logo",
          "dark-hubble", "bright-ihc", "noise")


def resolved(config: str) -> dict:
    """The colour keys a config renders with."""
    keys = CONFIGS[config]
    if keys is None:
        keys = {k: getattr(D, k.upper()) for k in COLOUR_KEYS}
    return dict(keys)


def size_tag() -> str:
    """The cache names' size suffix: none at the set's own size (96x96)."""
    return "" if SET_SIZE == (96, 96) else "-{}x{}".format(*SET_SIZE)


def slug(keys: dict) -> str:
    tail = "-t{saturation_match}".format(**keys) if keys["saturation_match"] else ""  # runs cached before the key
    return "{colour}-s{colour_strength}-g{clip_guard}-b{input_blend}-m{smoothing}".format(**keys) + tail


def make_input(name: str) -> str:
    """The input's path (written into SET_OUT/inputs the first time), or "noise"."""
    import cv2
    import numpy as np
    import skimage.data

    from dreamvid.pixels.images import write_png

    if name == "noise":
        return "noise"
    if name == "logo":
        return str(ROOT / "schedules" / "logo.png")
    path = SET_OUT / "inputs" / f"{name}.png"
    if path.is_file():
        return str(path)
    photos = {"astronaut": "astronaut", "coffee": "coffee", "chelsea": "chelsea", "rocket": "rocket",
              "dark-hubble": "hubble_deep_field", "bright-ihc": "immunohistochemistry"}
    if name in photos:
        rgb = getattr(skimage.data, photos[name])()
    elif name == "skimage-logo":  # RGBA on white
        rgba = skimage.data.logo().astype(np.float64) / 255
        rgb = np.round(255 * (rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:]))).astype(np.uint8)
    elif name == "text-on-white":  # black and red text on white
        rgb = np.full((192, 192, 3), 255, np.uint8)
        cv2.putText(rgb, "dream", (12, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(rgb, "video", (18, 140), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (220, 20, 30), 4, cv2.LINE_AA)
    elif name == "dark-logo":  # a yellow disc and a magenta ring on dark navy
        rgb = np.empty((192, 192, 3), np.uint8)
        rgb[:] = (14, 18, 40)
        cv2.circle(rgb, (96, 96), 70, (230, 40, 190), 10, cv2.LINE_AA)
        cv2.circle(rgb, (96, 96), 38, (250, 210, 40), -1, cv2.LINE_AA)
    else:
        raise KeyError(name)
    write_png(path, rgb)
    return str(path)


def set_schedule(name: str, keys: dict, frames: int, output: Path) -> dict:
    return {"input": make_input(name), "output": str(output), "size": list(SET_SIZE), "seed": 0,
            "device": "cpu", "precision": "fp32",  # fp32: no timing probe, the same frames on every CPU
            "defaults": dict(keys), "segments": [{"frames": frames, "layers": {D.LAYERS: 1.0}}]}


def set_run(name: str, config: str, frames: int = SET_FRAMES) -> Path:
    """Render (unless cached) one input with one config; returns the JSON of its per-frame stats:
    ``metrics`` of the encoded video as decoded, ``rendered`` of the frames before encoding."""
    keys = resolved(config)
    folder = SET_OUT / "runs" / name
    path = folder / f"{slug(keys)}-{frames}{size_tag()}.json"
    if path.is_file():
        return path
    import torch

    from dreamvid.core.files import write_atomic
    from dreamvid.media.write import VideoWriter
    from dreamvid.rendering.loop import frames as rendered_frames

    torch.set_num_threads(int(os.environ.get("QUALITY_THREADS", "1")))
    folder.mkdir(parents=True, exist_ok=True)
    video = path.with_suffix(".mp4")
    schedule = parse_schedule(set_schedule(name, keys, frames, video), source=folder / "schedule.yaml")
    enc = schedule.encoder
    t0 = time.time()
    with VideoWriter(video, schedule.size, schedule.frame_rate, codec=enc.codec, crf=enc.crf, preset=enc.preset,
                     pix_fmt=enc.pix_fmt) as writer:  # fmt: skip
        def encoding(frames_):  # the frames before encoding: to the encoder, and measured on the way
            for frame in frames_:
                writer.write(frame)
                yield frame

        rendered = S.video_stats(encoding(rendered_frames(schedule)))
    encoded = S.video_stats(iter_frames(video))
    data = {"metrics": encoded, "drift": S.drift(encoded), "rendered": rendered}
    write_atomic(path, (json.dumps(data, indent=1) + "\n").encode())
    print(f"{name} {config}: {frames} frames in {time.time() - t0:.0f} s", flush=True)
    return path


def cached(name: str, config: str, suffix: str) -> list[int]:
    """Frame counts of the cached renders of ``name`` with ``config`` (at SET_SIZE), increasing."""
    pattern = re.compile(re.escape(slug(resolved(config))) + r"-(\d+)" + re.escape(size_tag() + suffix))
    found = (pattern.fullmatch(p.name) for p in (SET_OUT / "runs" / name).glob("*" + suffix))
    return sorted(int(m.group(1)) for m in found if m)


def set_drift(name: str, config: str, frames: int, measured: str = "metrics") -> dict | None:
    """Drift over the first ``frames`` frames of a cached render at least that long (None: none),
    of the encoded video (``measured="metrics"``) or of the frames before encoding ("rendered").
    For noise the base is frame 1 (the colour reference; frame 0 is grey noise)."""
    runs = [n for n in cached(name, config, ".json") if n >= frames]
    if not runs:
        return None
    path = SET_OUT / "runs" / name / f"{slug(resolved(config))}-{runs[-1]}{size_tag()}.json"
    stats = json.loads(path.read_text()).get(measured)
    if stats is None:  # cached before the frames before encoding were measured
        return None
    first = 1 if name == "noise" else 0
    return S.drift({k: v[first:frames] for k, v in stats.items()})


def set_table(configs: list[str], measured: str = "metrics") -> None:
    """Per input and config: saturation drift and clipped rise at 120 and 1000 frames; then the worst."""
    cols = [(f, c) for c in configs for f in (SET_SHORT, SET_FRAMES)]
    print("| input | " + " | ".join(f"{c}: {f} frames" for f, c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    worst = {col: None for col in cols}
    for name in INPUTS:
        cells = []
        for col in cols:
            d = set_drift(name, col[1], col[0], measured)
            if d is None:
                cells.append("-")
                continue
            cells.append(f"{100 * d['saturation']:.1f} %, {100 * d['clipped']:+.2f} pt (lum. {100 * d['luminance']:.1f} %)")
            w = worst[col]
            worst[col] = d if w is None else {k: max(w[k], d[k]) for k in d}
        print(f"| {name} | " + " | ".join(cells) + " |")
    cells = []
    for col in cols:
        w = worst[col]
        ok = w is not None and w["saturation"] <= GOAL_SATURATION and w["clipped"] <= GOAL_CLIPPED
        cells.append("-" if w is None else f"**{100 * w['saturation']:.1f} %, {100 * w['clipped']:+.2f} pt** "
                     f"({'met' if ok else 'missed'})")
    print("| worst | " + " | ".join(cells) + " |")


def contact_sheet(path: Path, configs: list[str], picks=(0, 40, 80, 119), scale=1) -> None:
    """A row per input: frames ``picks`` of each config's longest cached render, configs side by side."""
    import cv2
    import numpy as np

    from dreamvid.pixels.images import write_png

    rows = []
    for name in INPUTS:
        row = []
        for config in configs:
            runs = cached(name, config, ".mp4")
            if not runs or runs[-1] <= max(picks):
                break
            video = SET_OUT / "runs" / name / f"{slug(resolved(config))}-{runs[-1]}.mp4"
            frames = {n: f.copy() for n, f in enumerate(iter_frames(video)) if n in picks}
            tiles = [cv2.resize(frames[n], None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) for n in picks]
            row.append(np.concatenate([np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=255) for t in tiles], 1))
            row.append(np.zeros((row[-1].shape[0], 6, 3), np.uint8))  # a black bar between configs
        if len(row) == 2 * len(configs):
            rows.append(np.concatenate(row[:-1], axis=1))
    sheet = np.concatenate(rows, axis=0)
    if path.suffix.lower() in (".jpg", ".jpeg"):  # RGB in, OpenCV writes BGR
        cv2.imwrite(str(path), np.ascontiguousarray(sheet[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 88])
    else:
        write_png(path, sheet)


ENCODINGS = {  # name -> VideoWriter settings: the same frames, encoded differently (rawvideo: no compression)
    "x264 crf18 yuv420p 30 fps (default)": {},
    "x264 crf18 yuv420p 25 fps": {"fps": 25},
    "x264 crf18 yuv420p 24 fps": {"fps": 24},
    "x264 crf18 yuv444p": {"pix_fmt": "yuv444p"},
    "x264 crf10 yuv444p": {"pix_fmt": "yuv444p", "crf": 10},
    "uncompressed yuv420p": {"codec": "rawvideo"},
    "uncompressed yuv444p": {"codec": "rawvideo", "pix_fmt": "yuv444p"},
}


def encoder_check(names: list[str], frames: int = SET_SHORT) -> None:
    """Render ``frames`` default-settings frames of each input once, encode them each way of
    ENCODINGS and print the saturation drift (and clipped rise) of the decoded videos beside
    the frames' own: what the encoder, not the colour control, does to the measure."""
    import tempfile

    import torch

    from dreamvid.media.write import VideoWriter
    from dreamvid.rendering.loop import frames as rendered_frames

    torch.set_num_threads(int(os.environ.get("QUALITY_THREADS", "1")))
    print("| input | frames before encoding | " + " | ".join(ENCODINGS) + " |")
    print("|---|---|" + "---|" * len(ENCODINGS))
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            schedule = parse_schedule(set_schedule(name, resolved("default"), frames, Path(tmp) / "v.mp4"),
                                      source=Path(tmp) / "s.yaml")  # fmt: skip
            shown = list(rendered_frames(schedule))
            first = 1 if name == "noise" else 0
            cells = [S.video_stats(shown)]
            for i, settings in enumerate(ENCODINGS.values()):
                settings = {"fps": 30, "codec": "libx264", "crf": 18, "pix_fmt": "yuv420p", **settings}
                video = Path(tmp) / f"{i}.{'nut' if settings['codec'] == 'rawvideo' else 'mkv'}"
                with VideoWriter(video, schedule.size, **settings) as writer:
                    for frame in shown:
                        writer.write(frame)
                cells.append(S.video_stats(iter_frames(video)))
        drifts = [S.drift({k: v[first:] for k, v in c.items()}) for c in cells]
        print(f"| {name} | " + " | ".join(f"{100 * d['saturation']:.1f} %, {100 * d['clipped']:+.2f} pt"
                                        for d in drifts) + " |", flush=True)


def set_main(args) -> None:
    global SET_SIZE
    if args.size:
        SET_SIZE = tuple(int(v) for v in args.size.split("x"))
    configs = args.config or ["old", "default"]
    names = args.variants or list(INPUTS)
    if args.encoders:
        return encoder_check(names, args.frames if args.frames != SET_FRAMES else SET_SHORT)
    if not args.table and not args.sheet:
        jobs = [(name, config, args.frames) for config in configs for name in names]
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as pool:
                list(pool.map(set_run, *zip(*jobs)))
        else:
            for job in jobs:
                set_run(*job)
    if args.sheet:
        contact_sheet(Path(args.sheet), configs, picks=(0, 60, 119) if args.frames < SET_FRAMES else (0, 120, 500, 999))
    else:
        print("The encoded video, as decoded:\n")
        set_table(configs)
        print("\nThe frames before encoding:\n")
        set_table(configs, "rendered")


def main() -> None:
    global OUT, SIZE, ITERATIONS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", help="variants to render (default: all)")
    parser.add_argument("--table", action="store_true", help="only print the table and draw the plots")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--size", help="WxH: a check at another size (results in out/quality/WxH-N/, no plots; "
                        "with --set: the set's frame size, default 96x96)")
    parser.add_argument("--iterations", type=int, default=ITERATIONS, help="with --size: iterations per frame")
    parser.add_argument("--set", action="store_true", help="the input set: variants are input names (default: all)")
    parser.add_argument("--config", nargs="*", help="with --set: colour configs (default: old default)")
    parser.add_argument("--jobs", type=int, default=1, help="with --set: renders at a time (1 torch thread each)")
    parser.add_argument("--frames", type=int, default=SET_FRAMES, help="with --set: frames per render")
    parser.add_argument("--sheet", help="with --set: write a contact sheet PNG of the configs' frames")
    parser.add_argument("--encoders", action="store_true", help="with --set: the default frames encoded several ways "
                        "(120 frames unless --frames)")
    args = parser.parse_args()
    if args.set:
        return set_main(args)
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
