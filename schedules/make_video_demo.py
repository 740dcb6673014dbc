"""Make schedules/video-demo.mp4: a small clip to dream over (CPU-sized, with a sound track).

3 s at 15 fps, 256x144: a slow zoom into skimage's astronaut photo while the view drifts
right and turns slightly (every pixel moves differently, so the flow matters), and a soft
synthesised chord that fades in and out (so ``audio: input`` can be demoed).

Licence: the photo is ``skimage.data.astronaut()`` (NASA, Eileen Collins; "no known copyright
restrictions, released into the public domain" per scikit-image's documentation); the sound is
synthesised here. The clip is therefore in the public domain, like its sources.

    python3 schedules/make_video_demo.py                     # writes schedules/video-demo.mp4
    python3 schedules/make_video_demo.py out/clip.mp4 --seconds 6 --fps 30000/1001 --size 1280x720
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import skimage.data

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamvid.media.ffmpeg import ffmpeg_exe  # noqa: E402
from dreamvid.media.write import VideoWriter  # noqa: E402

MAX_BYTES = 2 * 1024 * 1024  # the repository ships the clip only below this


def frames(size: tuple[int, int], count: int):
    """HxWx3 uint8 frames: zoom 1.0 -> 1.4 toward the face, drift right, turn 3 degrees, eased."""
    w, h = size
    photo = skimage.data.astronaut().astype(np.float32) / 255.0
    photo = cv2.resize(photo, (w, round(w * photo.shape[0] / photo.shape[1])), interpolation=cv2.INTER_AREA)
    for i in range(count):
        t = i / max(1, count - 1)
        e = t * t * (3 - 2 * t)  # smoothstep
        # the point of the photo at the frame's centre (the photo is magnified only: no aliasing)
        cx, cy = w * (0.5 + 0.08 * e), photo.shape[0] * (0.31 - 0.04 * e)
        m = cv2.getRotationMatrix2D((cx, cy), 3.0 * e, 1.0 + 0.4 * e)
        m[:, 2] += (w / 2 - cx, h / 2 - cy)
        out = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        yield (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def sound(path: Path, seconds: float) -> Path:
    """A soft A-minor chord with a 0.5 s fade in and out (ffmpeg's aevalsrc), as WAV."""
    expr = "0.12*sin(2*PI*220*t)+0.09*sin(2*PI*261.63*t)+0.07*sin(2*PI*329.63*t)"
    fade = f"afade=t=in:d=0.5,afade=t=out:st={max(0.0, seconds - 0.5):.3f}:d=0.5"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"aevalsrc={expr}:s=44100:d={seconds:.3f}", "-af", fade, str(path)], check=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", nargs="?", default=str(ROOT / "schedules" / "video-demo.mp4"))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--fps", type=Fraction, default=Fraction(15))
    ap.add_argument("--size", default="256x144", help="WIDTHxHEIGHT")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    count = round(args.seconds * args.fps)
    out = Path(args.output)
    shipped = out.resolve() == (ROOT / "schedules" / "video-demo.mp4").resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wav = sound(Path(tmp) / "chord.wav", count / float(args.fps))
        with VideoWriter(out, size, args.fps, codec="libx264", crf=20, preset="slow", audio=wav) as writer:
            for frame in frames(size, count):
                writer.write(frame)
    kb = out.stat().st_size / 1024
    if shipped and out.stat().st_size > MAX_BYTES:
        out.unlink()
        sys.exit(f"{out}: {kb:.0f} KiB is over the {MAX_BYTES // 1024} KiB the repository ships; removed "
                 "(write it elsewhere: give an output path)")
    print(f"{out}: {count} frames, {size[0]}x{size[1]}, {args.fps} fps, with sound, {kb:.0f} KiB")


if __name__ == "__main__":
    main()
