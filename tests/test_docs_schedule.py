"""docs/schedule.md stays in sync with the schedule's code: every key, its default and
whether it keyframes, and the worked example (which must parse and give the documented values)."""

import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from pydantic_core import PydanticUndefined

import dreamvid.schedule.spec as schedule_module
from dreamvid.schedule.schedule import load_schedule
from dreamvid.schedule.spec import json_schema

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "schedule.md"
SCOPES = ("defaults", "segments")  # their keys are documented bare: `zoom`, not `defaults.zoom`


def _resolve(schema: dict, node: dict) -> dict:
    """Follow a $ref, an array's items and Optional's anyOf[..., null] to the object it names."""
    if "$ref" in node:
        return _resolve(schema, schema["$defs"][node["$ref"].rsplit("/", 1)[1]])
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        return _resolve(schema, node["items"])
    for option in node.get("anyOf", []):
        if "$ref" in option:
            return _resolve(schema, option)
    return node


def _model_name(schema: dict, node: dict) -> str | None:
    """The pydantic class behind a property (its $defs name), if it is an object."""
    for candidate in (node, node.get("items") or {}, *node.get("anyOf", [])):
        if isinstance(candidate, dict) and "$ref" in candidate:
            return candidate["$ref"].rsplit("/", 1)[1]
    return None


def _keyframeable(node) -> bool:
    """Whether a property's own schema (not nested models) accepts keyframes {frame: value}."""
    if isinstance(node, dict):
        if "^[0-9]+$" in node.get("patternProperties", {}):
            return True
        return any(_keyframeable(v) for k, v in node.items() if k not in ("$ref", "properties"))
    if isinstance(node, list):
        return any(_keyframeable(v) for v in node)
    return False


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def schema_keys() -> dict[str, dict]:
    """Documented name -> {keyframeable, default} for every property of the schema, nested ones too.

    Names: top-level keys bare, keys of `defaults` and of a segment bare (a key in both is one
    row, its default taken from `defaults`), keys of any other nested mapping `parent.key`.
    """
    schema = json_schema()
    keys: dict[str, dict] = {}

    def walk(node: dict, model: str, prefix: str) -> None:
        fields = getattr(schedule_module, model).model_fields
        for name, prop in node.get("properties", {}).items():
            field = fields[name]
            if field.default_factory is not None:
                default = "mapping"
            elif field.default is PydanticUndefined:
                default = "required"
            else:
                default = _plain(field.default)
            doc_name = prefix + name
            entry = keys.setdefault(doc_name, {"keyframeable": _keyframeable(prop), "default": default})
            if entry["default"] is None and default is not None:  # a segment's null: inherit
                entry["default"] = default
            sub = _model_name(schema, prop)
            if sub is not None:
                child_prefix = "" if prefix == "" and name in SCOPES else doc_name + "."
                walk(_resolve(schema, prop), sub, child_prefix)

    walk(schema, "ScheduleSpec", "")
    return keys


def doc_rows() -> dict[str, list[str]]:
    """Rows of the doc's key tables (tables whose header starts with `| Key |`): name -> cells."""
    rows: dict[str, list[str]] = {}
    in_table = False
    for line in DOC.read_text().splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "Key":
            in_table = True
            continue
        if in_table and not set(cells[0]) <= {"-", ":"}:
            m = re.fullmatch(r"`([^`]+)`", cells[0])
            assert m, f"key cell {cells[0]!r} is not a `key`"
            assert m.group(1) not in rows, f"{m.group(1)} is documented twice"
            rows[m.group(1)] = cells
    return rows


def test_every_schema_key_is_documented():
    missing = sorted(set(schema_keys()) - set(doc_rows()))
    assert not missing, f"add rows to docs/schedule.md for: {', '.join(missing)}"


def test_every_documented_key_exists():
    stale = sorted(set(doc_rows()) - set(schema_keys()))
    assert not stale, f"docs/schedule.md documents keys the schedule does not have: {', '.join(stale)}"


def test_documented_defaults_and_keyframes_match_the_code():
    rows, keys = doc_rows(), schema_keys()
    wrong = []
    for name, info in keys.items():
        if name not in rows:
            continue  # reported by test_every_schema_key_is_documented
        cells = rows[name]
        assert len(cells) == 6, f"{name}: expected 6 cells (Key, Type, Default, Range, Keyframes, Meaning)"
        default_cell, keyframe_cell = cells[2], cells[4]
        if info["default"] == "required":
            ok = default_cell == "required"
        elif info["default"] == "mapping":
            ok = default_cell == "see below"
        else:
            m = re.match(r"`([^`]*)`", default_cell)
            ok = m is not None and yaml.safe_load(m.group(1)) == info["default"]
        if not ok:
            wrong.append(f"{name}: default {default_cell!r}, code says {info['default']!r}")
        documented = keyframe_cell.startswith("yes")
        if documented != info["keyframeable"] and keyframe_cell != "per key":
            wrong.append(f"{name}: keyframes {keyframe_cell!r}, code says {'yes' if info['keyframeable'] else 'no'}")
    assert not wrong, "\n".join(wrong)


def test_the_walk_finds_nested_and_keyframeable_keys():
    """The sync tests are only as good as the walk: it must see into encoder, defaults and segments."""
    keys = schema_keys()
    assert {"input", "encoder.crf", "zoom", "frames", "layers", "transition"} <= set(keys)
    assert keys["zoom"] == {"keyframeable": True, "default": 1.02}
    assert keys["translate"]["keyframeable"] and keys["translate"]["default"] == [0, 0]
    assert keys["frames"]["default"] == "required" and not keys["frames"]["keyframeable"]
    assert keys["objective"] == {"keyframeable": False, "default": "square"}


def _worked_example(tmp_path):
    doc = DOC.read_text()
    block = re.search(r"## A worked example\n\n```yaml\n(.*?)```", doc, re.S).group(1)
    data = yaml.safe_load(block)
    cv2.imwrite(str(tmp_path / data["input"]), np.full((90, 120, 3), 128, np.uint8))
    path = tmp_path / "example.yaml"
    path.write_text(block)
    return load_schedule(path), doc


def _close(text: str, value: float) -> bool:
    return math.isclose(float(text), value, rel_tol=1e-3, abs_tol=1e-3)


def test_worked_example_parses_and_gives_the_documented_values(tmp_path):
    s, doc = _worked_example(tmp_path)
    table = re.search(r"\| frame \| segment \|.*?\n\|[-|]+\|\n((?:\|.*\|\n)+)", doc).group(1)
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()]
    assert len(rows) >= 3
    for frame, segment, zoom, rotate, translate, layers in rows:
        p = s.params(int(frame))
        assert p.segment == int(segment), frame
        assert _close(zoom, p.zoom) and _close(rotate, p.rotate), frame
        tx, ty = (t.strip() for t in translate.split(","))
        assert _close(tx, p.translate[0]) and _close(ty, p.translate[1]), frame
        terms = dict(term.rsplit(" ", 1) for term in layers.split(", "))
        assert terms.keys() == p.layers.keys(), frame
        assert all(_close(terms[k], w) for k, w in p.layers.items()), frame


def test_worked_example_comments_match_segment_ranges(tmp_path):
    """The example's comments name each segment's video frames ("video frames 120-209")."""
    s, doc = _worked_example(tmp_path)
    ranges = [tuple(map(int, m)) for m in re.findall(r"video frames (\d+)-(\d+)", doc)]
    assert ranges == [(seg.start, seg.start + seg.frames - 1) for seg in s.segments]


@pytest.mark.parametrize("image", ["timeline.png", "gallery.jpg"])
def test_images_the_docs_show_exist(image):
    assert cv2.imread(str(ROOT / "docs" / image)) is not None


def test_the_required_keys_are_those_the_page_names():
    """The page's opening names the required keys: those without a default in the schema."""
    sentence = re.search(r"Only (.*?) are required", DOC.read_text(), re.DOTALL).group(1)
    required = {name for name, info in schema_keys().items() if info["default"] == "required"}
    assert set(re.findall(r"`(\w+)`", sentence)) == required


def test_worked_example_transitions_blend_from_the_previous_segment(tmp_path):
    """"its N-frame transition from segment K's ..." in the notes: K is the segment before the
    one whose transition lasts N frames."""
    s, doc = _worked_example(tmp_path)
    claims = re.findall(r"(\d+)-frame transition\s+from segment (\d+)'s", doc)
    assert claims
    for frames, source in claims:
        segment = next(seg for seg in s.segments if seg.transition == int(frames))
        assert int(source) == segment.index - 1, f"the {frames}-frame transition blends from segment {segment.index - 1}"
