"""Does bf16 keep the look? Dreamed stills and a 60-frame zoom in fp32 and bf16, side by side.

For docs/performance.md. Stills: the first dreamed frame (``preview --frame 1``) of four
varied inputs (two skimage photos, the flat demo logo, grey noise saved as a picture) in each precision, and
its SSIM (``skimage.metrics.structural_similarity``) between the two. Zoom: a 60-frame
render of a photo in each precision, plus fp32 with another seed as the yardstick of "a
different video with the same look", measured by ``dreamvid.media.stats`` (drift from frame 0)
and by the SSIM of frames 1, 30 and 59. Default settings (mixed3, 10 iterations, 3 octaves,
histogram colour control, zoom 1.02) at 256x192, one torch thread.

    python3 bench/precision_look.py                 # renders (10-30 min on a 2-core CPU)
    python3 bench/precision_look.py --only stills   # one part again (stills, zoom, or png)

Writes out/precision/ (videos, stills, results.json), docs/precision-look.png and a markdown
table on stdout. bf16 runs on any CPU (emulated where it is not native: slower, same numbers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch
from PIL import Image
from skimage.metrics import structural_similarity

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamvid.api import preview  # noqa: E402
from dreamvid.media import stats as S  # noqa: E402
from dreamvid.media.read import iter_frames  # noqa: E402
from dreamvid.pixels.images import noise_image  # noqa: E402
from dreamvid.rendering.loop import render  # noqa: E402
from dreamvid.schedule.schedule import parse_schedule  # noqa: E402

OUT = ROOT / "out" / "precision"
PNG = ROOT / "docs" / "precision-look.png"
SIZE, FRAMES = (256, 192), 60
TILE = (160, 120)  # each picture in the PNG
ZOOM_AT = (1, 30, 59)
VARIANTS = {"fp32": ("fp32", 0), "bf16": ("bf16", 0), "fp32-seed1": ("fp32", 1)}  # precision, seed


def inputs() -> dict[str, Path]:
    """name -> image path."""
    OUT.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path | None] = {}
    for name in ("astronaut", "coffee"):
        path = OUT / f"{name}.png"
        if not path.exists():
            cv2.imwrite(str(path), getattr(skimage.data, name)()[:, :, ::-1])
        paths[name] = path
    paths["logo"] = ROOT / "schedules" / "logo.png"
    paths["noise"] = OUT / "noise.png"  # a file, so that the seed changes only the jitter
    if not paths["noise"].exists():
        noise = noise_image(SIZE, torch.Generator().manual_seed(0))
        cv2.imwrite(str(paths["noise"]), (noise[:, :, ::-1] * 255).round().astype(np.uint8))
    return paths


def schedule(image: Path | None, output: Path, precision: str, seed: int = 0):
    data = {"input": str(image) if image else "noise", "output": str(output), "size": list(SIZE), "seed": seed,
            "device": "cpu", "precision": precision, "segments": [{"frames": FRAMES, "layers": {"mixed3": 1.0}}]}
    return parse_schedule(data, source=OUT / "look.yaml")


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(a, b, channel_axis=2))


def run_stills() -> dict:
    """SSIM of frame 1 between bf16 and fp32, and between fp32 and fp32 with another seed
    (the yardstick: a different picture with the same look)."""
    out = {}
    for name, image in inputs().items():
        frames = {}
        for key, (precision, seed) in VARIANTS.items():
            t = time.perf_counter()
            frames[key] = preview(schedule(image, OUT / "unused.mp4", precision, seed), 1, progress=False)
            cv2.imwrite(str(OUT / f"still-{name}-{key}.png"), frames[key][:, :, ::-1])
            print(f"still {name} {key}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        out[name] = {"ssim": ssim(frames["fp32"], frames["bf16"]), "ssim_seed": ssim(frames["fp32"], frames["fp32-seed1"])}
    return out


def run_zoom() -> dict:
    out, videos = {}, {}
    for key, (precision, seed) in VARIANTS.items():
        path = OUT / f"zoom-{key}.mp4"
        t = time.perf_counter()
        render(schedule(inputs()["coffee"], path, precision, seed), fresh=True)
        print(f"zoom {key}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        videos[key] = [f.copy() for f in iter_frames(path)]
        stats = S.video_stats(videos[key])
        out[key] = {"drift": S.drift(stats), "last": {m: stats[m][-1] for m in ("luminance", "saturation", "clipped")}}
    for other in ("bf16", "fp32-seed1"):
        out[other]["ssim_to_fp32"] = {n: ssim(videos["fp32"][n], videos[other][n]) for n in ZOOM_AT}
    return out


def tile(rgb: np.ndarray, label: str) -> np.ndarray:
    out = cv2.resize(rgb, TILE, interpolation=cv2.INTER_AREA)
    cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def picture() -> Path:
    """Row 1-2: stills fp32 / bf16 per input; rows 3-4: the zoom's frames in fp32 / bf16."""
    names = list(inputs())
    read = lambda path: cv2.imread(str(path))[:, :, ::-1]  # noqa: E731
    rows = [np.hstack([tile(read(OUT / f"still-{n}-{p}.png"), f"{n} {p}") for n in names]) for p in ("fp32", "bf16")]
    for p in ("fp32", "bf16"):
        frames = [f.copy() for f in iter_frames(OUT / f"zoom-{p}.mp4")]
        tiles = [tile(frames[n], f"zoom {p} frame {n}") for n in ZOOM_AT]
        tiles += [np.full_like(tiles[0], 255)] * (len(names) - len(tiles))
        rows.append(np.hstack(tiles))
    grid = Image.fromarray(np.vstack(rows)).quantize(256, method=Image.Quantize.MEDIANCUT)  # a small file
    grid.save(PNG, optimize=True)
    return PNG


def table(results: dict) -> str:
    lines = ["| still (frame 1) | SSIM bf16 vs fp32 | SSIM fp32 seed 1 vs fp32 seed 0 |", "|---|---|---|"]
    lines += [f"| {n} | {r['ssim']:.3f} | {r['ssim_seed']:.3f} |" for n, r in results["stills"].items()]
    lines += ["", "| 60-frame zoom | luminance drift | saturation drift | clipped (+points) | change/frame (mean) | "
                  "SSIM to fp32 at frames " + ", ".join(map(str, ZOOM_AT)) + " |", "|---|---|---|---|---|---|"]  # fmt: skip
    for key, r in results["zoom"].items():
        d = r["drift"]
        s = ", ".join(f"{v:.3f}" for v in r["ssim_to_fp32"].values()) if "ssim_to_fp32" in r else "-"
        lines.append(f"| {key} | {d['luminance']:.1%} | {d['saturation']:.1%} | {d['clipped'] * 100:+.2f} | "
                     f"{d['change_mean']:.4f} | {s} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["stills", "zoom", "png"], help="redo only this part (the rest from "
                                                                      "out/precision/results.json)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    saved = OUT / "results.json"
    results = json.loads(saved.read_text()) if args.only else {}
    if args.only in (None, "stills"):
        results["stills"] = run_stills()
    if args.only in (None, "zoom"):
        results["zoom"] = run_zoom()
    saved.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {picture()}", file=sys.stderr)
    print(table(results))


if __name__ == "__main__":
    main()
