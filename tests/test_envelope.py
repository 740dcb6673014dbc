"""`attack` and `release`: the music's rms, bass, mid, treble and onset followed frame by frame
(keyframeable, seconds); 0 (the default) leaves them as they were, bit for bit."""

import math

import numpy as np
import pytest

from dreamvid.media.audio import ENVELOPED, envelope, features
from dreamvid.schedule.schedule import ScheduleError, load_schedule
from tests.conftest import ROOT, write_schedule

BEAT = ROOT / "schedules" / "beat.flac"  # 120 bpm: a kick every 0.5 s


def _schedule(tmp_path, **defaults):
    path = write_schedule(tmp_path, audio=str(BEAT), fps=24,
                          defaults={"iterations": 0, "zoom": "1 + 0.05*bass", **defaults},
                          segments=[{"frames": 48, "layers": {"mixed0": 1.0}},
                                    {"frames": 48, "layers": {"mixed0": 1.0}}])
    return load_schedule(path)


def test_envelope_follows_a_step_with_its_time_constants():
    step, attack, release = 1 / 24, 0.1, 0.3
    x = np.array([0.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    y = envelope(x, attack, release, step)
    up, down = math.exp(-step / attack), math.exp(-step / release)
    expected = [0.0, 1 - up, 1 - up**2, 1 - up**3, (1 - up**3) * down, (1 - up**3) * down**2]
    assert y == pytest.approx(expected, abs=1e-15)
    assert np.array_equal(envelope(x, 0.0, 0.0, step), x)  # 0: at once


def test_no_attack_or_release_keeps_the_features_bit_for_bit(tmp_path):
    s = _schedule(tmp_path)
    raw = features(BEAT, 24.0, 96, s.audio_settings)
    got = s.audio_features()
    assert all(np.array_equal(got[name], raw[name]) for name in raw)


def test_attack_slows_the_rise_and_release_the_fall_beat_untouched(tmp_path):
    raw = features(BEAT, 24.0, 96)
    slow = _schedule(tmp_path / "slow", attack=0.1, release=0.4).audio_features()
    kick = 12  # the kick at 0.5 s
    for name in ENVELOPED:
        if raw[name][kick] > 0.5:
            assert slow[name][kick] < 0.8 * raw[name][kick], name  # rises within the attack, not at once
            assert slow[name][kick + 3] > raw[name][kick + 3], name  # and falls slower after the hit
    assert np.array_equal(slow["beat"], raw["beat"])
    assert slow["bass"][kick] > 0 and slow["bass"].max() <= 1.0


def test_keyframed_attack_shapes_only_where_it_is_set(tmp_path):
    raw = features(BEAT, 24.0, 96)
    got = _schedule(tmp_path, attack="0: (0), 19: (0), 20: (0.2)").audio_features()
    assert np.array_equal(got["bass"][:20], raw["bass"][:20])  # 0 there: exactly the music
    assert not np.array_equal(got["bass"][20:48], raw["bass"][20:48])
    assert np.array_equal(got["bass"][48:68], raw["bass"][48:68])  # segment 1 starts over: 0 until its frame 19


def test_an_envelope_of_the_music_is_refused(tmp_path):
    with pytest.raises(ScheduleError) as info:
        _schedule(tmp_path, release="0.1 + 0.2*bass")
    assert "defaults.release: a formula of the music (bass) cannot shape the music; expected a number or a " \
           "formula of t, f, s, T, max_f, seed and fps" in str(info.value)
    with pytest.raises(ScheduleError) as info:
        _schedule(tmp_path, attack=11)
    assert "defaults.attack: 11 is out of range; expected a number 0..10" in str(info.value)
