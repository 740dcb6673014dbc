"""Reading the YAML files dreamvid takes (schedules, batch jobs): safely and strictly.

PyYAML's safe loader, plus checks on the node tree before anything is built: no duplicate
keys (PyYAML keeps the last silently) and no tags beyond plain YAML values. Problems come
back as (key path, text) pairs (see :mod:`.problems`), never as PyYAML exceptions.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from dreamvid.core.errors import first_line
from dreamvid.core.problems import Loc, show


class _Loader(yaml.SafeLoader):
    """SafeLoader whose node tree is checked for duplicate keys and unsafe tags first."""

    _TAGS = frozenset("tag:yaml.org,2002:" + t for t in
                      ("null", "bool", "int", "float", "str", "seq", "map", "merge", "timestamp"))

    def problems(self, node: yaml.Node | None) -> list[tuple[Loc, str]]:
        found: list[tuple[Loc, str]] = []
        self._walk(node, (), found, set())
        return found

    def _walk(self, node: yaml.Node | None, loc: Loc, found: list, seen: set[int]) -> None:
        if node is None or id(node) in seen:  # aliases may repeat (or contain) a node
            return
        seen.add(id(node))
        line = node.start_mark.line + 1
        if node.tag not in self._TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            found.append((loc, f"tag {tag!r} is not allowed (line {line}); expected plain YAML values"))
            return
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self._walk(value_node, loc, found, seen)
                    continue
                key = self._key(key_node)
                sub = loc + (str(key),)
                key_line = key_node.start_mark.line + 1
                if key in first:
                    found.append((sub, f"duplicate key (line {key_line}, first at line {first[key]}); "
                                       "expected each key once"))
                else:
                    first[key] = key_line
                self._walk(key_node, sub, found, seen)
                self._walk(value_node, sub, found, seen)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, loc + (i,), found, seen)

    def _key(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag in self._TAGS:
            try:
                key = self.construct_object(node)
                hash(key)
                return key
            except (yaml.YAMLError, TypeError, ValueError):
                pass
        return (node.tag, id(node))

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """PyYAML's integers, but none that Python cannot print: a decimal one over 4300 digits
        raises ValueError in PyYAML itself, a hex one that long breaks every message showing it."""
        try:
            value = super().construct_yaml_int(node)
            if value.bit_length() <= _MAX_INT_BITS:
                return value
        except ValueError:
            if len(node.value) < 4000:
                raise  # not an integer at all (construct_object says so)
        raise yaml.constructor.ConstructorError(None, None, f"an integer of {len(node.value)} characters is too large "
                                                "to read", node.start_mark)

    def construct_yaml_str(self, node: yaml.ScalarNode) -> str:
        """PyYAML's strings, but none with half a UTF-16 pair (the escape "\\ud800" makes one)
        or a NUL character ("\\0"): no file name (nor a UTF-8 file, for the first) can hold them."""
        value = super().construct_yaml_str(node)
        if _SURROGATE.search(value):
            raise yaml.constructor.ConstructorError(None, None, f"{show(value)} holds half a UTF-16 pair (an escape "
                                                    "such as \\ud800)", node.start_mark)
        if "\0" in value:  # the escape "\0": no file name holds it either
            raise yaml.constructor.ConstructorError(None, None, f"{show(value)} holds a NUL character (an escape "
                                                    "\\0)", node.start_mark)
        return value

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML's, with a scalar its tag does not fit (``!!float ~``, ``!!bool maybe``,
        ``!!timestamp 2024-13-45``) as a YAML error at its line, not a ValueError or KeyError."""
        try:
            return super().construct_object(node, deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception:  # noqa: BLE001 - ValueError, KeyError, IndexError (!!int ""), ...: what PyYAML raises
            if not isinstance(node, yaml.ScalarNode):
                raise
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(None, None, f"{show(node.value)} is not a {tag} value",
                                                    node.start_mark) from None


_MAX_INT_BITS = 13_000  # 2**13000 has 3914 digits: below Python's 4300-digit str() limit
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:str", _Loader.construct_yaml_str)
_SURROGATE = re.compile("[\ud800-\udfff]")



def read_yaml(text: str, what: str = "schedule keys") -> tuple[Any, list[tuple[Loc, str]]]:
    """(data, []) for valid YAML, else (None, problems). ``what`` the document should hold
    (for the message: "expected a YAML mapping of <what>")."""
    loader = None
    try:
        loader = _Loader(text)  # the reader checks the characters here already
        node = loader.get_single_node()
        problems = loader.problems(node)
        if problems:
            return None, problems
        return (loader.construct_document(node) if node is not None else None), []
    except yaml.reader.ReaderError as err:  # a character YAML text may not hold: a binary or UTF-16 file?
        at = err.position
        where = f"line {text.count(chr(10), 0, at) + 1}, column {at - text.rfind(chr(10), 0, at)}: "
        character = f"U+{err.character:04X}" if isinstance(err.character, int) else repr(err.character)
        return None, [((), f"{where}not valid YAML (character {character} is not allowed: a binary or UTF-16 "
                           f"file?); expected a YAML mapping of {what} in UTF-8 text")]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what_went_wrong = getattr(err, "problem", None) or getattr(err, "reason", None) or first_line(err)
        return None, [((), f"{where}not valid YAML ({what_went_wrong}); expected a YAML mapping of {what}")]
    except RecursionError:
        return None, [((), f"nested too deeply to read; expected a YAML mapping of {what}")]
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml_file(path: str | os.PathLike, what: str = "schedule") -> tuple[Any, list[tuple[Loc, str]]]:
    """:func:`read_yaml` of a file; a file that cannot be read (missing, a folder, not UTF-8)
    is one more problem. ``what``: "schedule" or "job file"."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        if isinstance(err, UnicodeDecodeError):
            reason = f"not UTF-8 text at byte {err.start}"
        else:
            reason = err.strerror or str(err)
        return None, [((), f"cannot read the {what} ({reason}); expected a readable YAML file")]
    return read_yaml(text, "job keys" if what == "job file" else "schedule keys")
