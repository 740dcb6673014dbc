"""Does bf16 keep the look? Dreamed stills and a 60-frame zoom in fp32 and bf16, side by side.

For docs/performance.md. Stills: the first dreamed frame (``preview --frame 1``) of four
varied inputs (two skimage photos, the flat demo logo, grey noise) in each precision, and
its SSIM (``skimage.metrics.structural_similarity``) between the two. Zoom: a 60-frame
render of a photo in each precision, plus fp32 with another seed as the yardstick of "a
different video with the same look", measured by ``dreamvid.stats`` (drift from frame 0)
and by the SSIM of frames 1, 30 and 59. Default settings (mixed3, 10 iterations, 3 octaves,
histogram colour control, zoom 1.02) at 256x192, one torch thread.

    python3 bench/precision_look.py                 # renders (10-20 min on a 2-core CPU)
    python3 bench/precision_look.py --png-only      # the picture again from out/precision/

Writes out/precision/ (videos, stills, results.json), docs/precision-look.png and a markdown
table on stdout. bf16 runs on any CPU (emulated where it is not native: slower, same numbers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch
from skimage.metrics import structural_similarity

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamvid import stats as S  # noqa: E402
from dreamvid.encode import iter_frames  # noqa: E402
from dreamvid.render import preview, render  # noqa: E402
from dreamvid.schedule import parse_schedule  # noqa: E402

OUT = ROOT / "out" / "precision"
PNG = ROOT / "docs" / "precision-look.png"
SIZE, FRAMES = (256, 192), 60
TILE = (192, 144)  # each picture in the PNG
ZOOM_AT = (1, 30, 59)


def inputs() -> dict[str, Path | None]:
    """name -> image path (None: noise)."""
    OUT.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path | None] = {}
    for name in ("astronaut", "coffee"):
        path = OUT / f"{name}.png"
        if not path.exists():
            cv2.imwrite(str(path), getattr(skimage.data, name)()[:, :, ::-1])
        paths[name] = path
    paths["logo"] = ROOT / "schedules" / "logo.png"
    paths["noise"] = None
    return paths


def schedule(image: Path | None, output: Path, precision: str, seed: int = 0):
    data = {"input": str(image) if image else "noise", "output": str(output), "size": list(SIZE), "seed": seed,
            "device": "cpu", "precision": precision, "segments": [{"frames": FRAMES, "layers": {"mixed3": 1.0}}]}
    return parse_schedule(data, source=OUT / "look.yaml")


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(a, b, channel_axis=2))


def run() -> dict:
    results: dict = {"stills": {}, "zoom": {}}
    for name, image in inputs().items():
        frames = {}
        for precision in ("fp32", "bf16"):
            t = time.perf_counter()
            frames[precision] = preview(schedule(image, OUT / "unused.mp4", precision), 1)
            cv2.imwrite(str(OUT / f"still-{name}-{precision}.png"), frames[precision][:, :, ::-1])
            print(f"still {name} {precision}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        results["stills"][name] = {"ssim": ssim(frames["fp32"], frames["bf16"])}
    zoom = {"fp32": ("fp32", 0), "bf16": ("bf16", 0), "fp32-seed1": ("fp32", 1)}
    videos = {}
    for key, (precision, seed) in zoom.items():
        path = OUT / f"zoom-{key}.mp4"
        t = time.perf_counter()
        render(schedule(inputs()["coffee"], path, precision, seed), fresh=True)
        print(f"zoom {key}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        videos[key] = [f.copy() for f in iter_frames(path)]
        stats = S.video_stats(videos[key])
        results["zoom"][key] = {"drift": S.drift(stats), "last": {m: stats[m][-1] for m in ("luminance", "saturation", "clipped")}}
    for other in ("bf16", "fp32-seed1"):
        results["zoom"][other]["ssim_to_fp32"] = {n: ssim(videos["fp32"][n], videos[other][n]) for n in ZOOM_AT}
    (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


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
    grid = np.vstack(rows)
    ok, buf = cv2.imencode(".png", grid[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    PNG.write_bytes(buf.tobytes())
    return PNG


def table(results: dict) -> str:
    lines = ["| still (frame 1) | SSIM bf16 vs fp32 |", "|---|---|"]
    lines += [f"| {n} | {r['ssim']:.3f} |" for n, r in results["stills"].items()]
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
    ap.add_argument("--png-only", action="store_true", help="redraw the PNG and table from out/precision/")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = json.loads((OUT / "results.json").read_text()) if args.png_only else run()
    print(f"wrote {picture()}", file=sys.stderr)
    print(table(results))


if __name__ == "__main__":
    main()
