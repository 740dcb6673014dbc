"""dreamvid.media.audio: per-frame features of synthesised tracks with hits at known times."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml

from dreamvid.core.errors import InputError
from dreamvid.media import audio
from dreamvid.media.audio import FEATURES, AudioSettings, analyse, beat_times, features
from dreamvid.media.ffmpeg import ffmpeg_exe
from tests.procs import ffmpeg_children

ROOT = Path(__file__).resolve().parents[1]
RATE = 44_100
# irregular, off the frame grid: gaps 0.8-1.1 s
HITS = (0.31, 1.37, 2.2, 3.05, 4.1, 4.9)
SECONDS = 6.0


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())
    return path


def kicks(times=HITS, seconds=SECONDS, rate=RATE) -> np.ndarray:
    """Kick drums (45-120 Hz sweep, 0.12 s decay) at ``times``, silence between."""
    t = np.arange(int(seconds * rate)) / rate
    out = np.zeros_like(t)
    for t0 in times:
        tt = t[t >= t0] - t0
        freq = 45.0 + 75.0 * np.exp(-tt / 0.03)
        out[t >= t0] += 0.8 * np.sin(2 * np.pi * np.cumsum(freq) / rate) * np.exp(-tt / 0.12)
    return out


def treble_hits(times=HITS, seconds=SECONDS, rate=RATE) -> np.ndarray:
    """Bursts of 4-8 kHz noise at ``times``: hi-hat-like, nothing below 4 kHz. Each rises in 1 ms:
    a jump from silence to full level in one sample is a click, which has bass (-42 dB here)."""
    rng = np.random.default_rng(3)
    n = int(seconds * rate)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    spectrum[(freqs < 4000) | (freqs > 8000)] = 0
    noise = np.fft.irfft(spectrum, n)
    t = np.arange(n) / rate
    env = sum(np.where(t >= t0, np.exp(-(t - t0) / 0.04) * np.minimum(1.0, (t - t0) / 0.001), 0.0) for t0 in times)
    out = noise * env
    return 0.5 * out / np.abs(out).max()


@pytest.fixture(scope="module")
def kick_wav(tmp_path_factory) -> Path:
    return write_wav(tmp_path_factory.mktemp("audio") / "kicks.wav", kicks())


@pytest.mark.parametrize("fps", [8, 24, 30])
def test_bass_and_beat_peak_within_one_frame_of_each_hit_and_fall_near_zero_between(kick_wav, fps):
    frames = int(SECONDS * fps)
    out = features(kick_wav, fps, frames)
    assert set(out) == set(FEATURES)
    for name, values in out.items():
        assert values.shape == (frames,) and values.dtype == np.float64, name
        assert values.min() >= 0.0 and values.max() <= 1.0, name
    hit_frames = [t0 * fps for t0 in HITS]
    for name in ("bass", "beat", "onset", "rms"):
        values = out[name]
        for h in hit_frames:
            window = range(max(0, int(h) - fps // 4), min(frames, int(h) + fps // 4 + 1))
            peak = max(window, key=lambda n: values[n])
            assert abs(peak - h) <= 1.0 + 1e-9, (name, h, peak)
            assert values[peak] >= 0.9, (name, h, values[peak])
    beats = np.nonzero(out["beat"] == 1.0)[0]
    assert len(beats) == len(HITS)
    assert np.all(np.abs(beats - np.array(hit_frames)) <= 1.0 + 1e-9)
    # between hits: 0.5 s after a hit until the frame before the next one
    quiet = np.zeros(frames, dtype=bool)
    for a, b in zip(HITS, HITS[1:] + (SECONDS,)):
        quiet[int(np.ceil((a + 0.5) * fps)): int(b * fps) - 1] = True
    assert quiet.sum() >= len(HITS)
    assert out["bass"][quiet].max() < 0.15
    assert out["beat"][quiet].max() == 0.0
    assert out["onset"][quiet].max() < 0.05


def test_treble_does_not_drive_bass_nor_beats(tmp_path):
    path = write_wav(tmp_path / "hats.wav", treble_hits())
    out = features(path, 30, int(SECONDS * 30))
    assert out["treble"].max() == 1.0
    assert out["bass"].max() < 0.05
    assert out["beat"].max() == 0.0
    # the treble hits are where they should be
    for t0 in HITS:
        h = t0 * 30
        peak = max(range(int(h) - 5, int(h) + 6), key=lambda n: out["treble"][n])
        assert abs(peak - h) <= 1.0 + 1e-9


def test_features_are_deterministic_bit_for_bit(kick_wav):
    first = features(kick_wav, 25, 150)
    second = features(kick_wav, 25, 150)
    for name in FEATURES:
        assert first[name].tobytes() == second[name].tobytes(), name
    assert ffmpeg_children() == []


def test_level_does_not_matter_and_silence_gives_zeros():
    x = kicks()
    loud = analyse(x, RATE, 30, 180)
    quiet = analyse(x * 0.01, RATE, 30, 180)  # -40 dB
    for name in FEATURES:
        assert np.allclose(loud[name], quiet[name], atol=0.02), name
    silent = analyse(np.zeros(RATE * 2), RATE, 30, 60)
    assert all(not v.any() for v in silent.values())
    hiss = analyse(np.random.default_rng(0).standard_normal(RATE * 2) * 1e-4, RATE, 30, 60)  # -80 dBFS
    assert all(not v.any() for v in hiss.values())


def test_audio_shorter_than_the_video_pads_with_zeros(tmp_path):
    path = write_wav(tmp_path / "short.wav", kicks(times=(0.5,), seconds=1.0))
    out = features(path, 30, 90)  # 3 s of video, 1 s of audio
    assert all(v.shape == (90,) for v in out.values())
    assert out["bass"][14:17].max() > 0.9
    assert all(not v[33:].any() for v in out.values())  # nothing after the audio (+ half a frame)


def test_settings_are_checked_with_one_line_each():
    with pytest.raises(ValueError, match=r"^bass: got \[300.0, 250.0\]; expected \[low, high\] in Hz"):
        AudioSettings(bass=(300.0, 250.0))
    with pytest.raises(ValueError, match=r"^release: got -1; expected seconds 0..10$"):
        AudioSettings(release=-1)
    with pytest.raises(ValueError, match="treble"):
        AudioSettings(treble=(2000.0, 20000.0))  # above 11025 Hz
    settings = AudioSettings(bass=(30.0, 120.0), attack=0.0)
    assert settings.to_data()["bass"] == [30.0, 120.0] and settings.problems() == []
    out = analyse(kicks(), RATE, 30, 180, settings)
    assert out["bass"].max() == 1.0


def _video_without_audio(path: Path) -> Path:
    from dreamvid.media.write import VideoWriter

    with VideoWriter(path, (32, 32), 10, codec="libx264") as writer:
        for _ in range(3):
            writer.write(np.zeros((32, 32, 3), np.uint8))
    return path


@pytest.mark.parametrize("make, fragment", [
    (lambda p: p / "missing.wav", "audio file not found"),
    (lambda p: p, "is a folder"),
    (lambda p: (p / "notes.mp3").write_text("not audio at all\n" * 50) and p / "notes.mp3", "not a readable audio file"),
    (lambda p: _video_without_audio(p / "silent.mp4"), "it has no audio stream"),
])
def test_errors_are_one_line_naming_the_file_and_leave_no_ffmpeg(tmp_path, make, fragment):
    path = make(tmp_path)
    with pytest.raises(InputError) as info:
        features(path, 30, 30)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)) and fragment in message
    assert ffmpeg_children() == []


def test_a_video_soundtrack_is_read(tmp_path):
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "s16le", "-ar", "44100",
                    "-ac", "1", "-i", "pipe:0", "-f", "lavfi", "-i", "color=size=32x32:rate=10:duration=6",
                    "-shortest", "-c:v", "libx264", "-c:a", "aac", str(clip)],
                   input=(np.round(kicks() * 32767).astype("<i2")).tobytes(), check=True, capture_output=True)
    out = features(clip, 30, 180)
    beats = np.nonzero(out["beat"] == 1.0)[0]
    assert np.all(np.abs(beats - np.array(HITS) * 30) <= 1.0) and len(beats) == len(HITS)
    assert ffmpeg_children() == []


def test_demo_track_beats_are_its_kicks_not_its_hi_hats(tmp_path):
    script = ROOT / "schedules" / "make_beat.py"
    outs = []
    for name in ("a.flac", "b.flac"):
        proc = subprocess.run([sys.executable, str(script), str(tmp_path / name), "--times"], capture_output=True,
                              text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        outs.append(proc.stdout)
    assert (tmp_path / "a.flac").read_bytes() == (tmp_path / "b.flac").read_bytes()  # deterministic
    times = json.loads(outs[0])
    fps = 24
    out = features(tmp_path / "a.flac", fps, 8 * fps)
    beats = np.nonzero(out["beat"] == 1.0)[0]
    assert list(beats) == [round(k * fps) for k in times["kicks"]]
    x = audio.decode(tmp_path / "a.flac")
    assert np.allclose(beat_times(x, audio.SAMPLE_RATE), times["kicks"], atol=0.02)
    for t0 in times["hats"]:  # the hi-hats show in treble, half-way between beats
        h = round(t0 * fps)
        assert out["treble"][h - 1: h + 2].max() > 0.6 and out["beat"][h] < 0.05


def test_steady_sound_makes_no_beats_after_it_starts():
    t = np.arange(int(4 * RATE)) / RATE
    chord = 0.2 * sum(np.sin(2 * np.pi * f * t) for f in (110.0, 220.0, 277.2)) * (1 + 0.3 * np.sin(2 * np.pi * 5 * t))
    out = analyse(chord, RATE, 30, 120)
    assert set(np.nonzero(out["beat"] == 1.0)[0]) == {0}  # the sound starting from silence counts
    assert out["beat"][10:].max() == 0.0 and np.median(out["onset"]) < 0.05
    # loud white noise: its spectrum flickers, so a few random beats remain (documented);
    # without the running-median test it made ~15 in 4 s
    for seed in range(3):
        noise = 0.2 * np.random.default_rng(seed).standard_normal(t.size)
        assert len(beat_times(noise, RATE)) <= 4


def test_docs_list_every_setting_with_its_default():
    doc = (ROOT / "docs" / "audio.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]+)`", doc, re.M))
    defaults = AudioSettings().to_data()
    assert set(rows) == set(defaults)
    for key, value in defaults.items():
        assert yaml.safe_load(rows[key]) == value, key
