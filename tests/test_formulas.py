"""Keyframes that follow the music and formulas, through the schedule (dreamvid.schedule.expressions and
dreamvid.media.audio are tested on their own in test_expressions.py and test_audio.py).

A formula is parsed once, at validate time; its values at every frame are range-checked then;
audio features drive them frame by frame; a resumed audio-driven render is the same video.
"""

import csv
import math
import subprocess
import sys
import time
import wave

import numpy as np
import pytest

from dreamvid import cli
from dreamvid.schedule.schedule import ScheduleError, load_schedule
from tests.conftest import ENV, run_cli, write_schedule

HITS = [0.5, 1.3, 2.1, 3.0]  # seconds: the kicks of the test track


def write_track(path, hits=HITS, seconds=4.0, rate=22050, treble=False):
    """A mono WAV: a decaying 55 Hz kick at each hit (or hi-hat noise when ``treble``), silence between."""
    t = np.arange(int(seconds * rate)) / rate
    x = np.zeros_like(t)
    rng = np.random.default_rng(0)
    for h in hits:
        after = t >= h
        env = np.exp(-(t[after] - h) / 0.08)
        tone = rng.standard_normal(after.sum()) if treble else np.sin(2 * np.pi * 55 * (t[after] - h))
        x[after] += 0.8 * env * tone
    if treble:  # hi-hats: the noise above 3 kHz only
        spectrum = np.fft.rfft(x)
        spectrum[np.fft.rfftfreq(x.size, 1 / rate) < 3000] = 0
        x = 0.3 * np.fft.irfft(spectrum, x.size)  # and quiet enough not to clip (clipping makes bass)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def validate(capsys, path, *extra) -> tuple[int, str, str]:
    code = cli.main(["validate", str(path), *map(str, extra)])
    out, err = capsys.readouterr()
    return code, out, err


def test_bass_hits_drive_the_zoom_frame_by_frame(tmp_path, capsys):
    fps = 10
    write_track(tmp_path / "kicks.wav")
    path = write_schedule(tmp_path, fps=fps, audio="kicks.wav", defaults={"zoom": "1.0 + 0.05*bass"},
                          segments=[{"frames": 40, "layers": {"mixed3": 1.0}}])  # fmt: skip
    code, _, err = validate(capsys, path, "--params", tmp_path / "p.csv")
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [int(r["frame"]) for r in rows] == list(range(40))
    zoom = np.array([float(r["zoom"]) for r in rows])
    peaks = [n for n in range(1, 39) if zoom[n] >= zoom[n - 1] and zoom[n] > zoom[n + 1] and zoom[n] > 1.03]
    assert len(peaks) == len(HITS), zoom.round(3)
    for peak, hit in zip(peaks, HITS):
        assert abs(peak - hit * fps) <= 1, (peaks, HITS)
    far = [n for n in range(40) if min(abs(n - h * fps) for h in HITS) >= 4]
    assert far and zoom[far].max() < 1.01  # between hits it stays near the base value
    assert set(rows[0]) >= {"frame", "zoom", "rotate", "step", "iterations", "translate_x", "layers.mixed3"}


def test_treble_does_not_drive_bass(tmp_path):
    write_track(tmp_path / "hats.wav", treble=True)
    s = load_schedule(write_schedule(tmp_path, fps=10, audio="hats.wav", defaults={"zoom": "1 + 0.05*bass",
                                     "rotate": "treble"}, segments=[{"frames": 40, "layers": {"mixed3": 1.0}}]))
    zoom = np.array([s.params(n).zoom for n in range(40)])
    rotate = np.array([s.params(n).rotate for n in range(40)])
    assert zoom.max() < 1.005 and rotate.max() > 0.5


def test_a_formula_gives_the_value_computed_by_hand(tmp_path):
    fps = 15
    segments = [{"frames": 10, "layers": {"mixed0": 1.0}},
                {"frames": 30, "layers": {"mixed3": 1.0}, "zoom": "1 + 0.02*sin(2*pi*t/30) + f/1000",
                 "rotate": "0: (0), 20: (s*T/100)", "iterations": "2 + (t >= 25)"}]  # fmt: skip
    s = load_schedule(write_schedule(tmp_path, fps=fps, segments=segments))
    for n in (10, 17, 33):
        f = n - 10
        p = s.params(n)
        assert p.zoom == pytest.approx(1 + 0.02 * math.sin(2 * math.pi * n / 30) + f / 1000, abs=1e-12)
        assert p.iterations == (3 if n >= 25 else 2)
        at_key = (30 / fps) * 40 / 100  # rotate's formula at its key (frame 20 of the segment, t = 30)
        expected = at_key * f / 20 if f < 20 else (n / fps) * 40 / 100
        assert p.rotate == pytest.approx(expected, abs=1e-12)


HOSTILE = [
    "__import__('os').system('touch pwned')",
    "().__class__.__bases__",
    "lambda: 1",
    "9**9**9",
    "10**10000",
    "1" * 1_000_000,
    "[x for x in (1, 2)]",
    "open('pwned', 'w')",
    "sin.__globals__",
    "exec('1')",
    "t if t else f",
    "max(*t)",
    "(" * 5000 + "1" + ")" * 5000,
    "os",
    "sin(t, key=1)",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_formulas_are_refused_in_one_line_and_nothing_runs(tmp_path, capsys, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    path = write_schedule(tmp_path, defaults={"zoom": text})
    code, _, err = validate(capsys, path)
    assert code == 2
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith(f"dreamvid: error: {path}: defaults.zoom: "), err
    assert "; expected" in lines[0] or "not allowed" in lines[0]
    assert not (tmp_path / "pwned").exists()


def test_values_out_of_range_name_the_key_the_frame_and_the_value(tmp_path, capsys):
    path = write_schedule(tmp_path, segments=[{"frames": 6, "layers": {"mixed0": 1.0}},
                                              {"frames": 30, "layers": {"mixed3": 1.0}, "zoom": "1 - f/20"}])
    code, _, err = validate(capsys, path)
    assert code == 2
    assert "segments[1].zoom: the formula gives 0 at frame 26 (frame 20 of segments[1]); expected a number > 0" in err
    path = write_schedule(tmp_path, defaults={"step": "log(t - 3)"})
    code, _, err = validate(capsys, path)
    assert code == 2 and "defaults.step: the formula gives nan at frame 0" in err


def test_music_variables_need_audio(tmp_path, capsys):
    code, _, err = validate(capsys, write_schedule(tmp_path, defaults={"zoom": "1 + 0.1*beat"}))
    assert code == 2
    assert "defaults.zoom: uses beat of the music, but the schedule has no audio; expected `audio:`" in err


def test_an_audio_driven_render_resumes_to_the_same_video(tmp_path):
    from tests.test_resume import same_video, wait_for_checkpoint

    write_track(tmp_path / "kicks.wav", seconds=3.0, hits=[0.4, 1.1, 1.9])
    kw = dict(fps=8, audio="kicks.wav", defaults={"iterations": 1, "octaves": 1, "jitter": 4, "step": "0.01 + 0.02*beat",
              "zoom": "1.01 + 0.06*bass"}, segments=[{"frames": 20, "layers": {"mixed0": 1.0}}])  # fmt: skip
    reference = write_schedule(tmp_path / "ref", **kw)
    (tmp_path / "ref" / "kicks.wav").write_bytes((tmp_path / "kicks.wav").read_bytes())
    assert run_cli("render", reference, "--quiet").returncode == 0

    path = write_schedule(tmp_path, **kw)
    work = tmp_path / "out" / "video.mp4.parts"
    proc = subprocess.Popen([sys.executable, "-m", "dreamvid", "render", str(path), "--quiet"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for_checkpoint(work, proc)
    time.sleep(0.3)
    proc.kill()
    proc.communicate()
    if proc.returncode == -9:  # killed before the end: a changed track is another schedule
        write_track(tmp_path / "kicks.wav", seconds=3.0, hits=[0.6, 1.1, 1.9])
        changed = run_cli("render", path)
        assert changed.returncode == 2 and "the audio (its content or audio_features) changed" in changed.stderr
        write_track(tmp_path / "kicks.wav", seconds=3.0, hits=[0.4, 1.1, 1.9])
    r = run_cli("render", path)
    assert r.returncode == 0, r.stderr
    assert same_video(tmp_path / "out" / "video.mp4", tmp_path / "ref" / "out" / "video.mp4")


def test_the_audio_demo_schedule_is_valid(capsys):
    from tests.conftest import ROOT

    s = load_schedule(ROOT / "schedules" / "audio-demo.yaml")
    assert s.audio_driven and s.audio_path.is_file()
    zoom = [s.params(n).zoom for n in range(s.total_frames)]
    assert max(zoom) > 1.04 and min(zoom) < 1.02  # the kicks show
    with pytest.raises(ScheduleError):
        load_schedule(ROOT / "schedules" / "audio-demo.yaml", catalogue={"conv": 3})  # layers checked as usual
