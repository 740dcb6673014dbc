"""Synthesise the demo track: 8 s at 120 bpm, a kick drum on every beat, hi-hats between, a pad.

    python schedules/make_beat.py                 # writes schedules/beat.flac beside this script
    python schedules/make_beat.py out.wav --times # any extension ffmpeg writes; prints the hit times

Deterministic: the same samples every run (hi-hat noise from a fixed seed), so the file is the
same bit for bit for WAV and FLAC. The hit times are exact, for tests and schedules:
kicks at KICKS (0.0, 0.5, ... 7.5 s), hi-hats at HATS (0.25, 0.75, ... 7.75 s).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

RATE = 44_100  # Hz
SECONDS = 8.0
BPM = 120
BEAT = 60.0 / BPM  # 0.5 s
KICKS = tuple(round(i * BEAT, 6) for i in range(int(SECONDS / BEAT)))  # on every beat
HATS = tuple(round(k + BEAT / 2, 6) for k in KICKS)  # on every off-beat


def kick(n: int, rate: int = RATE) -> np.ndarray:
    """A kick drum: a sine swept from 120 Hz down to 45 Hz, decaying in ~0.12 s."""
    t = np.arange(n) / rate
    freq = 45.0 + 75.0 * np.exp(-t / 0.03)
    return np.sin(2 * np.pi * np.cumsum(freq) / rate) * np.exp(-t / 0.12)


def hat(n: int, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    """A closed hi-hat: white noise high-passed (above ~5 kHz), decaying in ~30 ms."""
    t = np.arange(n) / rate
    noise = rng.standard_normal(n)
    spectrum = np.fft.rfft(noise)
    spectrum[np.fft.rfftfreq(n, 1.0 / rate) < 5000.0] = 0.0
    return np.fft.irfft(spectrum, n) * np.exp(-t / 0.03)


def pad(n: int, rate: int = RATE) -> np.ndarray:
    """A soft chord (A minor, then F major from 4 s) fading in and out."""
    t = np.arange(n) / rate
    first = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 261.63, 329.63))
    second = sum(np.sin(2 * np.pi * f * t) for f in (174.61, 220.0, 261.63))
    mix = np.where(t < SECONDS / 2, first, second) / 3
    fade = np.minimum(1.0, np.minimum(t / 1.0, (SECONDS - t) / 0.5))
    return mix * fade


def track(rate: int = RATE) -> np.ndarray:
    """The whole track, float64 in -1..1 (peak 0.9)."""
    n = int(SECONDS * rate)
    out = 0.12 * pad(n, rate)
    rng = np.random.default_rng(2024)
    for times, gain, make in ((KICKS, 0.9, lambda m: kick(m, rate)), (HATS, 0.25, lambda m: hat(m, rng, rate))):
        for t0 in times:
            start = int(round(t0 * rate))
            m = min(n - start, int(0.4 * rate))
            out[start:start + m] += gain * make(m)
    return out * (0.9 / np.abs(out).max())


def write(path: Path, samples: np.ndarray, rate: int = RATE) -> None:
    """16-bit mono: WAV with the standard library, any other format through the bundled ffmpeg."""
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    if path.suffix.lower() == ".wav":
        with wave.open(str(tmp), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(rate)
            f.writeframes(pcm.tobytes())
    else:
        from dreamvid.media.ffmpeg import ffmpeg_exe

        cmd = [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-f", "s16le", "-ar", str(rate), "-ac", "1",
               "-i", "pipe:0", "-map_metadata", "-1", "-fflags", "+bitexact", "-flags", "+bitexact", str(tmp)]
        subprocess.run(cmd, input=pcm.tobytes(), check=True, capture_output=True)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(Path(__file__).with_name("beat.flac")),
                        help="output file (default: beat.flac beside this script)")
    parser.add_argument("--times", action="store_true", help="print the kick and hi-hat times as JSON")
    args = parser.parse_args(argv)
    write(Path(args.out), track())
    if args.times:
        print(json.dumps({"bpm": BPM, "kicks": KICKS, "hats": HATS}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
