"""dreamvid.schedule.schedule: parsing, per-frame evaluation and error reporting (no torch model needed)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pydantic
import pytest
import yaml

from dreamvid.core import defaults as D
from dreamvid.core.errors import InputError
from dreamvid.engine.catalogue import split_layer_key
from dreamvid.schedule.keyframes import Keyframes
from dreamvid.schedule.schedule import FrameParams, ScheduleError, load_schedule, parse_schedule
from dreamvid.schedule.spec import DefaultsSpec, json_schema, write_json_schema

REPO = Path(__file__).resolve().parents[1]

# the embedded inception_v3 layers, so these tests need no dreamvid.engine.model
CATALOGUE = {
    "conv2d_0": 32, "conv2d_1": 32, "conv2d_2": 64, "conv2d_3": 80, "conv2d_4": 192,
    "mixed0": 256, "mixed1": 288, "mixed2": 288, "mixed3": 768, "mixed4": 768, "mixed5": 768,
    "mixed6": 768, "mixed7": 768, "mixed8": 1280, "mixed9": 2048, "mixed10": 2048,
}


def fake_catalogue(model: str) -> dict[str, int]:
    if model not in ("inception_v3", "googlenet"):
        raise InputError(f"unknown model {model!r}")
    return CATALOGUE


# A valid schedule exercising most features; frames per segment: 101, 50, 20.
BASE = {
    "input": "logo.png",
    "output": "out/logo.mp4",
    "size": [640, 360],
    "fps": 25,
    "seed": 7,
    "encoder": {"codec": "libx264", "crf": 20},
    "defaults": {
        "iterations": "0:(10), 4:(11), 10:(20)",  # Deforum string
        "octaves": 4,
        "zoom": {0: 1.0, 100: 2.0},  # linear
        "rotate": 0.5,
        "translate": [1.5, "0:(0), 10:(-10)"],
    },
    "segments": [
        {"frames": 101, "layers": {"mixed0": 1.0, "mixed3": 0.5}},
        {
            "frames": 50,
            "layers": {"mixed3": 1.0, "mixed4:97": 0.5},
            "transition": 10,
            "octaves": 2,
            "objective": "mean",
            "interpolation": "step",
            "zoom": {0: 1.0, 20: 2.0, 40: 3.0},
            "iterations": 5,
            "translate": [0, 0],
        },
        {
            "frames": 20,
            "layers": {"mixed3": -1.0, "mixed0": 1.0},
            "transition": 2,
            "interpolation": "smooth",
            "rotate": {0: 0.0, 4: 10.0},
            "zoom": {5: 2.0, 15: 3.0},
            "iterations": 3,
            "translate": [0, 0],
        },
    ],
}


def write(tmp_path: Path, data, name: str = "demo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def load(path: Path, **kwargs):
    return load_schedule(path, catalogue=fake_catalogue, **kwargs)


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    (tmp_path / "logo.png").write_bytes(b"not decoded, only checked to exist")
    return tmp_path


@pytest.fixture
def schedule(base_dir: Path):
    return load(write(base_dir, BASE))


# ------------------------------------------------------------------------ valid schedules


def test_structure(schedule, base_dir):
    s = schedule
    assert s.source == base_dir / "demo.yaml"
    assert s.input_path == base_dir / "logo.png"
    assert s.output_path == base_dir / "out" / "logo.mp4"
    assert not s.output_path.parent.exists()  # created by the renderer, not the parser
    assert s.audio_path is None and s.model_weights_path is None
    assert s.size == (640, 360) and s.fps == 25.0 and isinstance(s.fps, float)
    assert (s.seed, s.model, s.device, s.checkpoint_every) == (7, "inception_v3", "auto", 50)
    assert (s.encoder.codec, s.encoder.crf, s.encoder.preset, s.encoder.pix_fmt) == ("libx264", 20, "medium", "yuv420p")
    assert s.total_frames == 171
    assert [(g.start, g.frames, g.transition) for g in s.segments] == [(0, 101, 0), (101, 50, 10), (151, 20, 2)]
    assert s.segments[1].layer_weights == {"mixed3": 1.0, "mixed4:97": 0.5}


def test_frozen(schedule):
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.fps = 60
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.params(0).zoom = 2
    with pytest.raises(pydantic.ValidationError):
        schedule.encoder.crf = 10


def test_segment_of_and_bounds(schedule):
    assert schedule.segment_of(0) == (0, 0)
    assert schedule.segment_of(100) == (0, 100)
    assert schedule.segment_of(101) == (1, 0)
    assert schedule.segment_of(170) == (2, 19)
    for bad in (-1, 171, 10_000):
        with pytest.raises(IndexError):
            schedule.params(bad)
        with pytest.raises(IndexError):
            schedule.segment_of(bad)


def _colour_defaults():
    d = DefaultsSpec()
    keyframed = ("colour_strength", "saturation_match", "input_blend", "smoothing", "clip_guard")
    values = {k: float(getattr(d, k).values(1)[0]) for k in keyframed}  # what the schedule reads
    return {"colour": d.colour, "colour_reference": d.colour_reference, **values}


def test_params_first_segment_inherits_defaults(schedule):
    p = schedule.params(0)
    assert p == FrameParams(index=0, segment=0, frame_in_segment=0, iterations=10, step=0.01, octaves=4,
                            octave_scale=1.4, jitter=32, zoom=1.0, rotate=0.5, translate=(1.5, 0.0),
                            objective="square", layers={"mixed0": 1.0, "mixed3": 0.5}, **_colour_defaults())
    # linear zoom {0: 1.0, 100: 2.0}
    assert schedule.params(25).zoom == pytest.approx(1.25)
    assert schedule.params(100).zoom == pytest.approx(2.0)
    # Deforum iterations "0:(10), 4:(11), 10:(20)", rounded half up: 10.25 -> 10, 10.5 -> 11, 15.5 -> 16
    assert [schedule.params(k).iterations for k in (1, 2, 4, 7, 10, 50)] == [10, 11, 11, 16, 20, 20]
    # translate components: constant x, keyframed y "0:(0), 10:(-10)"
    assert schedule.params(4).translate == pytest.approx((1.5, -4.0))
    assert schedule.params(60).translate == pytest.approx((1.5, -10.0))  # after the last key
    assert schedule.params(60).octaves == 4


def test_params_overrides_step_interpolation_and_transition(schedule):
    p = schedule.params(101)  # segment 1, frame 0: the transition starts from the previous layers
    assert (p.segment, p.frame_in_segment, p.octaves, p.objective, p.iterations) == (1, 0, 2, "mean", 5)
    assert p.layers == {"mixed0": 1.0, "mixed3": 0.5}
    assert p.rotate == 0.5  # inherited
    assert p.translate == (1.5, -10.0)  # overridden with (0, 0), but the camera starts from segment 0's last values
    assert schedule.params(106).translate == pytest.approx((0.75, -5.0))  # a = 5/10 of the way
    assert schedule.params(111).translate == (0.0, 0.0)  # k == transition
    # a = 4/10: mixed0 0.6*1, mixed3 0.6*0.5 + 0.4*1, mixed4:97 0.4*0.5
    assert schedule.params(105).layers == pytest.approx({"mixed0": 0.6, "mixed3": 0.7, "mixed4:97": 0.2})
    assert list(schedule.params(105).layers) == ["mixed0", "mixed3", "mixed4:97"]  # stable order
    assert schedule.params(111).layers == {"mixed3": 1.0, "mixed4:97": 0.5}  # k == transition
    # step interpolation {0: 1, 20: 2, 40: 3}: holds the previous key (frame 101 is segment 0's last zoom, 2)
    assert [schedule.params(101 + k).zoom for k in (0, 19, 20, 39, 40, 49)] == [2.0, 1.0, 2.0, 2.0, 3.0, 3.0]


def test_params_smooth_and_clamping(schedule):
    # smooth rotate {0: 0, 4: 10}: k=1 is t=0.25 -> 10 * 0.0625 * (3 - 0.5) = 1.5625, blended over the
    # 2-frame transition from segment 1's last value 0.5: k=0 -> 0.5, k=1 -> 0.5 + 1/2 (1.5625 - 0.5)
    assert schedule.params(151 + 0).rotate == 0.5
    assert schedule.params(151 + 1).rotate == pytest.approx(1.03125)
    assert schedule.params(151 + 2).rotate == pytest.approx(5.0)
    assert schedule.params(151 + 3).rotate == pytest.approx(8.4375)
    assert schedule.params(151 + 15).rotate == 10.0
    # zoom {5: 2, 15: 3}: first value before the first key, last after the last
    assert schedule.params(151).zoom == 3.0  # the transition starts at segment 1's last zoom
    assert schedule.params(151 + 2).zoom == 2.0
    assert schedule.params(151 + 10).zoom == pytest.approx(2.5)  # smooth at t=0.5 is 0.5
    assert schedule.params(170).zoom == 3.0
    # transition 2 at k=1: mixed3 0.5*1 + 0.5*-1 = 0 is dropped
    assert schedule.params(152).layers == pytest.approx({"mixed4:97": 0.25, "mixed0": 0.5})
    assert schedule.params(153).layers == {"mixed3": -1.0, "mixed0": 1.0}


def test_smooth_exact_value():
    """What the schedule reads per segment (Keyframes.values), at hand-computed frames."""
    kf = Keyframes(((2, 0.0), (6, 10.0), (10, 20.0)))
    smooth, linear, step = (kf.values(14, how) for how in ("smooth", "linear", "step"))
    assert smooth[3] == pytest.approx(1.5625) and smooth[7] == pytest.approx(11.5625)  # t = 0.25: 10 * 0.15625
    assert smooth[4] == pytest.approx(5.0)  # smoothstep(0.5) is 0.5
    assert linear[4] == 5.0 and linear[3] == 2.5 and step[5] == 0.0 and step[6] == 10.0
    for values in (smooth, linear, step):  # the first key's value before it, the last key's after it
        assert list(values[:3]) == [0.0, 0.0, 0.0] and list(values[10:]) == [20.0] * 4


def test_summary_and_to_dict(schedule):
    text = schedule.summary()
    assert "171 frames" in text and "6.84 s" in text and "640x360" in text and "25 fps" in text
    assert "mixed4:97" in text and "transition 10" in text
    data = schedule.to_dict()
    json.dumps(data)  # plain data
    assert data["input"] == str(schedule.input_path)
    assert data["segments"][1]["zoom"] == {"0": 1.0, "20": 2.0, "40": 3.0}
    assert data["segments"][0]["iterations"] == {"0": 10, "4": 11, "10": 20}
    assert data["segments"][0]["rotate"] == 0.5
    # canonical: it is itself a schedule that parses to the same thing
    assert parse_schedule(data, source=schedule.source, catalogue=fake_catalogue) == schedule


def test_minimal_schedule_defaults_and_noise(tmp_path):
    path = write(tmp_path, "input: noise\noutput: o.mp4\nsegments:\n  - {frames: 3, layers: {mixed9: 2}}\n")
    s = load(path)
    assert s.input_path is None and s.size == (1280, 720) and s.fps == 30.0 and s.seed == 0
    assert (s.encoder.codec, s.encoder.crf, s.encoder.pix_fmt) == ("auto", 18, "yuv420p")
    p = s.params(2)
    assert (p.iterations, p.step, p.octaves, p.octave_scale, p.jitter, p.zoom, p.rotate, p.translate) == \
        (10, 0.01, 3, 1.4, 32, 1.02, 0.0, (0.0, 0.0))
    assert p.objective == "square" and p.layers == {"mixed9": 2.0}


def test_yaml_anchors_and_channel_lists(base_dir):
    text = """
input: logo.png
output: o.mp4
segments:
  - &seg {frames: 10, layers: {"mixed4:1,2": 1.0, "conv2d_0 : 31": -0.5}}
  - <<: *seg
    zoom: "0:(1.0), 9:(1.1),"
"""
    s = load(write(base_dir, text))
    assert s.segments[1].layers == (("mixed4:1,2", 1.0), ("conv2d_0:31", -0.5))
    assert s.params(19).zoom == pytest.approx(1.1)
    assert split_layer_key("mixed4:1,2") == ("mixed4", (1, 2))
    assert split_layer_key("mixed4") == ("mixed4", None)


def test_check_files_false_and_other_files(tmp_path):
    data = dict(copy.deepcopy(BASE), audio="music.mp3", model_weights="w.pth")
    s = load(write(tmp_path, data), check_files=False)
    assert s.audio_path == tmp_path / "music.mp3" and s.model_weights_path == tmp_path / "w.pth"
    with pytest.raises(ScheduleError) as info:
        load(write(tmp_path, data))
    text = str(info.value)
    for key in ("input", "audio", "model_weights"):
        assert f": {key}: file not found" in text


# -------------------------------------------------------------------------- bad schedules


def edit(*changes):
    """BASE with changes applied: (key path tuple, value), value DELETE removes the key."""
    data = copy.deepcopy(BASE)
    for path, value in changes:
        target = data
        for part in path[:-1]:
            target = target[part]
        if value is DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return data


DELETE = object()

# (id, schedule (data or raw YAML text), key path or None, fragment of the message)
BAD = [
    ("unknown-top-key", edit((("outptu",), "x.mp4")), "outptu", "unknown key; did you mean 'output'?"),
    ("unknown-defaults-key", edit((("defaults", "zooom"), 1.0)), "defaults.zooom", "did you mean 'zoom'?"),
    ("unknown-encoder-key", edit((("encoder", "crff"), 1)), "encoder.crff", "did you mean 'crf'?"),
    ("unknown-segment-key", edit((("segments", 0, "layer"), {"mixed0": 1})), "segments[0].layer", "unknown key"),
    ("missing-input", edit((("input",), DELETE)), "input", "missing required key"),
    ("fps-wrong-type", edit((("fps",), "fast")), "fps", "got 'fast'; expected a number"),
    ("frames-wrong-type", edit((("segments", 0, "frames"), 10.5)), "segments[0].frames", "expected an integer"),
    ("seed-bool", edit((("seed",), True)), "seed", "got true; expected an integer"),
    ("segment-not-mapping", edit((("segments", 1), 150)), "segments[1]", "expected a mapping"),
    ("frames-zero", edit((("segments", 0, "frames"), 0)), "segments[0].frames", "0 is out of range"),
    ("frames-negative", edit((("segments", 2, "frames"), -5)), "segments[2].frames", "-5 is out of range"),
    ("zoom-zero", edit((("defaults", "zoom"), 0)), "defaults.zoom", "expected a number > 0"),
    ("zoom-keyframe-negative", edit((("segments", 1, "zoom"), {0: 1.0, 40: -1.0})),
     "segments[1].zoom.40", "expected a number > 0"),
    ("iterations-float", edit((("defaults", "iterations"), 10.5)), "defaults.iterations", "expected an integer >= 0"),
    ("octave-scale-one", edit((("segments", 0, "octave_scale"), "0:(1.0)")), "segments[0].octave_scale.0", "> 1"),
    ("odd-size-yuv420p", edit((("size",), [641, 360])), "size", "641x360 has an odd side"),
    ("size-too-small", edit((("size",), [16, 360])), "size[0]", "16 is out of range"),
    ("size-huge", edit((("size",), [640, 10000])), "size[1]", "10000 is out of range"),
    ("size-one-number", edit((("size",), [640])), "size", "too few items; expected [width, height]"),
    ("fps-zero", edit((("fps",), 0)), "fps", "0 is out of range; expected a number > 0"),
    ("fps-too-high", edit((("fps",), 1000)), "fps", "1000 is out of range"),
    ("empty-segments", edit((("segments",), [])), "segments", "got an empty list"),
    ("unknown-layer", edit((("segments", 1, "layers"), {"mixed9x": 1.0})),
     "segments[1].layers.mixed9x", "unknown layer 'mixed9x' (did you mean 'mixed9'?); expected one of conv2d_0,"),
    ("channel-out-of-range", edit((("segments", 1, "layers"), {"mixed4:800": 1.0})),
     "segments[1].layers.mixed4:800", "channel 800 out of range; expected 0..767"),
    ("bad-layer-key", edit((("segments", 0, "layers"), {"mixed4:x": 1.0})), "segments[0].layers.mixed4:x",
     "bad layer key"),
    ("layer-weight-string", edit((("segments", 0, "layers"), {"mixed4": "high"})), "segments[0].layers.mixed4",
     "expected a finite number"),
    ("empty-layers", edit((("segments", 0, "layers"), {})), "segments[0].layers", "no layers"),
    ("all-zero-weights", edit((("segments", 0, "layers"), {"mixed0": 0, "mixed3": 0.0})), "segments[0].layers",
     "all layer weights are zero"),
    ("keyframe-beyond-segment", edit((("segments", 1, "zoom"), {0: 1.0, 50: 2.0})), "segments[1].zoom.50",
     "keyframe 50 is beyond the segment; expected a frame < 50"),
    ("keyframe-deforum-beyond", edit((("segments", 2, "rotate"), "0:(0), 20:(1)")), "segments[2].rotate.20",
     "expected a frame < 20"),
    ("defaults-keyframe-beyond-inheritor", edit((("defaults", "rotate"), {0: 0, 60: 1})), "defaults.rotate.60",
     "keyframe 60 is beyond the end of segments[1] (50 frames), which inherits it; expected a frame < 50"),
    ("defaults-keyframe-beyond-inheritors", edit((("defaults", "rotate"), {0: 0, 60: 1}), (("segments", 2, "rotate"), None)),
     "defaults.rotate.60", "beyond the end of segments[1] (50 frames), segments[2] (20 frames), which inherit it"),
    ("unsorted-keyframes", edit((("segments", 1, "zoom"), {20: 2.0, 0: 1.0})), "segments[1].zoom.0",
     "keyframe 0 comes after 20; expected keyframes in increasing order"),
    ("negative-keyframe", edit((("segments", 1, "zoom"), {-1: 1.0, 10: 2.0})), "segments[1].zoom.-1",
     "negative keyframe -1"),
    ("empty-keyframes", edit((("defaults", "step"), {})), "defaults.step", "empty keyframe mapping"),
    ("bad-deforum", edit((("segments", 1, "zoom"), "0:(1.02) 49:(1.06)")), "segments[1].zoom",
     "bad keyframe entry '0:(1.02) 49:(1.06)'"),
    ("deforum-bad-formula", edit((("defaults", "zoom"), "0:(1.0+)")), "defaults.zoom", "keyframe 0: not a valid expression"),
    ("formula-unknown-name", edit((("defaults", "zoom"), "1 + bogus")), "defaults.zoom", "unknown name 'bogus'"),
    ("translate-component", edit((("defaults", "translate"), [0, [1, 2]])), "defaults.translate[1]", "got a list"),
    ("translate-length", edit((("defaults", "translate"), [0, 1, 2])), "defaults.translate", "got 3 items"),
    ("transition-beyond-frames", edit((("segments", 2, "transition"), 21)), "segments[2].transition",
     "21 is longer than the segment; expected 0..20"),
    ("transition-first-segment", edit((("segments", 0, "transition"), 5)), "segments[0].transition",
     "nothing to blend from"),
    ("crf-out-of-range", edit((("encoder", "crf"), 60)), "encoder.crf", "60 is out of range; expected an integer 0..51"),
    ("unknown-codec", edit((("encoder", "codec"), "x264")), "encoder.codec",
     "got 'x264' (did you mean 'libx264'?); expected one of auto, libx264,"),
    ("bad-objective", edit((("segments", 0, "objective"), "squares")), "segments[0].objective",
     "did you mean 'square'?"),
    ("bad-device", edit((("device",), "gpu")), "device", "got 'gpu'; expected auto, cpu, cuda or cuda:N"),
    ("unknown-model", edit((("model",), "resnet")), "model", "unknown model 'resnet'; expected a model name: inception_v3,"),
    ("missing-input-file", edit((("input",), "nope.png")), "input", "file not found"),
    ("missing-audio-file", edit((("audio",), "nope.mp3")), "audio", "file not found"),
    ("duplicate-key", "input: logo.png\noutput: o.mp4\nsegments:\n  - frames: 3\n    layers:\n"
                      "      mixed0: 1\n      mixed0: 2\n", "segments[0].layers.mixed0",
     "duplicate key (line 7, first at line 6)"),
    ("duplicate-top-key", "input: logo.png\noutput: o.mp4\nfps: 30\nfps: 25\nsegments: []\n", "fps", "duplicate key"),
    ("python-tag", "input: !!python/object/apply:os.system ['echo hi']\noutput: o.mp4\nsegments: []\n", "input",
     "tag '!!python/object/apply:os.system' is not allowed"),
    ("not-yaml", "input: logo.png\n  output: [o.mp4\nsegments: {", None, "line 2, column 9: not valid YAML"),
    ("yaml-list", "- input: logo.png\n- output: o.mp4\n", None, "got a list at the top level; expected a mapping"),
    ("yaml-scalar", "just some text\n", None, "got 'just some text' at the top level"),
    ("empty-file", "", None, "got an empty file"),
    ("non-string-key", "5: 1\ninput: logo.png\noutput: o.mp4\nsegments: [{frames: 1, layers: {mixed0: 1}}]\n",
     "5", "unknown key"),
]


@pytest.mark.parametrize("data, key_path, fragment", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_schedule(base_dir, data, key_path, fragment):
    path = write(base_dir, data)
    with pytest.raises(ScheduleError) as info:
        load(path)
    err = info.value
    assert isinstance(err, InputError) and err.exit_code == 2
    assert str(err) == "\n".join(err.messages)
    prefix = f"{path}: {key_path}: " if key_path else f"{path}: "
    matching = [m for m in err.messages if m.startswith(prefix) and fragment in m]
    assert matching, f"no message starts with {prefix!r} and contains {fragment!r}:\n{err}"
    for message in err.messages:  # every message: one line, "<file>: ...; expected ..."
        assert message.startswith(f"{path}: ") and "\n" not in message, message
        assert "; expected" in message or "; did you mean" in message, message


def test_bad_case_count():
    assert len({case[0] for case in BAD}) == len(BAD) >= 15


def test_all_errors_reported(base_dir):
    data = edit(
        (("outptu",), "x"),
        (("input",), "missing.png"),
        (("encoder", "crf"), 99),
        (("defaults", "zoom"), -1),
        (("segments", 0, "frames"), 0),
        (("segments", 1, "layers"), {"mixed9x": 1.0, "mixed4:9999": 1.0}),
        (("segments", 2, "zoom"), {5: 1.0, 30: 2.0}),
    )
    path = write(base_dir, data)
    with pytest.raises(ScheduleError) as info:
        load(path)
    paths = ["outptu", "input", "encoder.crf", "defaults.zoom", "segments[0].frames",
             "segments[1].layers.mixed9x", "segments[1].layers.mixed4:9999", "segments[2].zoom.30"]
    for key_path in paths:
        assert any(m.startswith(f"{path}: {key_path}: ") for m in info.value.messages), (key_path, str(info.value))
    assert len(info.value.messages) == len(paths)


def test_whole_schedule_errors_reported_together(base_dir):
    data = edit((("size",), [641, 361]), (("segments", 0, "transition"), 1), (("defaults", "rotate"), {0: 1, 60: 2}))
    path = write(base_dir, data)
    with pytest.raises(ScheduleError) as info:
        load(path)
    assert [m.split(": ")[1] for m in info.value.messages] == ["size", "segments[0].transition", "defaults.rotate.60"]


def test_duplicate_keys_all_reported(base_dir):
    path = write(base_dir, "input: a\ninput: b\ndefaults: {zoom: 1, zoom: 2}\noutput: o\nsegments: []\n")
    with pytest.raises(ScheduleError) as info:
        load(path)
    assert len(info.value.messages) == 2
    assert info.value.messages[1].startswith(f"{path}: defaults.zoom: duplicate key")


def test_unreadable_file(tmp_path):
    with pytest.raises(ScheduleError, match="missing.yaml: cannot read the schedule"):
        load(tmp_path / "missing.yaml")


def test_parse_schedule_messages_use_source(tmp_path):
    with pytest.raises(ScheduleError) as info:
        parse_schedule({"input": "noise", "output": "o.mp4", "segments": [{"frames": 0, "layers": {"mixed0": 1}}]},
                       source=tmp_path / "batch.yaml", catalogue=fake_catalogue)
    assert info.value.messages == [f"{tmp_path / 'batch.yaml'}: segments[0].frames: 0 is out of range; "
                                   "expected an integer 1..1000000 (frames in this segment)"]


# --------------------------------------------------------------------------- JSON schema


def test_committed_json_schema_is_current():
    committed = json.loads((REPO / "schedules" / "schedule.schema.json").read_text())
    assert committed == json_schema(), "regenerate: python3 -c 'from dreamvid.schedule.spec import " \
                                       "write_json_schema as w; w(\"schedules/schedule.schema.json\")'"


def test_schema_command_prints_the_json_schema(capsys):
    """``dreamvid schema`` (it imported json_schema from the module it had moved out of)."""
    from dreamvid import cli

    assert cli.main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


def test_write_json_schema(tmp_path):
    write_json_schema(tmp_path / "s.json")
    schema = json.loads((tmp_path / "s.json").read_text())
    assert schema == json_schema()
    assert schema["required"] == ["input", "segments"]  # output: only to render
    assert schema["additionalProperties"] is False
    assert set(schema["$defs"]["DefaultsSpec"]["properties"]) >= {"zoom", "translate", "interpolation"}


def test_json_schema_accepts_valid_and_rejects_bad(schedule):
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    as_json = json.loads(json.dumps(BASE))  # keyframe keys become strings, as editors see them
    assert list(validator.iter_errors(as_json)) == []
    assert list(validator.iter_errors(schedule.to_dict())) == []
    for bad in (edit((("defaults", "zooom"), 1)), edit((("segments",), [])), edit((("encoder", "crf"), 60)),
                edit((("segments", 0, "layers"), {"mixed4:x": 1}))):
        assert list(validator.iter_errors(json.loads(json.dumps(bad))))


# ------------------------------------------------------------------ camera continuity (issue 19)

_CAMERA_SEGMENTS = [
    {"frames": 10, "layers": {"mixed3": 1.0}, "zoom": 1.02, "rotate": {0: 0.0, 9: 1.0}, "translate": [2, 0]},
    {"frames": 10, "layers": {"mixed4": 1.0}, "zoom": 1.08, "rotate": -1.0, "translate": [0, 3],
     "center": [0.25, 0.75], "transition": 5},
]


def _camera_schedule(tmp_path, segments):
    return parse_schedule({"input": "noise", "segments": segments}, source=tmp_path / "s.yaml")


def _camera(p):
    return [p.zoom, p.rotate, *p.translate, *p.center]


def test_a_transition_blends_the_camera_without_a_jump(tmp_path):
    s = _camera_schedule(tmp_path, _CAMERA_SEGMENTS)
    values = np.array([_camera(s.params(n)) for n in range(s.total_frames)])
    steps = np.abs(np.diff(values, axis=0))
    boundary = steps[9]  # frame 9 -> frame 10, the second segment's first frame
    assert (boundary == 0).all()  # it starts from the first segment's last values
    assert np.allclose(steps[10:15, 0], (1.08 - 1.02) / 5)  # then moves in equal steps to its own values
    assert np.allclose(values[15], [1.08, -1.0, 0, 3, 0.25, 0.75]) and (steps[15:] == 0).all()
    assert s.camera_jumps() == []


def test_a_camera_jump_without_a_transition_is_named(tmp_path):
    segments = [dict(_CAMERA_SEGMENTS[0]), {**_CAMERA_SEGMENTS[1], "transition": 0}]
    s = _camera_schedule(tmp_path, segments)
    jumps = s.camera_jumps()
    assert [j.split(": ")[2].split(" jumps")[0] for j in jumps] == ["zoom", "rotate", "translate", "center"]
    assert "zoom jumps from 1.02 to 1.08 at frame 10" in jumps[0] and "segments[1]" in jumps[0]
    assert "center jumps from [0.5, 0.5] to [0.25, 0.75]" in jumps[3]
    assert s.params(10).zoom == 1.08  # a cut is allowed


def test_validate_warns_about_a_camera_jump(tmp_path):
    import dreamvid
    from tests.conftest import run_here, write_schedule

    path = write_schedule(tmp_path, segments=[{"frames": 3, "layers": {"mixed3": 1.0}},
                                              {"frames": 3, "layers": {"mixed3": 1.0}, "zoom": 1.1}])
    r = run_here("validate", path)
    assert r.returncode == 0, r.stderr
    assert "dreamvid: warning: s.yaml: segments[1]: zoom jumps from 1.05 to 1.1 at frame 3" in r.stderr
    seen = []
    dreamvid.validate(path, callback=seen.append)
    assert [p.event for p in seen] == ["warning"] and "zoom jumps" in seen[0].message
    r = run_here("validate", write_schedule(tmp_path / "smooth"))  # the same camera in both segments: quiet
    assert r.returncode == 0 and "warning" not in r.stderr


# ---------------------------------------------------------------------------- versions


def test_a_schedule_may_say_its_version_and_one_for_a_newer_dreamvid_is_one_line(tmp_path):
    from tests.conftest import write_schedule

    assert load_schedule(write_schedule(tmp_path / "v1", version=1)).total_frames == 12
    path = write_schedule(tmp_path / "v2", version=2, shiny_new_key={"a": 1}, segments=[{"frames": 3}])
    with pytest.raises(ScheduleError) as info:
        load_schedule(path)
    assert info.value.messages == [(f"{path}: version: 2 is a schedule format newer than this dreamvid "
                                    f"({D.VERSION}) reads; expected version 1, or upgrade dreamvid to read it")]
    for bad in (0, "1", 1.0):
        with pytest.raises(ScheduleError) as info:
            load_schedule(write_schedule(tmp_path / f"bad{bad!r}", version=bad))
        assert "version:" in str(info.value) and len(info.value.messages) == 1, bad
