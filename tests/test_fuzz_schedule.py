"""Fuzzing the files dreamvid reads as text: schedules, batch job files, formulas (issue 22).

The property, for every input: ``validate`` (and the parsing API) either accepts it or raises
dreamvid's bad-input error (an InputError: exit status 2, one line per problem, each naming
the file); never another exception, never longer than a bound, never a file written. A sample also goes through the command (``python -m dreamvid validate``): exit 0 or
2, ``dreamvid: error:`` lines, no traceback. Budget and long run: tests/fuzzing.py.
"""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from dreamvid import api
from dreamvid.batch.jobs import JOB_KEYS, load_job
from dreamvid.media.ffmpeg import ffmpeg_exe
from dreamvid.schedule.expressions import (
    Expression,
    ExpressionError,
    frame_variables,
    is_keyframe_string,
    parse_keyframe_string,
    parse_value,
)
from dreamvid.schedule.spec import ScheduleSpec
from tests.conftest import ENV
from tests.fuzzing import (
    Hang,
    bounded,
    budget,
    check_refusal,
    count,
    fuzz,
    fuzz_item,  # noqa: F401 - an autouse fixture (Hypothesis statistics)
    listing,
)
from tests.strategies import ANY_VALUE, EXPRESSIONS, SCHEDULES, TEXT, YAML_TEXT, _from_schema, dump

GOOD = {"input": "in.png", "output": "out/v.mp4", "size": [64, 64], "fps": 10, "precision": "fp32",
        "segments": [{"frames": 3, "layers": {"mixed0": 1.0}}]}  # fmt: skip
GOOD_AUDIO = {**GOOD, "audio": "a.wav", "defaults": {"zoom": "1 + 0.01*bass + 0.02*beat", "rotate": "onset - mid"}}
GOOD_CLIP = {**GOOD, "input": "c.mp4", "audio": "input", "fps": "auto"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A schedule's folder: a tiny image, a short sound, a 6-frame clip with sound and a good
    base schedule."""
    folder = tmp_path_factory.mktemp("fuzz")
    cv2.imwrite(str(folder / "in.png"), np.full((8, 8, 3), 128, np.uint8))
    write_wav(folder / "a.wav")
    subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-f", "lavfi", "-i",
                    "testsrc=size=32x32:rate=10:duration=0.6", "-i", folder / "a.wav", "-shortest", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", folder / "c.mp4"], check=True)
    (folder / "base.yaml").write_text(yaml.safe_dump(GOOD))
    return folder


def write_wav(path, seconds: float = 0.5, rate: int = 8000) -> None:
    import wave

    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 110 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(samples.tobytes())


def refused_or_accepted(call, folder, *names) -> object:
    """Run ``call()``: its result, or None when it raised dreamvid's bad-input error naming one
    of ``names``; any other exception, a hang or a file written in ``folder`` fails."""
    before = listing(folder)
    try:
        with bounded():
            return call()
    except Hang:
        raise
    except BaseException as err:  # noqa: BLE001 - checked, or raised again
        check_refusal(err, names)
        return None
    finally:
        assert listing(folder) == before, "validating wrote a file"


def validate_file(folder, text: str | bytes) -> None:
    path = folder / "s.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    refused_or_accepted(lambda: api.validate(str(path)), folder, str(path), "/")


def validate_data(folder, data) -> None:
    """The mapping through the API (as the studio and notebooks give it), then as a file."""
    refused_or_accepted(lambda: api.validate(api.load_schedule(data, base_dir=folder)), folder, "<schedule>", "/")
    validate_file(folder, dump(data))


# ---------------------------------------------------------------------------- schedules


def test_fuzz_bytes_as_schedule(folder):
    @budget(200)
    @given(st.one_of(st.binary(max_size=300), st.text(max_size=100).map(lambda t: t.encode("utf-16-le")),
                     st.text(max_size=100).map(lambda t: t.encode("utf-16")),
                     st.binary(max_size=64).map(lambda b: dump(GOOD).encode() + b)))
    @example(b"input: noise\x00\nsegments: []\n")  # the NUL byte
    @example("input: noise".encode("utf-16-le"))  # UTF-16 without a BOM
    def bytes_as_schedule(data):
        count("bytes_as_schedule")
        validate_file(folder, data)

    fuzz(bytes_as_schedule)


def test_fuzz_text_as_schedule(folder):
    @budget(200)
    @given(st.one_of(st.text(max_size=300), st.text(st.characters(codec="utf-8"), max_size=200),
                     st.tuples(st.just(dump(GOOD)), st.text(max_size=40)).map("".join)))
    @example("\ufeffinput: noise\nsegments: [{frames: 1, layers: {mixed0: 1}}]\n")  # a BOM
    @example("input: noise\x85\u2028\x1b\nsegments: []")  # line breaks YAML knows, an escape character
    def text_as_schedule(text):
        count("text_as_schedule")
        validate_file(folder, text)

    fuzz(text_as_schedule)


def test_fuzz_yaml_documents(folder):
    @budget(60)
    @given(YAML_TEXT)
    def yaml_documents(text):
        count("yaml_documents")
        validate_file(folder, text)
        # the API's YAML text path (the studio's editor); a line break makes it text, not a path
        refused_or_accepted(lambda: api.load_schedule(text + "\n", base_dir=folder), folder, "<schedule>", "/")

    fuzz(yaml_documents)


def test_fuzz_structured_schedules(folder):
    @budget(80)
    @given(SCHEDULES)
    def structured_schedules(data):
        count("structured_schedules")
        validate_data(folder, data)

    fuzz(structured_schedules)


def test_fuzz_valid_schedules_one_key_changed(folder):
    """A good schedule (an image, music driving formulas, or a clip with its sound as the
    input) with one key (any key of the schema, nested ones included) replaced by what the
    schema allows there or by anything: the deep checks run (the audio analysis, the clip's
    probe), not only the first."""
    leaves = _leaves()

    @budget(80)
    @given(st.sampled_from([GOOD, GOOD_AUDIO, GOOD_CLIP]), st.sampled_from(leaves).flatmap(
        lambda leaf: st.tuples(st.just(leaf), st.one_of(_from_schema(leaf[1], leaf[0][-1]), ANY_VALUE))))
    def one_key_changed(base, change):
        count("one_key_changed")
        (path, _), value = change
        data = yaml.safe_load(yaml.safe_dump(base))
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
        node[path[-1]] = value
        validate_data(folder, data)

    fuzz(one_key_changed)


def _leaves() -> list[tuple[tuple, dict]]:
    """(key path in GOOD, schema fragment) for every key the schema has, nested ones included."""
    from tests.strategies import SCHEMA, _resolve

    out = []
    for key, frag in SCHEMA["properties"].items():
        sub = _resolve(frag)
        if "properties" in sub:
            out += [((key, k), v) for k, v in sub["properties"].items()]
        out.append(((key,), frag))
    segment = SCHEMA["$defs"]["SegmentSpec"]["properties"]
    out += [(("segments", 0, k), v) for k, v in segment.items()]
    assert {p[0] for p, _ in out} == set(ScheduleSpec.model_fields)
    return out


def test_fuzz_command_line(folder, tmp_path):
    """A sample through the real command: exit 0 or 2, one line per problem, no traceback."""
    (tmp_path / "in.png").write_bytes((folder / "in.png").read_bytes())

    @budget(3)
    @given(st.one_of(YAML_TEXT, SCHEDULES.map(dump), st.binary(max_size=200).map(bytes.hex)))
    @example("input: noise\x00\nsegments: []\n")
    def command_line(text):
        count("command_line")
        path = tmp_path / "s.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        before = listing(tmp_path)
        proc = subprocess.run([sys.executable, "-m", "dreamvid", "validate", path.name], capture_output=True,
                              text=True, cwd=tmp_path, env=ENV, timeout=120)
        assert listing(tmp_path) == before, "validate wrote a file"
        assert proc.returncode in (0, 2), proc.stderr
        assert "Traceback" not in proc.stderr
        if proc.returncode == 2:
            first, *more = proc.stderr.splitlines()
            assert first.startswith(f"dreamvid: error: {path.name}"), proc.stderr
            assert all(line.startswith(path.name) for line in more), proc.stderr

    fuzz(command_line)


# ----------------------------------------------------------------------------- formulas


def test_fuzz_expressions():
    """A formula or Deforum string is refused with one line, or gives values for every frame
    without raising (NaN/inf are the caller's to check)."""
    variables = frame_variables(3, 7, 20, 12.0, {name: np.linspace(0, 1, 20) for name in
                                                 ("rms", "bass", "mid", "treble", "onset", "beat")})

    @budget(300)
    @given(EXPRESSIONS)
    @example("9**9**9")
    @example("0: (1), " + "9" * 5000 + ": (2)")
    def expressions(text):
        count("expressions")
        try:
            with bounded():
                values = parse_keyframe_string(text) if is_keyframe_string(text) else [(0, parse_value(text))]
        except ExpressionError as err:
            assert "\n" not in str(err) and str(err)
            return
        for _, value in values:
            if isinstance(value, Expression):
                out = value.evaluate(variables)
                assert np.shape(out) == (7,)
            else:
                assert isinstance(value, float)

    fuzz(expressions)


# ---------------------------------------------------------------------------- job files

JOB_VALUES = st.one_of(
    st.lists(st.one_of(st.integers(0, 3), st.floats(1, 2), st.sampled_from(["in.png", "noise", "64x64"]),
                       st.just([64, 96]), ANY_VALUE), min_size=0, max_size=3),
    ANY_VALUE,
)
JOB_KEY = st.one_of(
    st.sampled_from([*JOB_KEYS, "seed", "fps", "defaults.zoom", "segments.0.frames", "segments.9.zoom",
                     "segments.0.layers.mixed3", "seed.x", "defaults.zoom.0", "segments.²", "segments.-1",
                     "input", "size", "encoder.crf", "..", "segments..0"]),
    st.sampled_from(list(ScheduleSpec.model_fields)),
    TEXT,
)


def test_fuzz_job_files(folder):
    @budget(60)
    @given(st.one_of(
        st.dictionaries(JOB_KEY, JOB_VALUES, max_size=5).map(lambda d: {"schedule": "base.yaml", **d}),
        st.dictionaries(JOB_KEY, JOB_VALUES, max_size=5),
        st.lists(st.one_of(st.sampled_from(["base.yaml", "nothere.yaml", "in.png", "."]), ANY_VALUE), max_size=3),
        ANY_VALUE,
    ).map(dump) | YAML_TEXT)
    @example("schedule: base.yaml\nseed: [" + "9" * 5000 + "]\n")
    @example("schedule: base.yaml\nsegments.²: [1]\n")
    @example('!!int ""')
    @example('["\\ud800\\udc00"]')
    @example('- "\\0"\n')
    def job_files(text):
        count("job_files")
        path = folder / "job.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        refused_or_accepted(lambda: load_job(path), folder, str(path), "/")

    fuzz(job_files)
