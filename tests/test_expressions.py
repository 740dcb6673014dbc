"""dreamvid.schedule.expressions: hostile text is refused before anything runs; formulas give hand-computed
values; vectorised and per-frame evaluation agree bit for bit; Deforum strings with formulas."""

from __future__ import annotations

import ast
import builtins
import math
import pickle
import re

import numpy as np
import pytest

from dreamvid.schedule import expressions
from dreamvid.schedule.expressions import (
    Expression,
    ExpressionError,
    compile_expression,
    evaluate_keyframes,
    frame_variables,
    is_keyframe_string,
    parse_keyframe_string,
    parse_value,
)
from dreamvid.schedule.schedule import Keyframes

HOSTILE = [
    "__import__('os').system('touch x')",
    "__import__(os).system(touch)",  # no quotes: still refused (unknown function, attribute)
    "().__class__.__bases__",
    "().__class__.__bases__[0].__subclasses__()",
    "lambda: 1",
    "[x for x in ()]",
    "max(x for x in (t, f))",
    "9**9**9",
    "10**10000",
    "2**(10**5)",
    "sin.__globals__",
    "t.__class__",
    "f'{1}'",
    "open('x')",
    "open(t)",
    "exec('1')",
    "eval(t)",
    "getattr(t, t)",
    "__builtins__",
    "t if t else f",
    "t and f",
    "max(t, key=f)",
    "max(*t)",
    "(t := 1)",
    "1; import os",
    "1\nimport os",
    "1 << 1000",
    "t @ t",
    "not t",
    "t in t",
    "True + 1",
    "None",
    "1j",
    "1e999",
    "1" * 999,  # an integer too large for a float
    "(1e300)**2",
    "1/0",
    "log(-1)",
    "\uff54 + 1",  # fullwidth t: Python would NFKC-normalise it to t
    "sin",
    "foo(t)",
    "min(t)",
    "clamp(t, 1)",
    "",
    "   ",
    "1 +",
]


@pytest.fixture()
def spy_parse(monkeypatch):
    """Count ast.parse calls made by dreamvid.schedule.expressions."""
    calls = []
    real = ast.parse

    def parse(*args, **kwargs):
        calls.append(args[0][:20])
        return real(*args, **kwargs)

    monkeypatch.setattr(expressions.ast, "parse", parse)
    return calls


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_strings_are_refused_with_one_line_and_nothing_runs(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran = []
    saved = {name: getattr(builtins, name) for name in ("eval", "exec", "compile", "__import__", "open")}

    def tripwire(name):
        def call(*args, **kwargs):
            flags = kwargs.get("flags", args[3] if len(args) > 3 else 0)
            if not (name == "compile" and flags & ast.PyCF_ONLY_AST):  # ast.parse only builds a tree
                ran.append((name, args[:1]))
            return saved[name](*args, **kwargs)
        return call

    try:  # plain setattr: monkeypatch itself imports lazily, which would trip the wire
        for name in saved:
            setattr(builtins, name, tripwire(name))
        compile_expression(text).evaluate({name: 1.0 for name in expressions.VARIABLES})
    except ExpressionError as err:
        error = err
    else:
        error = None
    finally:
        for name, real in saved.items():
            setattr(builtins, name, real)
    assert error is not None, f"{text!r} was accepted"
    message = str(error)
    assert message and "\n" not in message
    assert "expected " in message  # each says what would be accepted
    assert ran == []  # refused by inspection: nothing was evaluated, compiled to code, imported or opened
    assert list(tmp_path.iterdir()) == []  # "touch x" made nothing


@pytest.mark.parametrize("text", [
    "1+" * 500_000 + "1",  # 1 MB
    "(" * 10_000 + "1" + ")" * 10_000,  # 10k deep brackets (refused by length)
    "(" * 400 + "t" + ")" * 400,  # 801 characters, refused by bracket depth
])
def test_huge_or_deep_text_is_refused_before_the_parser_sees_it(text, spy_parse):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert spy_parse == []
    assert "\n" not in str(info.value)
    assert "1000" in str(info.value) or "deep" in str(info.value)


def test_one_mb_keyframe_string_is_refused_before_parsing(spy_parse):
    text = ", ".join(f"{i}: (1.0 + 0.01*sin(t))" for i in range(60_000))
    assert len(text) > 1_000_000
    with pytest.raises(ExpressionError, match="characters long"):
        parse_keyframe_string(text)
    assert spy_parse == []


def test_deep_unary_chain_is_refused_by_the_tree_depth_bound():
    with pytest.raises(ExpressionError, match="nested more than 100 deep"):
        compile_expression("-" * 300 + "t")
    with pytest.raises(ExpressionError, match="nested more than 100 deep"):
        compile_expression("+".join(["t"] * 200))


def test_messages_name_the_problem():
    cases = {
        "os": ("unknown name 'os'; expected one of t, f, s, T, max_f, seed, fps, rms, bass, mid, treble, onset, "
               "beat, pi, e"),
        "().__class__": "attribute access is not allowed",
        "lambda: 1": "character ':' at column 7 is not allowed",
        "9**9**9": "exponent 3.8742e+08 is too large; expected at most 100",
        "open(t)": "unknown function 'open'; expected one of sin, cos, tan, abs, min, max, clamp, floor",
        "max(t, key=f)": "max() takes no keyword arguments",
        "t if t else f": "conditional expressions (if/else) are not allowed",
        "1/0": "division by zero",
        "'a'": "character \"'\" at column 1 is not allowed (strings are not allowed); expected ASCII letters",
    }
    for text, expected in cases.items():
        with pytest.raises(ExpressionError) as info:
            compile_expression(text)
        assert expected in str(info.value), (text, str(info.value))


def test_a_formula_equals_the_value_computed_by_hand_at_three_frames():
    expr = compile_expression("1.0 + 0.05*sin(2*pi*s/4) + 0.01*bass*(t >= 30) - abs(min(f - 40, 0))/1000")
    assert expr.variables == {"s", "bass", "t", "f"} and expr.needs_audio
    # fps 30, segment starts at video frame 0, bass 0.5 everywhere
    # t=0:  1 + 0.05*sin(0) + 0 - 40/1000                       = 0.96
    # t=30: 1 + 0.05*sin(pi/2) + 0.005 - 10/1000                 = 1.045
    # t=45: 1 + 0.05*sin(3*pi/4) + 0.005 - 0 = 1.005 + 0.05*0.70710678118654752 = 1.0403553390593274
    expected = {0: 0.96, 30: 1.045, 45: 1.0403553390593274}
    for t, value in expected.items():
        got = expr.evaluate({"t": t, "f": t, "s": t / 30, "bass": 0.5})
        assert isinstance(got, float)
        assert got == pytest.approx(value, abs=1e-12)
    env = frame_variables(0, 60, 60, 30.0, audio={name: np.full(60, 0.5) for name in expressions.AUDIO_VARIABLES})
    values = expr.evaluate(env)
    assert values.shape == (60,)
    for t, value in expected.items():
        assert values[t] == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize("text", [
    "1.0 + 0.05*sin(t/10)",
    "1 + 0.04*bass + 0.02*beat**2 - 0.01*sqrt(treble)",
    "clamp(exp(-s)*cos(2*pi*f/T) + log(1 + onset), -0.5, 0.75) // 0.01 % 7",
    "max(rms, mid, 0.3) * tan(t/300) + round(s*3)/3 + floor(f/7) - ceil(t/11)",
    "(t > 20) * (t <= 40) + (f == 3) - (s != 0) + (0 < t < 10)",
])
def test_vectorised_evaluation_equals_per_frame_evaluation_bit_for_bit(text):
    rng = np.random.default_rng(0)
    n, start, total, fps = 97, 13, 200, 24.0
    audio = {name: rng.random(total) for name in expressions.AUDIO_VARIABLES}
    expr = compile_expression(text)
    env = frame_variables(start, n, total, fps, audio)
    vector = expr.evaluate(env)
    assert vector.dtype == np.float64 and vector.shape == (n,)
    scalar = [expr.evaluate({k: (v[i] if isinstance(v, np.ndarray) else v) for k, v in env.items()})
              for i in range(n)]
    assert np.array_equal(vector, np.array(scalar))  # same bits: preview equals the video
    assert np.isfinite(vector).all()


def test_maths_errors_with_variables_give_nan_or_inf_never_an_exception():
    t = np.arange(10.0)
    with np.errstate(all="raise"):  # the caller's numpy settings do not matter
        assert np.isnan(compile_expression("log(t - 5)").evaluate({"t": t})[:5]).all()
        assert compile_expression("1/(t - 5)").evaluate({"t": t})[5] == math.inf
        assert math.isnan(compile_expression("sqrt(t - 5)").evaluate({"t": 0.0}))
        assert compile_expression("exp(t*100)").evaluate({"t": t})[-1] == math.inf
        assert math.isnan(compile_expression("t % (t - t)").evaluate({"t": 3.0}))


def test_a_missing_variable_is_a_one_line_error():
    with pytest.raises(ExpressionError, match="reads 'bass', which has no value here .audio features need.*; expected only t$"):
        compile_expression("1 + bass").evaluate({"t": 1.0})


def test_constant_parts_are_folded_and_numbers_stay_numbers():
    assert parse_value(1.5) == 1.5 and parse_value(2) == 2.0
    assert parse_value(" 1.02 ") == 1.02
    assert parse_value("2*pi") == 2 * math.pi and isinstance(parse_value("2*pi"), float)
    expr = parse_value("1 + t")
    assert isinstance(expr, Expression) and expr.source == "1 + t" and not expr.needs_audio
    with pytest.raises(ExpressionError):
        parse_value(True)


def test_expressions_pickle_and_compare_by_source():
    expr = compile_expression("1 + 0.1*sin(t)")
    copy = pickle.loads(pickle.dumps(expr))
    assert copy == expr and hash(copy) == hash(expr) and copy is not expr
    assert copy.evaluate({"t": 2.0}) == expr.evaluate({"t": 2.0})
    assert expr != compile_expression("1 + 0.1*sin(f)")


# ------------------------------------------------------------------------- keyframe strings


def test_deforum_string_with_formulas_splits_on_top_level_commas_only():
    points = parse_keyframe_string("0: (1.02), 120: (1.0 + 0.05*sin(t/10)), 130:(max(t, 2*f)),")
    assert [k for k, _ in points] == [0, 120, 130]
    assert points[0][1] == 1.02 and isinstance(points[0][1], float)
    assert isinstance(points[1][1], Expression) and points[1][1].source == "1.0 + 0.05*sin(t/10)"
    assert points[2][1].variables == {"t", "f"}
    assert is_keyframe_string(" 0: (1)") and not is_keyframe_string("1 + 0.04*bass")


def test_deforum_numbers_parse_as_before():
    text = "0:(10), 4:(11), 10:(20)"  # from tests/test_schedule.py
    assert parse_keyframe_string(text) == [(0, 10.0), (4, 11.0), (10, 20.0)]
    assert parse_keyframe_string("-3: (1e-2)") == [(-3, 0.01)]  # the caller reports negative frames


@pytest.mark.parametrize("text, key, fragment", [
    ("0: (1), 5: (os)", "5", "keyframe 5: unknown name 'os'"),
    ("0: (1) + (2)", None, "bad keyframe entry '0: (1) + (2)'"),
    ("0:(1.02) 49:(1.06)", None, "bad keyframe entry '0:(1.02) 49:(1.06)'; expected 'frame: (value)' entries separated"),
    ("0: (1), x", None, "bad keyframe entry 'x'"),
    ("0: (1", None, "unclosed '('"),
    ("0: 1)", None, "unmatched ')'"),
    ("0: 1", None, "bad keyframe entry '0: 1'"),
    ("7: (__import__(os))", "7", "unknown function '__import__'"),
])
def test_bad_deforum_entries_are_one_line_errors_with_the_key(text, key, fragment):
    with pytest.raises(ExpressionError) as info:
        parse_keyframe_string(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert info.value.key == key


def _number_key_reference(points, k: int, interpolation: str) -> float:
    """The value at frame ``k`` of number keyframes, one frame at a time: what the docs say."""
    if k <= points[0][0]:
        return points[0][1]
    if k >= points[-1][0]:
        return points[-1][1]
    (f0, v0), (f1, v1) = next((a, b) for a, b in zip(points, points[1:]) if a[0] <= k < b[0])
    if interpolation == "step":
        return v0
    t = (k - f0) / (f1 - f0)
    if interpolation == "smooth":
        t = t * t * (3.0 - 2.0 * t)
    return v0 + (v1 - v0) * t


@pytest.mark.parametrize("interpolation", ["linear", "step", "smooth"])
def test_numeric_keyframes_evaluate_as_documented(interpolation):
    rng = np.random.default_rng(1)
    for _ in range(20):
        frames = int(rng.integers(1, 80))
        keys = np.sort(rng.choice(frames, size=int(rng.integers(1, min(frames, 6) + 1)), replace=False))
        points = tuple((int(k), float(rng.normal())) for k in keys)
        want = [_number_key_reference(points, k, interpolation) for k in range(frames)]
        assert np.allclose(evaluate_keyframes(points, frames, interpolation), want, rtol=0, atol=1e-12)
        assert np.array_equal(Keyframes(points).values(frames, interpolation), evaluate_keyframes(points, frames,
                                                                                                   interpolation))


def test_expression_keys_hold_until_the_next_key_and_numbers_interpolate_towards_them():
    points = parse_keyframe_string("2: (1), 6: (10 + t), 9: (0)")
    env = frame_variables(100, 12, 200, 25.0)  # video frames 100..111
    got = evaluate_keyframes(points, 12, "linear", env)
    # before key 2: 1; 2..6: 1 -> 10 + t at frame 6 (t = 106, value 116); 6..8: 10 + t; 9..: 0
    want = [1, 1, 1, 1 + 115 * 0.25, 1 + 115 * 0.5, 1 + 115 * 0.75, 116, 117, 118, 0, 0, 0]
    assert np.allclose(got, want, rtol=0, atol=1e-12)
    step = evaluate_keyframes(points, 12, "step", env)
    assert list(step[:6]) == [1] * 6 and list(step[6:9]) == [116, 117, 118]
    # a single formula (a plain value) is evaluated at every frame
    single = evaluate_keyframes([(0, parse_value("f*2"))], 5, "linear", frame_variables(0, 5, 5, 30.0))
    assert list(single) == [0, 2, 4, 6, 8]


def test_docs_list_exactly_the_names_an_expression_knows():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "audio.md").read_text()
    functions = re.search(r"^Functions: `([^`]+)`", doc, re.M).group(1).split()
    assert functions == list(expressions.FUNCTIONS)
    table = re.findall(r"^\| ((?:`\w+` ?)+) \|", doc, re.M)
    names = [n for row in table for n in re.findall(r"`(\w+)`", row)]
    assert set(names) >= set(expressions.VARIABLES) | set(expressions.CONSTANTS)
