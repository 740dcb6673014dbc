"""Problems found while validating a user's file, and their one-line messages.

Validators raise :class:`Invalid` with ``(key path, text)`` pairs; :func:`translate` turns
pydantic's errors into the same pairs; :func:`message` makes the line the user reads::

    logo.yaml: segments[1].layers.mixed9x: unknown layer; expected one of conv2d_0, ..., mixed10

Every text ends in ``; expected <what>``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from dreamvid.core.errors import first_line

Loc = tuple  # a key path: str = mapping key, int = list index


class Invalid(ValueError):
    """Raised inside validators: problems as (key path relative to the value, text)."""

    def __init__(self, problems: list[tuple[Loc, str]]):
        self.problems = problems
        super().__init__("; ".join(text for _, text in problems))


def show(value: Any) -> str:
    """A short YAML-ish rendering of a user value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value.bit_length() > 64:
        return "a huge integer"  # repr() of one with > 4300 digits even raises
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite_float(value: Any) -> float | None:
    """``value`` as a float when it is a number that is finite as a float, else None (NaN, inf,
    a bool, an integer too large for a float)."""
    if not is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def format_loc(loc: Loc) -> str:
    """``("segments", 1, "zoom")`` -> ``segments[1].zoom``; a key that is empty or holds a
    character that does not print (a control character, a line break, an odd space) is
    quoted as Python writes it: ``layers.'mixed3\\n'``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        part = str(part)
        if not part or not part.isprintable():
            part = repr(part)
        out += f".{part}" if out else part
    return out


_LINE_BREAKS = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")  # what str.splitlines() splits at


def one_line(text: str) -> str:
    """``text`` with the characters that would break it into lines escaped (``\\n``): a user's
    key or path inside a message must not split it."""
    return _LINE_BREAKS.sub(lambda m: repr(m.group())[1:-1], text)


def message(name: str, loc: Loc, text: str) -> str:
    """The user's line: ``<file>: <key path>: <text>``."""
    return one_line(f"{name}: {format_loc(loc)}: {text}" if loc else f"{name}: {text}")


def translate(err: ValidationError, model_at: Callable[[Loc], type[BaseModel] | None]) -> list[tuple[Loc, str]]:
    """pydantic's errors as (key path, text) pairs; ``model_at(parent)`` names the model whose
    keys live at a key path (for 'did you mean' hints and field descriptions)."""

    def description(loc: Loc) -> str | None:  # of the field that ``loc`` is in (or an item of)
        for end in range(len(loc), 0, -1):
            model = model_at(loc[: end - 1])
            if model is not None and loc[end - 1] in model.model_fields:
                return model.model_fields[loc[end - 1]].description
        return None

    problems: list[tuple[Loc, str]] = []
    for e in err.errors():
        loc, kind, got, ctx = tuple(e["loc"]), e["type"], e.get("input"), e.get("ctx") or {}
        expected = description(loc) or first_line(e["msg"])
        if kind == "value_error" and isinstance(ctx.get("error"), Invalid):
            problems.extend((loc + sub, text) for sub, text in ctx["error"].problems)
        elif kind in ("extra_forbidden", "invalid_key"):
            model = model_at(loc[:-1])
            valid = list(model.model_fields) if model else []
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "expected one of " + ", ".join(valid)
            if str(loc[-1]).lstrip("!%").lower() in ("include", "includes", "import", "extends"):
                hint = ("schedules have no includes; expected one self-contained file (reuse values "
                        "within it with YAML anchors: &name, *name, <<: *name)")
            problems.append((loc[:-1] + (str(loc[-1]),), f"unknown key; {hint}"))
        elif kind == "model_type":
            model = model_at(loc)
            keys = ", ".join(list(model.model_fields)[:3]) + ", ..." if model else "keys"
            problems.append((loc, f"got {show(got)}; expected a mapping of {keys}"))
        elif kind == "missing" and loc and isinstance(loc[-1], int):  # a short [x, y] pair
            problems.append((loc[:-1], f"too few items; expected {expected}"))
        elif kind == "missing":
            problems.append((loc, f"missing required key; expected {expected}"))
        elif kind == "literal_error":
            choices = re.findall(r"'([^']*)'", ctx.get("expected", ""))
            close = difflib.get_close_matches(str(got), choices, n=1) if isinstance(got, str) else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append((loc, f"got {show(got)}{hint}; expected one of {', '.join(choices)}"))
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            problems.append((loc, f"{show(got)} is out of range; expected {expected}"))
        elif kind in ("too_short", "too_long"):
            count = len(got) if hasattr(got, "__len__") else "?"
            what = "an empty list" if count == 0 else f"{count} item{'' if count == 1 else 's'}"
            problems.append((loc, f"got {what}; expected {expected}"))
        elif kind == "finite_number":
            problems.append((loc, f"got {show(got)}; expected a finite number"))
        else:  # type errors, pattern mismatches, ...
            problems.append((loc, f"got {show(got)}; expected {expected}"))
    return problems
