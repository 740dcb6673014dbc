"""Hypothesis strategies for the fuzz tests: YAML text, schedules built from the JSON schema,
formulas, layer keys (issue 22).

Schedules are generated from :func:`dreamvid.schedule.spec.json_schema`, so a key added to spec.py is
fuzzed without touching this file; at every key the value is either one the schema describes
(near its bounds, sometimes past them) or any YAML value at all.
"""

from __future__ import annotations

import json

import yaml
from hypothesis import strategies as st

from dreamvid.engine.catalogue import LAYERS
from dreamvid.schedule.expressions import AUDIO_VARIABLES, CONSTANTS, FRAME_VARIABLES, FUNCTIONS
from dreamvid.schedule.spec import json_schema
from tests.fuzzing import LONG_SECONDS

# ------------------------------------------------------------------------ plain values

HUGE_DIGITS = st.builds(lambda d, n: d * n, st.sampled_from("19"), st.integers(19, 5000))  # as text
HUGE_INTS = st.builds(lambda d, n: d * (10**n - 1) // 9, st.sampled_from([1, 9]), st.integers(19, 5000))
NUMBERS = st.one_of(st.integers(-10, 100), st.floats(), st.integers(), HUGE_INTS, HUGE_INTS.map(lambda n: -n),
                    st.sampled_from([0, -0.0, 1e-320, 1e308, float("nan"), float("inf"), float("-inf")]))
BIG = 1 if LONG_SECONDS else 0.1  # the suite keeps the long strings shorter (PyYAML reads ~1 MB/s)
LONG_TEXT = st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "1", " ", "(", "0:(1),", "\n"]),
                      st.integers(1000, int(250_000 * BIG)))
TEXT = st.one_of(st.text(max_size=40), LONG_TEXT,
                 st.text(st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Co"]), max_size=10))
ANY_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
    lambda kids: st.one_of(st.lists(kids, max_size=4),
                           st.dictionaries(st.one_of(st.text(max_size=10), st.integers(), st.booleans()), kids,
                                           max_size=4)),
    max_leaves=12,
)

# ---------------------------------------------------------------------------- formulas

NAMES = [*FRAME_VARIABLES, *AUDIO_VARIABLES, *CONSTANTS]
ATOMS = st.one_of(
    st.sampled_from(NAMES),
    st.integers(0, 10**6).map(str),
    st.floats(0, 1e6, allow_nan=False).map(repr),
    st.sampled_from(["1e308", "1e999", "9" * 400, "0", "0.0", ".5", "1.", "1e-400", "1_0", "0x10", "0o7", "1j",
                     "True", "None", "__import__", "os", "x", "lambda", "if", "not", "in", "is", "and", "yield"]),
)
OPERATORS = ["+", "-", "*", "/", "//", "%", "**", "<", "<=", ">", ">=", "==", "!=", " and ", " or ", " if ",
             " else ", "@", "&", "|", "^", "<<", ">>", ".", ","]


def _formula(kids):
    return st.one_of(
        st.tuples(kids, st.sampled_from(OPERATORS), kids).map(lambda t: "".join(t)),
        st.tuples(st.sampled_from(["-", "+", "~", "not ", "--", ""]), kids).map(lambda t: "".join(t)),
        kids.map(lambda k: f"({k})"),
        st.tuples(st.sampled_from([*FUNCTIONS, "print", "eval", "min", "max"]), st.lists(kids, max_size=4))
        .map(lambda t: f"{t[0]}({', '.join(t[1])})"),
    )


FORMULAS = st.recursive(ATOMS, _formula, max_leaves=20)
DEEP = st.builds(lambda open_, n, inner: open_ * n + inner + ")" * n,
                 st.sampled_from(["(", "sin(", "-(", "abs(", "2**("]), st.integers(1, 400), ATOMS)
EXPRESSIONS = st.one_of(
    FORMULAS, DEEP,
    st.text("abcdefghijklmnopqrstuvwxyzT0123456789 +-*/%().,<>=!_", max_size=60),
    st.text(max_size=30),
    st.lists(st.tuples(st.one_of(st.integers(-3, 40).map(str), HUGE_DIGITS), FORMULAS), min_size=1, max_size=5)
    .map(lambda kv: ", ".join(f"{k}: ({v})" for k, v in kv)),
    st.builds(lambda n: ", ".join(f"{i}: (1.0{i % 10})" for i in range(n)), st.integers(1, int(50_000 * BIG))),
)

# -------------------------------------------------------------------------- layer keys

_LAYER_NAMES = sorted({name for model in LAYERS.values() for name in model})
LAYER_KEYS = st.one_of(
    st.sampled_from(_LAYER_NAMES),
    st.builds(lambda name, chans, sep: name + ":" + sep.join(chans), st.sampled_from(_LAYER_NAMES),
              st.lists(st.one_of(st.integers(0, 3000).map(str), HUGE_DIGITS), min_size=1, max_size=4),
              st.sampled_from([",", " , ", ",,", ":"])),
    st.from_regex(r"^\s*[A-Za-z_][A-Za-z0-9_.]*\s*(:\s*[0-9]+\s*(,\s*[0-9]+\s*)*)?$", fullmatch=True),
    st.text(max_size=20),
)

# ------------------------------------------------------------------ schedules from the schema

SCHEMA = json_schema()
PATHS = {  # path keys: files the test folder has, or anything
    "input": st.sampled_from(["noise", "in.png", "c.mp4", "nothere.png", "a.wav", ".", "/", "/dev/null", "in.png/x"]),
    "output": st.sampled_from(["out/v.mp4", "v.mkv", "in.png", "v.gif", "in.png/v.mp4", ".mp4", "a/../v.mov",
                               "x" * 300 + ".mp4", "/proc/v.mp4"]),
    "audio": st.sampled_from([None, "a.wav", "nothere.wav", "in.png", "input", "c.mp4"]),
    "model_weights": st.sampled_from([None, "nothere.pt", "in.png"]),
    "flow_weights": st.sampled_from([None, "nothere.pth", "in.png", "a.wav"]),
}


def _resolve(frag: dict) -> dict:
    ref = frag.get("$ref")
    if ref:
        resolved = SCHEMA["$defs"][ref.rsplit("/", 1)[1]]
        return {**resolved, **{k: v for k, v in frag.items() if k != "$ref"}}
    return frag


def _from_schema(frag: dict, key: str = "") -> st.SearchStrategy:
    """Values the schema fragment describes (bounds included, and a little beyond)."""
    frag = _resolve(frag)
    if "anyOf" in frag:
        return st.one_of([_from_schema(f, key) for f in frag["anyOf"]])
    if "const" in frag:
        return st.just(frag["const"])
    if "enum" in frag:
        return st.sampled_from(frag["enum"])
    kind = frag.get("type")
    if kind == "integer":
        lo, hi = frag.get("minimum", -5), frag.get("maximum")
        hi = hi if hi is not None else lo + (40 if key in ("frames", "transition", "cadence") else 1000)
        return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, lo - 1, hi + 1]))
    if kind == "number":
        lo = frag.get("minimum", frag.get("exclusiveMinimum", -1e3))
        hi = frag.get("maximum", lo + 1e3)
        return st.one_of(st.floats(lo, hi), st.integers(int(lo) - 1, int(hi) + 1),
                         st.sampled_from([lo, hi, lo - 1e-9, hi + 1e-9]))
    if kind == "string":
        if "pattern" in frag:
            return st.from_regex(frag["pattern"], fullmatch=True)
        if "formula" in frag.get("description", ""):
            return EXPRESSIONS
        return TEXT
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        if "prefixItems" in frag:
            return st.tuples(*(_from_schema(f, key) for f in frag["prefixItems"])).map(list)
        items = _from_schema(frag.get("items", {}), key)
        return st.lists(items, min_size=frag.get("minItems", 0), max_size=min(frag.get("maxItems", 3), 3))
    if kind == "object":
        if "properties" in frag:
            return _mapping(frag)
        if "patternProperties" in frag:  # keyframes {frame: value}
            (value,) = frag["patternProperties"].values()
            frames = st.one_of(st.integers(-2, 45), st.integers(0, 45).map(str), HUGE_INTS)
            return st.dictionaries(frames, _from_schema(value, key), min_size=1, max_size=5)
        if "propertyNames" in frag:  # layers
            weights = st.one_of(st.floats(-2, 2), st.integers(-2, 2), NUMBERS)
            return st.dictionaries(LAYER_KEYS, weights, min_size=1, max_size=4)
    return ANY_VALUE


def _mapping(frag: dict) -> st.SearchStrategy:
    """A mapping of the model's keys: required ones nearly always, the others sometimes; each
    value from the schema, or now and then anything; now and then an unknown key."""
    required = set(frag.get("required", ()))

    def value(key: str, sub: dict) -> st.SearchStrategy:
        good = PATHS[key] if key in PATHS and frag is SCHEMA else _from_schema(sub, key)
        return st.one_of(good, good, good, good, ANY_VALUE)

    entries = {k: value(k, v) for k, v in frag["properties"].items()}

    @st.composite
    def build(draw):
        out = {}
        for key, strategy in entries.items():
            if draw(st.integers(0, 19)) < (19 if key in required else 5):
                out[key] = draw(strategy)
        if draw(st.integers(0, 9)) == 0:
            out[draw(st.text(max_size=12))] = draw(ANY_VALUE)
        return out

    return build()


SCHEDULES = _mapping(SCHEMA)


class _Dumper(yaml.SafeDumper):
    """Integers past Python's 4300-digit str() limit are written in hex (which YAML reads too)."""


_Dumper.add_representer(int, lambda d, v: d.represent_scalar(
    "tag:yaml.org,2002:int", str(v) if abs(v) < 10**4000 else ("-" if v < 0 else "") + hex(abs(v))))


def dump(data) -> str:
    """YAML text of generated data."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10**9)


# -------------------------------------------------------------------------- YAML text

SCALAR_TEXT = st.one_of(
    st.sampled_from(["~", "null", "true", "No", "on", ".nan", ".NaN", ".inf", "-.inf", "+.inf", "1e999", "-1e999",
                     "0x1F", "0o17", "0b101", "1_000", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "12:30:00",
                     "''", '""', "-", "?", "!!", "<<", "=", "0", "-0", "1.5", "1e-400", "4294967296", "-1", "...",
                     "---", "|", ">", "%", "@", "`", "noise", "in.png", "mixed3", "mixed4:97,12"]),
    st.integers().map(str), HUGE_DIGITS, st.floats().map(repr),
    st.text(max_size=30).map(lambda t: json.dumps(t, ensure_ascii=False)),
    st.text(max_size=30).map(json.dumps),
    st.text(st.characters(codec="ascii"), max_size=15),
    LONG_TEXT.map(json.dumps),
    EXPRESSIONS.map(json.dumps),
    st.just("*a0"), st.just("*a1"),
)
TAGS = ["!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!!binary ", "!!set ", "!!omap ", "!!pairs ",
        "!!timestamp ", "!!map ", "!!seq ", "!!python/object/apply:os.system ", "!!python/name:os.system ",
        "!custom ", "!<tag:yaml.org,2002:str> ", "!<tag:yaml.org,2002:map> ", "!!merge ", "! "]


def _decorate(node: st.SearchStrategy) -> st.SearchStrategy:
    """A node, sometimes with an anchor (&a0 ...) or a tag in front."""
    prefix = st.one_of(st.just(""), st.just(""), st.just(""), st.sampled_from(["&a0 ", "&a1 "]), st.sampled_from(TAGS))
    return st.tuples(prefix, node).map("".join)


def _flow(kids):
    keys = st.one_of(SCALAR_TEXT, st.sampled_from(["<<", "? [1, 2]", "? {a: 1}", "frames", "layers", "zoom"]))
    return _decorate(st.one_of(
        st.lists(kids, max_size=5).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(keys, kids), max_size=5).map(lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"),
    ))


FLOW = st.recursive(_decorate(SCALAR_TEXT), _flow, max_leaves=25)
NESTED = st.builds(lambda o, c, n: o * n + "1" + c * n,
                   st.sampled_from(["[", "{a: ", "[{b: ", "&x ["]), st.sampled_from(["]", "}", "}]", "]"]),
                   st.integers(1, int(5000 * BIG)))  # Python stops at ~330 levels of PyYAML
_TOP_KEYS = [*SCHEMA["properties"], "<<", "include", "x"]
_SEGMENT_KEYS = list(SCHEMA["$defs"]["SegmentSpec"]["properties"])


def _block(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in pairs)


BLOCK = st.builds(
    lambda top, segs: _block(top) + "segments:\n" + "".join(
        "  - " + "\n    ".join(f"{k}: {v}" for k, v in seg) + "\n" for seg in segs),
    st.lists(st.tuples(st.sampled_from(_TOP_KEYS), FLOW), max_size=8),
    st.lists(st.lists(st.tuples(st.sampled_from(_SEGMENT_KEYS), FLOW), min_size=1, max_size=5), max_size=3),
)
LAUGHS = st.builds(  # "billion laughs": aliases of aliases, a few bytes that mean a huge tree
    lambda n, k, where: "a0: &a0 [" + ", ".join(["x"] * k) + "]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * k) + "]\n" for i in range(1, n)) + f"{where}: *a{n - 1}\n",
    st.integers(2, 9), st.integers(2, 10), st.sampled_from(["segments", "size", "defaults", "encoder", "x"]),
)
YAML_TEXT = st.one_of(FLOW, BLOCK, NESTED, LAUGHS,
                      st.sampled_from(["&a [*a]", "segments: &s [*s]", "a: &a {b: *a}\nsegments: [*a]",
                                       "input: noise\nsegments: [&a {frames: 1, layers: *a}]",
                                       "%YAML 1.1\n---\na: 1", "--- 1\n--- 2", "? - 1\n: 2"]))


# ---------------------------------------------- files for `dreamvid import` (Deforum, Parseq)

_REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
IMPORT_FIXTURES = [(_REPO / "schedules" / name).read_text() for name in ("deforum-2d.txt", "parseq-manifest.json")]
_JSON_INTS = st.one_of(st.integers(-10, 10**6), st.integers(19, 4000).map(lambda n: 10**n))  # json.dumps can print
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), _JSON_INTS, st.floats(), st.text(max_size=20)),
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=10,
)
_QUOTED_FRAMES = st.sampled_from(['"max_f"', "'max_f-1'", '"max_f/2"', '"s"', '"t"', '"1/0"', '"max_f*1e9"', "''"])
DEFORUM_STRINGS = st.one_of(
    EXPRESSIONS,
    st.lists(st.tuples(st.one_of(st.integers(-3, 70).map(str), _QUOTED_FRAMES, HUGE_DIGITS.map(lambda d: d[:4000])),
                       st.one_of(FORMULAS, st.sampled_from(["s", "t/max_f", "1.0", "-1", "'x'", "", "(", "1)(2"]))),
             min_size=1, max_size=5).map(lambda kv: ", ".join(f"{k}: ({v})" for k, v in kv)),
)
_SMALL = st.one_of(st.integers(-2, 70), st.sampled_from([0, 1, 2.5, 12.0, 30, 1e9, -1, 2**32, 2**64]), JSON_VALUES)
_DEFORUM_KEYS = {
    "max_frames": st.one_of(st.integers(-1, 60), _SMALL), "fps": _SMALL, "W": st.one_of(st.integers(0, 300), _SMALL),
    "H": st.one_of(st.integers(0, 300), _SMALL), "seed": _SMALL,
    "animation_mode": st.sampled_from(["2D", "3D", "Video Input", "Interpolation", "None", "", None, 2]),
    **{key: st.one_of(DEFORUM_STRINGS, DEFORUM_STRINGS, st.floats(), st.integers(-(10**30), 10**30), JSON_VALUES)
       for key in ("zoom", "angle", "translation_x", "translation_y", "transform_center_x", "transform_center_y")},
    "border": JSON_VALUES, "color_coherence": st.sampled_from(["LAB", "RGB", "HSV", "None", "Image", 3, None]),
    "use_init": st.booleans(), "init_image": st.sampled_from(["logo.png", "https://x/y.png", "", None, "/", 5]),
    "video_init_path": st.sampled_from(["c.mp4", "http://x/v.mp4", None]),
    "add_soundtrack": st.sampled_from(["None", "File", "Init Video", 7]),
    "soundtrack_path": st.sampled_from(["a.wav", "https://x/a.mp3", "", None]),
    "parseq_manifest": st.one_of(st.just(""), st.just(1).map(lambda i: IMPORT_FIXTURES[i]), st.text(max_size=30),
                                 JSON_VALUES),
    "parseq_use_deltas": JSON_VALUES, "parseq_non_schedule_overrides": JSON_VALUES,
    "prompts": JSON_VALUES, "cn_1_weight": JSON_VALUES, "rotation_3d_x": DEFORUM_STRINGS,
}


@st.composite
def _deforum(draw):
    out = {"max_frames": draw(st.integers(1, 60))} if draw(st.integers(0, 9)) else {}
    for key, strategy in _DEFORUM_KEYS.items():
        if draw(st.integers(0, 2)) == 0:
            out[key] = draw(strategy)
    return out


_ROW_FIELDS = ["zoom_delta", "angle_delta", "translation_x_delta", "translation_y_delta", "transform_center_x",
               "transform_center_y", "zoom", "strength", "deforum_prompt", "zoom_pc"]


@st.composite
def _parseq(draw):
    count = draw(st.integers(0, 12))
    fields = draw(st.lists(st.sampled_from(_ROW_FIELDS), max_size=5, unique=True))
    rows = []
    for i in range(count):
        frame = i if draw(st.integers(0, 9)) else draw(_SMALL)
        rows.append({"frame": frame, **{f: draw(st.one_of(st.floats(-2, 2), st.floats(0.5, 1.5), _SMALL))
                                        for f in fields if draw(st.integers(0, 9))}})
    options = draw(st.one_of(st.fixed_dictionaries({"output_fps": _SMALL}), JSON_VALUES))
    out = {"options": options, "rendered_frames": rows} if draw(st.integers(0, 9)) else {"rendered_frames": draw(
        JSON_VALUES)}
    return out


def _cut(text: str, at: float) -> str:
    return text[: int(len(text) * at)]


IMPORT_FILES = st.one_of(  # the text of a file given to `dreamvid import`
    _deforum().map(json.dumps),
    _parseq().map(json.dumps),
    JSON_VALUES.map(json.dumps),
    st.builds(_cut, st.sampled_from([0, 1]).map(lambda i: IMPORT_FIXTURES[i]), st.floats(0, 1)),  # truncated

    st.text(max_size=60),
)
